/**
 * `quarry run --config quarry.yaml` (SPEC §9): a YAML file of defaults for the
 * run flags, nested as in the original Quarry (`policy: {name, …}`,
 * `storage: {dataset, …}`). CLI beats config beats default: a value from the
 * file fills a flag only when the user did not set that flag.
 *
 * Strict, because a typo in a config file must not silently run with a
 * default: unknown keys, wrong types and malformed YAML are usage errors that
 * name the file, the key and (where the YAML gives one) the line and column.
 * `${VAR}` and `${VAR:-default}` in values expand from the environment; `$${`
 * is a literal `${`. Expansion happens per value after parsing, so a variable
 * can never inject YAML structure, and positions stay those of the file.
 *
 * Parsing is pure ({@link parseRunConfig}); {@link loadRunConfig} reads the file.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, Scalar, type Document, type Node, type Pair } from 'yaml';
import { checkDay, checkKeyValue } from '../storage/layout.js';
import { compileRedisSink, SinkConfigError } from '../notify/redis-stream-sink.js';
import { RUN_FLAGS } from './commands/run-flags.js';
import { parseDuration, UsageError, type FlagSpec, type FlagValue, type ParsedFlags } from './flags.js';

/** A config file is wrong. Its message starts with `config <file>:`; main prints it and exits 2 (SPEC §5). */
export class ConfigError extends UsageError {}

/** A loaded config: flag values by flag name, ready to fill what the command line left unset. */
export interface RunConfigFile {
  /** The path as the user gave it, for messages. */
  file: string;
  values: Readonly<Record<string, FlagValue>>;
  /** `proxies:` as plain data, variables expanded (pools are checked by the proxy loader). */
  proxies?: unknown;
}

type Field =
  | { kind: 'flag'; flag: string; check?: (v: FlagValue) => string | undefined }
  | { kind: 'job' }
  | { kind: 'section'; fields: Readonly<Record<string, Field>> }
  | { kind: 'reserved'; why: string }
  | { kind: 'per-invocation'; flag: string }
  | { kind: 'pools' }
  | { kind: 'sinks' };

const planned = (flag: string): string => RUN_FLAGS.find((f) => f.name === flag)?.planned ?? 'not built yet';
const keyCheck = (what: string) => (v: FlagValue) => (typeof v === 'string' ? checkKeyValue(what, v) : undefined);
const notNegative = (v: FlagValue): string | undefined => (typeof v === 'number' && v < 0 ? `must be 0 or more, got ${v}` : undefined);

