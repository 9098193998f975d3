/**
 * `quarry run` (SPEC §5, §9): compile flags into a run, run it, print the
 * one-line summary, write `--report`, return the exit code.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { checkDay, checkKeyValue, RUN_ID_RE, utcDay } from '../../storage/layout.js';
import type { PolicyConfig } from '../../runtime/policies/index.js';
import { parseFlags, renderFlagHelp, UsageError, type ParsedFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { parseLedgerTarget } from './ledger-target.js';
import type { ConfigPools, PreparedProxy, ProxyPlan } from './proxy-setup.js';
import { RUN_FLAGS } from './run-flags.js';
import { AdapterConfigError, compileAdapter, type AdapterOptions } from '../../notify/adapter-config.js';
import { compileRedisSink, SinkConfigError, type RedisSinkOptions } from '../../notify/redis-stream-sink.js';

export const RUN_USAGE = `Usage: quarry run --script <path> --source <name> [options]

Runs a script in a supervised executor, stores what it emits in a run-fenced
partition, finalizes it, and prints one summary line. Exit code: 0 success,
1 script error, 2 executor crash or usage error, 3 policy failure or version
mismatch, 130/143 interrupted.

Examples:
  quarry run --script ./examples/books.ts --source bookshop --job '{"url":"http://127.0.0.1:8080/"}'
  quarry run --script ./s.ts --source shop --policy buffered --buffer-events 1000 --report -`;

/** A run, fully validated, before any I/O. */
export interface RunPlan {
  scriptPath: string;
  runId?: string;
  attempt: number;
  jobId?: string;
  parentRunId?: string;
  job: unknown;
  source: string;
  category: string;
  day: string;
  dataset: string;
  storage: { backend: 'fs' | 's3'; path: string; region?: string; endpoint?: string; s3PathStyle: boolean; requestTimeoutMs?: number };
  policy: PolicyConfig;
  executorPath?: string;
  browserWsEndpoint?: string;
  chromiumPath?: string;
  /** `--no-browser-reuse`: a crawl's runs launch a browser each instead of sharing the invocation's. */
  noBrowserReuse?: boolean;
  report?: string;
  dryRun: boolean;
  quiet: boolean;
  ledger?: string;
  retries: number;
  /** `--run-timeout` in milliseconds. */
  runTimeoutMs?: number;
  /** Set with `--depth N > 0`: the run is the root of a crawl tree (SPEC §10). */
  tree?: TreePlan;
  /** `--state-dir` as given (resolved with the storage path when the tree starts). */
  stateDir?: string;
  /** One-line notices to print before the run (flags accepted with no effect). */
  notices?: string[];
  /** `--adapter …` (SPEC §11): the live options, credentials included, held in memory only. */
  adapter?: AdapterOptions;
  /** `--proxy-pool`: each run's proxy comes from this pool (SPEC §11). */
  proxy?: PreparedProxy;
  /** `--proxy-pool` with `--queue`: the pool name and selection options only; each worker loads the pool from its own config (SPEC §12). */
  queueProxy?: ProxyPlan;
  /** `--event-sink redis` (SPEC §11): the live options, credentials included, held in memory only. */
  redisSink?: RedisSinkOptions;
}