/** Every key the file may hold, and the run flag each one fills. */
export const CONFIG_SCHEMA: Readonly<Record<string, Field>> = {
  source: { kind: 'flag', flag: 'source', check: keyCheck('source') },
  category: { kind: 'flag', flag: 'category', check: keyCheck('category') },
  day: { kind: 'flag', flag: 'day', check: (v) => (typeof v === 'string' ? checkDay(v) : undefined) },
  job_id: { kind: 'flag', flag: 'job-id' },
  job: { kind: 'job' },
  job_json: { kind: 'flag', flag: 'job-json' },
  policy: {
    kind: 'section',
    fields: {
      name: { kind: 'flag', flag: 'policy' },
      flush_mode: { kind: 'flag', flag: 'flush-mode' },
      buffer_events: { kind: 'flag', flag: 'buffer-events', check: notNegative },
      buffer_bytes: { kind: 'flag', flag: 'buffer-bytes', check: notNegative },
      flush_count: { kind: 'flag', flag: 'flush-count', check: notNegative },
      flush_interval: { kind: 'flag', flag: 'flush-interval' },
    },
  },
  storage: {
    kind: 'section',
    fields: {
      dataset: { kind: 'flag', flag: 'storage-dataset', check: keyCheck('storage.dataset') },
      backend: { kind: 'flag', flag: 'storage-backend' },
      path: { kind: 'flag', flag: 'storage-path' },
      region: { kind: 'flag', flag: 'storage-region' },
      endpoint: { kind: 'flag', flag: 'storage-endpoint' },
      s3_path_style: { kind: 'flag', flag: 'storage-s3-path-style' },
      request_timeout: { kind: 'flag', flag: 'storage-request-timeout' },
    },
  },
  ledger: { kind: 'flag', flag: 'ledger' },
  retries: { kind: 'flag', flag: 'retries', check: notNegative },
  run_timeout: { kind: 'flag', flag: 'run-timeout' },
  executor: { kind: 'flag', flag: 'executor' },
  browser_ws_endpoint: { kind: 'flag', flag: 'browser-ws-endpoint' },
  chromium_path: { kind: 'flag', flag: 'chromium-path' },
  no_browser_reuse: { kind: 'flag', flag: 'no-browser-reuse' },
  report: { kind: 'flag', flag: 'report' },
  quiet: { kind: 'flag', flag: 'quiet' },
  script: { kind: 'per-invocation', flag: 'script' },
  run_id: { kind: 'per-invocation', flag: 'run-id' },
  attempt: { kind: 'per-invocation', flag: 'attempt' },
  parent_run_id: { kind: 'per-invocation', flag: 'parent-run-id' },
  dry_run: { kind: 'per-invocation', flag: 'dry-run' },
  proxies: { kind: 'pools' },
  proxy: {
    kind: 'section',
    fields: {
      pool: { kind: 'flag', flag: 'proxy-pool' },
      strategy: { kind: 'flag', flag: 'proxy-strategy' },
      sticky_key: { kind: 'flag', flag: 'proxy-sticky-key' },
      domain: { kind: 'flag', flag: 'proxy-domain' },
      origin: { kind: 'flag', flag: 'proxy-origin' },
    },
  },
  proxy_config: { kind: 'flag', flag: 'proxy-config' },
  adapter: {
    kind: 'section',
    fields: {
      type: { kind: 'flag', flag: 'adapter' },
      url: { kind: 'flag', flag: 'adapter-url' },
      headers: { kind: 'flag', flag: 'adapter-header' },
      channel: { kind: 'flag', flag: 'adapter-channel' },
      timeout: { kind: 'flag', flag: 'adapter-timeout' },
      retries: { kind: 'flag', flag: 'adapter-retries', check: notNegative },
    },
  },
  events: { kind: 'section', fields: { sinks: { kind: 'sinks' } } },
  depth: { kind: 'flag', flag: 'depth', check: notNegative },
  max_runs: { kind: 'flag', flag: 'max-runs' },
  parallel: { kind: 'flag', flag: 'parallel' },
  allow_failed_children: { kind: 'flag', flag: 'allow-failed-children', check: notNegative },
  state_dir: { kind: 'flag', flag: 'state-dir' },
  resume: { kind: 'per-invocation', flag: 'resume' },
  queue: { kind: 'per-invocation', flag: 'queue' },
  resolve_from: { kind: 'reserved', why: planned('resolve-from') },
};

const SPECS = new Map<string, FlagSpec>(RUN_FLAGS.map((f) => [f.name, f]));

const EXPECTED: Readonly<Record<FlagSpec['type'], string>> = {
  string: 'a string',
  int: 'a whole number',
  bool: 'true or false',
  duration: 'a duration like 500ms, 5s or 1m (or whole milliseconds)',
  list: 'a list of strings',
};

/**
 * Reads and parses a config file (relative to `cwd`).
 * @throws ConfigError naming the file and what to fix.
 */
export async function loadRunConfig(file: string, cwd: string, env: NodeJS.ProcessEnv): Promise<RunConfigFile> {
  if (file === '') throw new ConfigError('--config needs the path of a YAML file');
  let text: string;
  try {
    text = await readFile(resolve(cwd, file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a YAML file' : `cannot read the file (${code ?? (err as Error).message})`;
    throw new ConfigError(`config ${file}: ${why}`);
  }
  return parseRunConfig(text, file, env);
}

/**
 * Parses config text into run flag values.
 * @throws ConfigError for malformed YAML, unknown or refused keys, wrong types, unset variables.
 */
export function parseRunConfig(text: string, file: string, env: NodeJS.ProcessEnv): RunConfigFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const fail: Fail = (message, offset) => {
    const at = offset === undefined ? '' : (({ line, col }) => ` (line ${line}, column ${col})`)(lines.linePos(offset));
    throw new ConfigError(`config ${file}: ${message}${at}`);
  };
  const first = doc.errors[0];
  if (first !== undefined) {
    const { line, col } = lines.linePos(first.pos[0]);
    throw new ConfigError(`config ${file}: malformed YAML at line ${line}, column ${col}: ${first.message.split('\n')[0]!.replace(/ at line \d+, column \d+.*$/, '')}`);
  }
  const values: Record<string, FlagValue> = {};
  let proxies: unknown;
  const root = doc.contents;
  if (root === null || (isScalar(root) && root.value === null)) return { file, values };
  if (!isMap(root)) return fail('the file must be a mapping of keys (like "source: books"), not a list or a single value', root.range?.[0]);

  const walk = (pairs: ReadonlyArray<Pair<unknown, unknown>>, schema: Readonly<Record<string, Field>>, prefix: string): void => {
    for (const pair of pairs) {
      const keyNode = pair.key;
      const keyOffset = isScalar(keyNode) ? keyNode.range?.[0] : undefined;
      if (!isScalar(keyNode) || typeof keyNode.value !== 'string') fail(`keys must be strings, got ${JSON.stringify(isScalar(keyNode) ? keyNode.value : String(keyNode))}`, keyOffset);
      const key = (keyNode as Scalar<string>).value;
      const path = `${prefix}${key}`;
      const field = schema[key];
      if (field === undefined) fail(`unknown key ${JSON.stringify(path)}${suggestKey(key, Object.keys(schema), prefix)}`);
      const valueNode = resolveAlias(doc, pair.value);
      const at = (isScalar(valueNode) || isMap(valueNode) || isSeq(valueNode) ? valueNode.range?.[0] : undefined) ?? keyOffset;
      switch (field!.kind) {
        case 'per-invocation':
          fail(`${JSON.stringify(path)} is per invocation and not accepted in a config file; pass --${field!.flag} on the command line`, keyOffset);
          break;
        case 'reserved':
          fail(`${JSON.stringify(path)} is not available in this version of quarry: ${field!.why}; remove it from the file`, keyOffset);
          break;
        case 'section': {
          if (valueNode === undefined || (isScalar(valueNode) && valueNode.value === null)) break;
          if (!isMap(valueNode)) fail(`${path} must be a mapping of keys, got ${describe(doc, valueNode, env, path, fail)}`, at);
          walk((valueNode as { items: Array<Pair<unknown, unknown>> }).items, field!.fields, `${path}.`);
          break;
        }
        case 'pools': {
          if (valueNode === undefined || (isScalar(valueNode) && valueNode.value === null)) break;
          if (!isMap(valueNode)) fail(`proxies must be a mapping of pools keyed by name (proxies: { my_pool: { strategy, endpoints } }), got ${isSeq(valueNode) ? 'a list' : 'a single value'}`, at);
          proxies = toPlain(doc, valueNode, env, path, fail);
          break;
        }
        case 'sinks': {
          if (valueNode === undefined || (isScalar(valueNode) && valueNode.value === null)) break;
          if (!isSeq(valueNode)) fail(`${path} must be a list of sinks (- {type: redis, url: redis://…}), got ${describe(doc, valueNode, env, path, fail)}`, at);
          readSinks(doc, (valueNode as { items: unknown[] }).items, env, path, fail, values);
          break;
        }
        case 'job': {
          if (valueNode === undefined || (isScalar(valueNode) && valueNode.value === null)) break;
          if (!isMap(valueNode)) fail(`job must be a mapping (the job payload), got ${describe(doc, valueNode, env, path, fail)}`, at);
          values.job = JSON.stringify(toPlain(doc, valueNode, env, path, fail));
          break;
        }
        case 'flag': {
          const spec = SPECS.get(field!.flag)!;
          const raw = toPlain(doc, valueNode, env, path, fail);
          if (raw === null || raw === undefined) break; // `key:` with no value, or `${X:-}`, means "not set"
          const value = convertValue(spec, raw, path, fail, at);
          const bad = field!.check?.(value);
          if (bad !== undefined) fail(bad.startsWith('must') ? `${path} ${bad}` : bad, at);
          values[field!.flag] = value;
          break;
        }
      }
    }
  };
  walk(root.items, CONFIG_SCHEMA, '');
  if (values.job !== undefined && values['job-json'] !== undefined) fail('use job or job_json, not both');
  checkPolicy(values, fail);
  return { file, values, ...(proxies !== undefined ? { proxies } : {}) };
}

/**
 * Fills every flag the user did not set explicitly from the config (CLI beats
 * config beats default). `--job` and `--job-json` count as one setting: either
 * on the command line overrides the config's job.
 */
export function applyRunConfig(parsed: ParsedFlags, config: RunConfigFile): ParsedFlags {
  const values = { ...parsed.values };
  const jobOnCli = parsed.explicit.has('job') || parsed.explicit.has('job-json');
  for (const [flag, value] of Object.entries(config.values)) {
    if (parsed.explicit.has(flag)) continue;
    if ((flag === 'job' || flag === 'job-json') && jobOnCli) continue;
    values[flag] = value;
  }
  // The file's own name and options are checked together when it is parsed; options
  // with no name at all (and none on the command line) would silently run strict.
  const options = POLICY_OPTION_FLAGS.filter((f) => config.values[f] !== undefined && !parsed.explicit.has(f));
  if (options.length > 0 && config.values.policy === undefined && !parsed.explicit.has('policy')) {
    throw new ConfigError(`config ${config.file}: policy.${options[0]!.replace(/-/g, '_')} is set but policy.name is not, so the run would be strict and ignore it; add policy.name: buffered or streaming (or --policy)`);
  }
  return { ...parsed, values };
}

/** The policy options that only mean something with a named buffered or streaming policy. */
const POLICY_OPTION_FLAGS = ['buffer-events', 'buffer-bytes', 'flush-count', 'flush-interval', 'flush-mode'] as const;

type Fail = (message: string, offset?: number) => never;

function resolveAlias(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function convertValue(spec: FlagSpec, raw: unknown, path: string, fail: Fail, at: number | undefined): FlagValue {
  const quoteHint = spec.type === 'string' && (typeof raw === 'number' || typeof raw === 'boolean') ? ` (quote it: "${String(raw)}")` : '';
  const wrong = (): never => fail(`${path} must be ${EXPECTED[spec.type]}, got ${JSON.stringify(raw)}${quoteHint}`, at);
  switch (spec.type) {
    case 'string':
      if (typeof raw !== 'string') return wrong();
      if (spec.choices && !spec.choices.includes(raw)) return fail(`${path} must be one of ${spec.choices.join('|')}, got ${JSON.stringify(raw)}`, at);
      return raw;
    case 'int':
      return typeof raw === 'number' && Number.isInteger(raw) ? raw : wrong();
    case 'bool':
      return typeof raw === 'boolean' ? raw : wrong();
    case 'duration': {
      if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 0) return raw;
      const ms = typeof raw === 'string' ? parseDuration(raw) : undefined;
      return ms === undefined ? wrong() : ms;
    }
    case 'list':
      return Array.isArray(raw) && raw.every((x) => typeof x === 'string') ? (raw as string[]) : wrong();
  }
}

/** A node as plain data, every string value expanded; plain scalars written as `${…}` take the type of what they expand to. */
function toPlain(doc: Document, node: unknown, env: NodeJS.ProcessEnv, path: string, fail: Fail): unknown {
  const n = resolveAlias(doc, node);
  if (n === undefined || n === null) return null;
  if (isScalar(n)) {
    if (typeof n.value !== 'string') return n.value;
    const expanded = expandEnv(n.value, env, (msg) => fail(`${path}: ${msg}`, n.range?.[0]));
    return n.type === Scalar.PLAIN && expanded !== n.value ? resolvePlain(expanded) : expanded;
  }
  if (isMap(n)) {
    const out: Record<string, unknown> = {};
    for (const pair of n.items) {
      const k = isScalar(pair.key) ? pair.key.value : pair.key;
      if (typeof k !== 'string' && typeof k !== 'number') fail(`${path}: keys must be strings`, (n as Node).range?.[0]);
      out[String(k)] = toPlain(doc, pair.value, env, `${path}.${String(k)}`, fail);
    }
    return out;
  }
  if (isSeq(n)) return n.items.map((item, i) => toPlain(doc, item, env, `${path}[${i}]`, fail));
  return fail(`${path}: unsupported YAML value`);
}

function describe(doc: Document, node: unknown, env: NodeJS.ProcessEnv, path: string, fail: Fail): string {
  if (isSeq(node)) return 'a list';
  return JSON.stringify(toPlain(doc, node, env, path, fail));
}

/** Core-schema typing of an expanded plain scalar: numbers, booleans and empty (null); anything else stays a string. */
function resolvePlain(s: string): unknown {
  if (s === '' || s === '~' || /^(null|Null|NULL)$/.test(s)) return null;
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(s)) return Number(s);
  return s;
}