/** The fan-out flags of a tree (SPEC §10), checked. */
export interface TreePlan {
  depth: number;
  maxRuns: number;
  parallel: number;
  allowFailedChildren: number;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * Validates and compiles parsed flags into a plan. Pure but for reading
 * `--job-json` and checking that files exist.
 * @throws UsageError naming what to fix.
 */
export function compileRunPlan(p: ParsedFlags, env: NodeJS.ProcessEnv, cwd: string, now: Date): RunPlan {
  const v = p.values;
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])} (flags start with --)`);
  if (str(v.resume) !== undefined) throw new UsageError('--resume is handled apart from a new run');
  const script = str(v.script);
  if (!script) throw new UsageError('--script is required: the path of the script to run');
  const scriptPath = resolve(cwd, script);
  checkScript(script, scriptPath);

  const runId = str(v['run-id']);
  if (runId !== undefined && !RUN_ID_RE.test(runId)) throw new UsageError(`--run-id ${JSON.stringify(runId)} must match [A-Za-z0-9._-]{1,128}`);
  const attempt = v.attempt as number;
  if (!Number.isInteger(attempt) || attempt < 1) throw new UsageError(`--attempt must be 1 or more, got ${attempt}`);
  const parentRunId = str(v['parent-run-id']);
  if (parentRunId !== undefined && !RUN_ID_RE.test(parentRunId)) throw new UsageError(`--parent-run-id ${JSON.stringify(parentRunId)} must match [A-Za-z0-9._-]{1,128}`);
  const jobId = str(v['job-id']);

  const job = parseJob(str(v.job), str(v['job-json']), cwd);

  const dryRun = v['dry-run'] === true;
  // A dry run touches no partition, so it needs no partition key (a placeholder keeps the plan whole).
  const source = str(v.source) ?? (dryRun ? 'dry-run' : undefined);
  if (!source) throw new UsageError('--source is required: the source partition key, e.g. --source books');
  const category = str(v.category) ?? 'default';
  for (const [what, value] of [['--source', source], ['--category', category]] as const) {
    const bad = checkKeyValue(what, value);
    if (bad) throw new UsageError(bad);
  }
  const day = str(v.day) ?? utcDay(now);
  const badDay = checkDay(day);
  if (badDay) throw new UsageError(`--day: ${badDay}`);
  const dataset = str(v['storage-dataset']) ?? 'quarry';
  const badDataset = checkKeyValue('--storage-dataset', dataset);
  if (badDataset) throw new UsageError(badDataset);

  const storage = compileStorage(p.values, cwd);

  const policy = compilePolicy(p);
  const executorPath = str(v.executor) ? resolve(cwd, str(v.executor)!) : undefined;
  if (executorPath && !existsSync(executorPath)) throw new UsageError(`--executor ${str(v.executor)}: no such file`);
  const chromiumPath = str(v['chromium-path']) ?? str(env.QUARRY_CHROMIUM_PATH);
  const retries = v.retries as number;
  if (retries < 0) throw new UsageError(`--retries must be 0 or more, got ${retries}`);
  const runTimeout = v['run-timeout'] as number | undefined;
  if (runTimeout !== undefined && runTimeout <= 0) throw new UsageError(`--run-timeout must be more than 0, e.g. 10m, got ${runTimeout}ms`);

  const notices: string[] = [];
  const tree = compileTree(p, notices);
  const stateDir = str(v['state-dir']);

  const plan: RunPlan = {
    notices,
    scriptPath,
    attempt,
    job,
    source,
    category,
    day,
    dataset,
    storage,
    policy,
    dryRun,
    quiet: v.quiet === true,
    retries,
  };
  if (runId) plan.runId = runId;
  if (jobId) plan.jobId = jobId;
  if (parentRunId) plan.parentRunId = parentRunId;
  if (executorPath) plan.executorPath = executorPath;
  if (str(v['browser-ws-endpoint'])) plan.browserWsEndpoint = str(v['browser-ws-endpoint'])!;
  if (chromiumPath) plan.chromiumPath = chromiumPath;
  if (v['no-browser-reuse'] === true) plan.noBrowserReuse = true;
  if (runTimeout !== undefined) plan.runTimeoutMs = runTimeout;
  if (tree) plan.tree = tree;
  if (stateDir) plan.stateDir = stateDir;
  if (str(v.report)) plan.report = str(v.report)!;
  if (plan.report && !dryRun) checkReportTarget(plan.report, cwd);
  const ledger = str(v.ledger);
  if (ledger) plan.ledger = parseLedgerTarget(ledger, cwd);
  const adapter = compileAdapterFlags(p);
  if (adapter) plan.adapter = adapter;
  const sink = compileSinkFlags(p, notices);
  if (sink) plan.redisSink = sink;
  return plan;
}

/** The Redis sink options that mean something only with `--event-sink redis`. */
const SINK_OPTION_FLAGS = ['event-sink-redis-url', 'event-sink-redis-stream-key', 'event-sink-redis-max-len', 'event-sink-redis-ttl', 'event-sink-redis-timeout', 'event-sink-redis-retries', 'event-sink-redis-delivery'] as const;

/**
 * `--event-sink lode|redis` (repeatable) and the Redis sink's options (SPEC §11).
 * `lode` (our storage) is always on; `--event-sink-lode-delivery` is accepted
 * with a notice. @throws UsageError quoting the bad value.
 */
export function compileSinkFlags(p: ParsedFlags, notices: string[]): RedisSinkOptions | undefined {
  const v = p.values;
  const kinds = (v['event-sink'] as string[] | undefined) ?? [];
  const bad = kinds.find((k) => k !== 'lode' && k !== 'redis');
  if (bad !== undefined) throw new UsageError(`--event-sink ${JSON.stringify(bad)} must be lode or redis`);
  if (str(v['event-sink-lode-delivery']) !== undefined) notices.push('--event-sink-lode-delivery has no effect: storage (lode) is always on and mandatory');
  if (!kinds.includes('redis')) {
    // Only what the command line says is stray: a config's redis sink is switched off by an explicit --event-sink without redis.
    const stray = SINK_OPTION_FLAGS.find((f) => p.explicit.has(f));
    if (stray) throw new UsageError(`--${stray} has no effect without --event-sink redis`);
    return undefined;
  }
  try {
    return compileRedisSink({
      url: str(v['event-sink-redis-url']),
      streamKey: str(v['event-sink-redis-stream-key']),
      maxLen: v['event-sink-redis-max-len'] as number | undefined,
      ttlMs: v['event-sink-redis-ttl'] as number | undefined,
      timeoutMs: v['event-sink-redis-timeout'] as number | undefined,
      retries: v['event-sink-redis-retries'] as number | undefined,
      delivery: str(v['event-sink-redis-delivery']),
    });
  } catch (err) {
    if (err instanceof SinkConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * What a queued tree cannot take, checked before anything is submitted: a
 * state dir (its state is in Redis) and event sinks (each worker streams
 * the runs it executes to its own). Given on the command line: a usage
 * error saying why; from the config file: a notice that it is not read.
 * @throws UsageError naming the flag and why.
 */
function checkQueueOnly(plan: RunPlan, values: Record<string, unknown>, explicit: ReadonlySet<string>): void {
  if (explicit.has('state-dir')) {
    throw new UsageError('--state-dir with --queue: a queued tree keeps its frontier and proxy selection state in Redis at --queue, not in a state dir; drop --state-dir');
  }
  const sinkGiven = explicit.has('event-sink') || [...explicit].some((f) => f.startsWith('event-sink-redis-'));
  if (plan.redisSink !== undefined && sinkGiven) {
    throw new UsageError('--event-sink redis with --queue: a queued tree\'s runs stream their events to the sinks of the workers that run them; give --event-sink to quarry worker (or events.sinks[] in its --config)');
  }
  // The fan-out notice about a state dir means nothing here: this one says why.
  const notices = (plan.notices = (plan.notices ?? []).filter((n) => !n.startsWith('--state-dir ')));
  if (values['state-dir'] !== undefined) notices.push('state_dir of the config is not read with --queue: a queued tree\'s state is in Redis');
  if (plan.redisSink !== undefined) notices.push('events.sinks[] of the config is not read with --queue: each worker streams the runs it executes to its own sinks');
  if (plan.adapter !== undefined) {
    // Only the adapter's kind and recorded target travel: what else was given is not used (never silently).
    const u = new URL(plan.adapter.url);
    const local = [
      ...['adapter-header', 'adapter-timeout', 'adapter-retries'].filter((f) => explicit.has(f)).map((f) => `--${f}`),
      ...(u.username !== '' || u.password !== '' || u.search !== '' ? ['the credentials and query of --adapter-url'] : []),
    ];
    if (local.length > 0) notices.push(`${local.join(', ')} ${local.length > 1 ? 'are' : 'is'} not sent with a queued tree: the worker that finalizes it sends its notification with its own --adapter for the same target`);
  }
}

/** The adapter flags that only mean something with `--adapter`. */
const ADAPTER_OPTION_FLAGS = ['adapter-url', 'adapter-header', 'adapter-channel', 'adapter-timeout', 'adapter-retries'] as const;

/**
 * `--adapter webhook|redis` and its options (SPEC §11). Options without
 * `--adapter` are refused: a URL given alone would silently notify nobody.
 * @throws UsageError quoting the bad value.
 */
export function compileAdapterFlags(p: ParsedFlags): AdapterOptions | undefined {
  const v = p.values;
  const kind = str(v.adapter);
  if (kind === undefined) {
    // Channel and retries have defaults: only an explicit one is stray. The others have none, so any value (config included) is.
    const stray = ADAPTER_OPTION_FLAGS.find((f) => p.explicit.has(f) || (f !== 'adapter-channel' && f !== 'adapter-retries' && v[f] !== undefined));
    if (stray) throw new UsageError(`--${stray} has no effect without --adapter webhook|redis`);
    return undefined;
  }
  try {
    return compileAdapter({
      kind,
      url: str(v['adapter-url']),
      channel: str(v['adapter-channel']),
      headers: (v['adapter-header'] as string[] | undefined) ?? [],
      timeoutMs: v['adapter-timeout'] as number | undefined,
      retries: v['adapter-retries'] as number | undefined,
    });
  } catch (err) {
    if (err instanceof AdapterConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * The fan-out flags (SPEC §10): `--depth N > 0` needs `--max-runs` (we
 * require a bound, as the original's code does); `--max-runs`, `--parallel`
 * and `--allow-failed-children` without it are accepted with a notice.
 * @throws UsageError naming the bad value.
 */
export function compileTree(p: ParsedFlags, notices: string[]): TreePlan | undefined {
  const v = p.values;
  const depth = v.depth as number;
  const maxRuns = v['max-runs'] as number | undefined;
  const parallel = v.parallel as number;
  const allow = v['allow-failed-children'] as number;
  if (depth < 0) throw new UsageError(`--depth must be 0 or more, got ${depth}`);
  if (maxRuns !== undefined && maxRuns < 1) throw new UsageError(`--max-runs must be 1 or more (the root counts), got ${maxRuns}`);
  if (parallel < 1) throw new UsageError(`--parallel must be 1 or more (the root counts), got ${parallel}`);
  if (allow < 0) throw new UsageError(`--allow-failed-children must be 0 or more, got ${allow}`);
  if (depth === 0) {
    const idle = [
      ...(maxRuns !== undefined ? ['--max-runs'] : []),
      ...(parallel !== 1 ? ['--parallel'] : []),
      ...(allow !== 0 ? ['--allow-failed-children'] : []),
    ];
    if (idle.length > 0) notices.push(`${idle.join(' and ')} ${idle.length > 1 ? 'have' : 'has'} no effect without --depth N > 0 (no fan-out: enqueue events are only stored)`);
    if (str(v['state-dir']) !== undefined && str(v['proxy-pool']) === undefined) notices.push('--state-dir has no effect without --depth N > 0 or --proxy-pool');
    return undefined;
  }
  if (maxRuns === undefined) throw new UsageError(`--depth ${depth} needs --max-runs N: a crawl must be bounded (the root counts; e.g. --max-runs 1000)`);
  return { depth, maxRuns, parallel, allowFailedChildren: allow };
}

/**
 * The `--storage-*` flags as a run's storage plan (fs paths resolved against `cwd`).
 * Shared by `run` and `retry`. @throws UsageError naming the bad value.
 */
export function compileStorage(v: ParsedFlags['values'], cwd: string): RunPlan['storage'] {
  const backend = (str(v['storage-backend']) ?? 'fs') as 'fs' | 's3';
  const storagePath = str(v['storage-path']);
  if (!storagePath) throw new UsageError('--storage-path is required');
  if (backend === 's3' && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(storagePath)) {
    throw new UsageError(`--storage-path ${JSON.stringify(storagePath)}: for s3 give bucket/prefix, e.g. my-bucket/quarry`);
  }
  return {
    backend,
    path: backend === 'fs' ? resolve(cwd, storagePath) : storagePath,
    s3PathStyle: v['storage-s3-path-style'] === true,
    ...(str(v['storage-region']) ? { region: str(v['storage-region'])! } : {}),
    ...(str(v['storage-endpoint']) ? { endpoint: str(v['storage-endpoint'])! } : {}),
    ...(v['storage-request-timeout'] !== undefined ? { requestTimeoutMs: v['storage-request-timeout'] as number } : {}),
  };
}

function parseJob(inline: string | undefined, file: string | undefined, cwd: string): unknown {
  if (inline !== undefined && file !== undefined) throw new UsageError('use --job or --job-json, not both');
  let text: string | undefined;
  let where = '--job';
  if (file !== undefined) {
    where = `--job-json ${file}`;
    try {
      text = readFileSync(resolve(cwd, file), 'utf8');
    } catch (err) {
      throw new UsageError(`${where}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  } else {
    text = inline;
  }
  if (text === undefined) return {};
  let job: unknown;
  try {
    job = JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(`${where} is not valid JSON: ${(err as Error).message}`);
  }
  // The script reads ctx.job.<field>, as in the original: anything but an object is a mistake.
  if (job === null || typeof job !== 'object' || Array.isArray(job)) {
    throw new UsageError(`${where} must be a JSON object like {"url":"…"}, got ${job === null ? 'null' : Array.isArray(job) ? 'an array' : `a ${typeof job}`}`);
  }
  return job;
}

/**
 * The script must be a readable file of a kind the executor loads; checked
 * here so an unreadable script is one line before anything runs (SPEC §5).
 * @throws UsageError naming the file and what is wrong.
 */
export function checkScript(given: string, path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`--script ${given}: no such file`);
  }
  if (!st.isFile()) throw new UsageError(`--script ${given}: not a file`);
  if (!/\.(ts|mts|js|mjs)$/.test(path)) throw new UsageError(`--script ${given}: expected a .ts, .mts, .js or .mjs file`);
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new UsageError(`--script ${given}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'}); check its permissions for this user`);
  }
}

/**
 * A `--report` file must be writable before the run starts: found after the
 * run, the failure would replace the run's own exit code. Creates nothing.
 * @throws UsageError naming the path.
 */
export function checkReportTarget(target: string, cwd: string): void {
  if (target === '-') return;
  const path = resolve(cwd, target);
  const existing = existsSync(path);
  if (existing && statSync(path).isDirectory()) throw new UsageError(`--report ${target}: is a directory; give a file path or - for stderr`);
  const where = existing ? path : dirname(path);
  if (!existing && !existsSync(where)) throw new UsageError(`--report ${target}: folder ${where} does not exist; create it or give another path`);
  try {
    accessSync(where, constants.W_OK);
  } catch (err) {
    throw new UsageError(`--report ${target}: cannot write ${existing ? 'the file' : `in ${where}`} (${(err as NodeJS.ErrnoException).code ?? 'error'}); give a writable path or - for stderr`);
  }
}