const REF_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}/y;

/**
 * Expands `${VAR}` (unset: an error) and `${VAR:-default}` (unset or empty:
 * the default); `$${` is a literal `${`.
 * @throws whatever `fail` throws, with a message naming the variable.
 */
export function expandEnv(text: string, env: NodeJS.ProcessEnv, fail: (message: string) => never): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const at = text.indexOf('$', i);
    if (at === -1) break;
    out += text.slice(i, at);
    if (text.startsWith('$${', at)) {
      out += '${';
      i = at + 3;
      continue;
    }
    if (!text.startsWith('${', at)) {
      out += '$';
      i = at + 1;
      continue;
    }
    REF_RE.lastIndex = at;
    const m = REF_RE.exec(text);
    if (m === null) fail(`malformed reference ${JSON.stringify(text.slice(at, text.indexOf('}', at) + 1 || undefined))}; write \${NAME} or \${NAME:-default} (or $\${ for a literal \${)`);
    const name = m![1]!;
    const value = env[name];
    if (m![2] !== undefined) out += value === undefined || value === '' ? m![3]! : value;
    else if (value === undefined) fail(`environment variable ${name} is not set; set it or write \${${name}:-default}`);
    else out += value;
    i = at + m![0].length;
  }
  return out + text.slice(i);
}