/** Compiles and checks the policy flags (SPEC §6). @throws UsageError */
export function compilePolicy(p: ParsedFlags): PolicyConfig {
  const v = p.values;
  const name = v.policy as 'strict' | 'buffered' | 'streaming';
  const flushMode = v['flush-mode'] as 'at_least_once' | 'chunks_first' | 'two_phase';
  const bufferEvents = v['buffer-events'] as number;
  const bufferBytes = v['buffer-bytes'] as number;
  const flushCount = v['flush-count'] as number;
  const flushInterval = v['flush-interval'] as number | undefined;
  for (const [flag, n] of [['--buffer-events', bufferEvents], ['--buffer-bytes', bufferBytes], ['--flush-count', flushCount]] as const) {
    if (n < 0) throw new UsageError(`${flag} must be 0 or more, got ${n}`);
  }
  if (name === 'strict') {
    const stray = ['buffer-events', 'buffer-bytes', 'flush-count', 'flush-interval', 'flush-mode'].filter((f) => p.explicit.has(f));
    if (stray.length > 0) throw new UsageError(`--${stray[0]} has no effect with --policy strict; drop it or choose --policy buffered|streaming`);
    return { name };
  }
  if (name === 'buffered') {
    if (bufferEvents <= 0 && bufferBytes <= 0) throw new UsageError('--policy buffered needs --buffer-events N and/or --buffer-bytes N');
    if (p.explicit.has('flush-count') || p.explicit.has('flush-interval')) throw new UsageError('--flush-count/--flush-interval are streaming options; buffered flushes when its buffer is full');
    return { name, flushMode, ...(bufferEvents > 0 ? { bufferEvents } : {}), ...(bufferBytes > 0 ? { bufferBytes } : {}) };
  }
  if (flushCount <= 0 && (flushInterval === undefined || flushInterval <= 0)) throw new UsageError('--policy streaming needs --flush-count N and/or --flush-interval DURATION');
  if (p.explicit.has('buffer-events') || p.explicit.has('buffer-bytes')) throw new UsageError('--buffer-events/--buffer-bytes are buffered options; streaming bounds its buffer by --flush-count');
  return { name, flushMode, ...(flushCount > 0 ? { flushCount } : {}), ...(flushInterval !== undefined && flushInterval > 0 ? { flushIntervalMs: flushInterval } : {}) };
}

/** The flags that make `quarry run` load the proxy setup. */
const PROXY_FLAG_NAMES = ['proxy-pool', 'proxy-config', 'proxy-strategy', 'proxy-sticky-key', 'proxy-domain', 'proxy-origin'] as const;

/** Entry of `quarry run`: returns the exit code. */
export async function runCommand(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed = parseFlags(argv, RUN_FLAGS);
  if (parsed.help) {
    io.stdout(`${RUN_USAGE}\n${renderFlagHelp(RUN_FLAGS)}\n`);
    return 0;
  }
  let configPools: ConfigPools | undefined;
  if (typeof parsed.values.config === 'string') {
    // Loaded only when asked for: the YAML parser stays off the path of a plain run.
    const { applyRunConfig, loadRunConfig } = await import('../config.js');
    const config = await loadRunConfig(parsed.values.config, io.cwd, io.env);
    parsed = applyRunConfig(parsed, config);
    configPools = { file: resolve(io.cwd, config.file), ...(config.proxies !== undefined ? { proxies: config.proxies } : {}) };
  }
  const queued = typeof parsed.values.queue === 'string' && parsed.values.queue !== '';
  if (!queued) {
    const stray = ['queue-name', 'detach'].find((f) => parsed.explicit.has(f));
    if (stray) throw new UsageError(`--${stray} has no effect without --queue`);
  }
  if (typeof parsed.values.resume === 'string') {
    if (queued) {
      const { resumeQueuedTree } = await import('./run-queue.js');
      return resumeQueuedTree(parsed.values, parsed.explicit, io);
    }
    const { resumeCommand } = await import('./run-resume.js');
    return resumeCommand(parsed, io, configPools);
  }
  const plan = compileRunPlan(parsed, io.env, io.cwd, new Date());
  if (queued) checkQueueOnly(plan, parsed.values, parsed.explicit);
  if (PROXY_FLAG_NAMES.some((f) => parsed.values[f] !== undefined)) {
    const { compileProxyPlan, prepareProxy } = await import('./proxy-setup.js');
    if (queued) {
      // The pools (with their passwords) are the workers': only the pool's name and options travel with the tree.
      const proxyPlan = compileProxyPlan(parsed.values, io.cwd, undefined, plan.notices ??= []);
      if (proxyPlan) {
        plan.queueProxy = proxyPlan;
        if (proxyPlan.proxyConfigFile !== undefined) plan.notices.push('--proxy-config is not read with --queue: each worker takes the pool\'s endpoints from its own --proxy-config or --config proxies:');
      }
    } else {
      const proxy = await prepareProxy(parsed.values, io.cwd, configPools, plan.notices ??= []);
      if (proxy) plan.proxy = proxy;
    }
  }
  if (!plan.quiet) for (const n of plan.notices ?? []) io.stderr(`quarry run: ${n}\n`);
  if (plan.dryRun) return dryRun(plan, io);
  if (queued) {
    const { runQueuedTree } = await import('./run-queue.js');
    return runQueuedTree(plan, parsed.values, io);
  }
  if (plan.tree) {
    const { executeTreePlan } = await import('./run-tree.js');
    return executeTreePlan(plan, plan.tree, io);
  }

  // The bundled executor starts now: node's start and its module loading overlap the rest of
  // the runtime's loading, the ledger, the binding and the claim. It waits for its request,
  // written after the claim, so nothing of the run happens before (executor-process.ts).
  const { startExecutorEarly, takeSpeculativeExecutor } = await import('../../runtime/executor-process.js');
  const early = plan.executorPath === undefined ? (takeSpeculativeExecutor(plan.scriptPath) ?? startExecutorEarly(plan.scriptPath)) : undefined;
  try {
    const { executePlan } = await import('./run-execute.js');
    return await executePlan(plan, io, early);
  } finally {
    if (early && !early.taken) await early.dispose();
  }
}

async function dryRun(plan: RunPlan, io: CliIO): Promise<number> {
  const { defaultExecutorPath } = await import('../../runtime/run.js');
  const executor = plan.executorPath ?? defaultExecutorPath();
  return new Promise((done) => {
    execFile(process.execPath, [executor, '--validate', plan.scriptPath], (err, _stdout, stderr) => {
      if (!err) {
        if (!plan.quiet) io.stdout(`dry run: ${plan.scriptPath} is a valid script (no browser launched, nothing stored)\n`);
        done(0);
        return;
      }
      const reason = stderr.trim().split('\n').pop() ?? (err as Error).message;
      io.stderr(`quarry run: --dry-run: ${reason}\n`);
      done(2);
    });
  });
}

/**
 * Writes the report where `--report` says (`-` = stderr). The target was
 * checked before the run; a write that fails anyway (disk full) is one line
 * and never replaces the run's exit code.
 */
export function writeReport(target: string, json: string, io: CliIO): void {
  if (target === '-') {
    io.stderr(`${json}\n`);
    return;
  }
  try {
    writeFileSync(resolve(io.cwd, target), `${json}\n`);
  } catch (err) {
    io.stderr(`quarry run: --report ${target}: could not write the report (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the run's exit code stands\n`);
  }
}