/** The keys of one `events.sinks[]` entry (the original's), and the run flag each fills for a redis sink. */
const SINK_KEYS: Readonly<Record<string, string>> = {
  type: 'event-sink',
  delivery: 'event-sink-redis-delivery',
  url: 'event-sink-redis-url',
  stream_key: 'event-sink-redis-stream-key',
  max_len: 'event-sink-redis-max-len',
  ttl: 'event-sink-redis-ttl',
  timeout: 'event-sink-redis-timeout',
  retries: 'event-sink-redis-retries',
};

/**
 * `events.sinks[]` (SPEC §11) into the sink flags: `type` lode|redis (the
 * list `--event-sink`), and for the one redis sink its options, checked here
 * so an error names the key. `lode` is storage, always on: only `delivery`
 * goes with it (accepted with a notice, as the flag is).
 */
function readSinks(doc: Document, items: readonly unknown[], env: NodeJS.ProcessEnv, path: string, fail: Fail, values: Record<string, FlagValue>): void {
  const kinds: string[] = [];
  let redisAt: string | undefined;
  items.forEach((item, i) => {
    const node = resolveAlias(doc, item);
    const p = `${path}[${i}]`;
    const at = isScalar(node) || isMap(node) || isSeq(node) ? node.range?.[0] : undefined;
    if (!isMap(node)) return fail(`${p} must be a mapping like {type: redis, url: redis://127.0.0.1:6379}, got ${describe(doc, node, env, p, fail)}`, at);
    const entry: Record<string, FlagValue> = {};
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const keyAt = isScalar(pair.key) ? pair.key.range?.[0] : at;
      const flag = SINK_KEYS[key];
      if (flag === undefined) fail(`unknown key ${JSON.stringify(`${p}.${key}`)}${suggestKey(key, Object.keys(SINK_KEYS), `${p}.`)}`, keyAt);
      const raw = toPlain(doc, pair.value, env, `${p}.${key}`, fail);
      if (raw === null || raw === undefined) continue;
      if (key === 'type') {
        if (raw !== 'lode' && raw !== 'redis') fail(`${p}.type must be lode or redis, got ${JSON.stringify(raw)}`, keyAt);
        entry.type = raw as string;
        continue;
      }
      entry[key] = convertValue(SPECS.get(flag!)!, raw, `${p}.${key}`, fail, keyAt);
    }
    const type = entry.type;
    if (type === undefined) return fail(`${p} needs type: lode or redis`, at);
    kinds.push(type as string);
    if (type === 'lode') {
      const stray = Object.keys(entry).find((k) => k !== 'type' && k !== 'delivery');
      if (stray !== undefined) fail(`${p}.${stray} has no effect with type lode (storage is always on); remove it`, at);
      if (entry.delivery !== undefined) values['event-sink-lode-delivery'] = entry.delivery;
      return;
    }
    if (redisAt !== undefined) fail(`${p} is a second redis sink; a run has one (the first is ${redisAt})`, at);
    redisAt = p;
    try {
      compileRedisSink({
        url: entry.url as string | undefined,
        streamKey: entry.stream_key as string | undefined,
        maxLen: entry.max_len as number | undefined,
        ttlMs: entry.ttl as number | undefined,
        timeoutMs: entry.timeout as number | undefined,
        retries: entry.retries as number | undefined,
        delivery: entry.delivery as string | undefined,
      }, (o) => `${p}.${o.replace('-', '_')}`);
    } catch (err) {
      if (err instanceof SinkConfigError) fail(err.message, at);
      throw err;
    }
    for (const [key, v] of Object.entries(entry)) if (key !== 'type') values[SINK_KEYS[key]!] = v;
  });
  values['event-sink'] = kinds;
}

/** Policy keys that cannot go with the file's own policy name, as `compilePolicy` refuses the same flags. */
function checkPolicy(values: Record<string, FlagValue>, fail: Fail): void {
  const name = values.policy;
  if (name === undefined) return;
  const stray: Record<string, readonly string[]> = {
    strict: ['buffer-events', 'buffer-bytes', 'flush-count', 'flush-interval', 'flush-mode'],
    buffered: ['flush-count', 'flush-interval'],
    streaming: ['buffer-events', 'buffer-bytes'],
  };
  const bad = (stray[name as string] ?? []).find((f) => values[f] !== undefined);
  if (bad !== undefined) fail(`policy.${bad.replace(/-/g, '_')} has no effect with policy.name ${String(name)}; remove it or change the policy`);
}

/** ` (did you mean "x"?)` for a key within two edits of a known one (or sharing its start). */
function suggestKey(key: string, known: readonly string[], prefix: string): string {
  let best: string | undefined;
  let bestScore = Infinity;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k);
    const score = d <= (k.length >= 4 ? 2 : 1) ? d : k.startsWith(key) || key.startsWith(k) ? 3 : Infinity;
    if (score < bestScore) {
      best = k;
      bestScore = score;
    }
  }
  return best === undefined ? '' : ` (did you mean ${JSON.stringify(`${prefix}${best}`)}?)`;
}

/** Edit distance counting a swap of two neighbours as one edit (`nmae` → `name`); keys are short. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}
