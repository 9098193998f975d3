/**
 * Flag parsing for every command (pure). A command declares its flags once as
 * {@link FlagSpec}s; the same table drives parsing, `--help` and the test that
 * keeps the CLI contract (docs/contracts/cli.md) in step.
 *
 * Accepted forms: `--name value`, `--name=value`, `--bool`, `--bool=true|false`,
 * `--no-bool`, and `-x value` / `-x=value` for a flag with a one-letter form;
 * repeatable flags collect every value. Unknown flags are errors.
 */

export type FlagType = 'string' | 'int' | 'bool' | 'duration' | 'list';

export interface FlagSpec {
  name: string;
  type: FlagType;
  help: string;
  /** Value placeholder shown in help. */
  arg?: string;
  default?: string | number | boolean;
  /** Allowed values (strings). */
  choices?: readonly string[];
  /** Accepted for compatibility with the original CLI, but the feature is not built yet: using it is a usage error. */
  planned?: string;
  /** Help group heading. */
  group?: string;
  /** A one-letter form, `-f value` (SPEC §9: `-f` is `--format` everywhere). */
  short?: string;
  /**
   * A deprecated name kept so older command lines still work: its value goes
   * to the flag named here. Hidden from `--help`; listed in the contract's
   * compatibility notes.
   */
  aliasOf?: string;
}

export type FlagValue = string | number | boolean | string[];

export interface ParsedFlags {
  values: Record<string, FlagValue | undefined>;
  /** Names the user set explicitly (CLI beats config beats default). */
  explicit: Set<string>;
  positionals: string[];
  help: boolean;
}

/** A bad command line: printed as one line, exit 2, before anything runs (SPEC §5). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * A command cannot go on, for a reason that is not the command line's: printed
 * as one line `quarry <command>: <message>` and the process exits with `exitCode`
 * (e.g. 3 when a run's claim hits a full disk, SPEC §7).
 */
export class CommandFailure extends Error {
  override readonly name = 'CommandFailure';
  constructor(message: string, readonly exitCode: number) {
    super(message);
  }
}

/** Parses a duration like `500ms`, `5s`, `2m`, `1h`, `1m30s` (Go style), `2d` (days), or plain milliseconds. */
export function parseDuration(raw: string): number | undefined {
  if (/^\d+$/.test(raw)) return Number(raw);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(raw); m; m = re.exec(raw)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : m[2] === 'h' ? n * 3_600_000 : n * 86_400_000;
    consumed = re.lastIndex;
  }
  return consumed === raw.length && consumed > 0 ? Math.round(total) : undefined;
}

/**
 * Parses argv (after the command words) against `specs`.
 * @throws UsageError naming the flag and the bad value.
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: Record<string, FlagValue | undefined> = {};
  const explicit = new Set<string>();
  const positionals: string[] = [];
  let help = false;
  for (const s of specs) if (s.default !== undefined) values[s.name] = s.default;

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    const short = /^-([A-Za-z])(?:=(.*))?$/s.exec(arg);
    if (!arg.startsWith('--') && !short) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let inline: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (short) {
      const target = specs.find((s) => s.short === short[1]);
      if (!target) throw new UsageError(`unknown flag ${arg.slice(0, 2)}${specs.some((s) => s.short) ? ` (short forms: ${specs.filter((s) => s.short).map((s) => `-${s.short} = --${s.name}`).join(', ')})` : ''}`);
      name = target.name;
      inline = short[2];
    }
    let spec = byName.get(name);
    if (!spec && name.startsWith('no-') && byName.get(name.slice(3))?.type === 'bool' && inline === undefined) {
      name = name.slice(3);
      spec = byName.get(name);
      inline = 'false';
    }
    if (!spec) throw new UsageError(`unknown flag --${name}${suggest(name, specs)}`);
    if (spec.planned) throw new UsageError(`--${name} is not available in this version of quarry: ${spec.planned}`);
    if (spec.aliasOf) {
      // Converted and checked under the alias's name (messages quote what the user typed), stored under the flag's.
      const target = byName.get(spec.aliasOf);
      if (target) spec = { ...target, name };
    }
    let raw: string;
    if (spec.type === 'bool') {
      raw = inline ?? 'true';
    } else if (inline !== undefined) {
      raw = inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag --${name} needs a value${spec.arg ? ` (${spec.arg})` : ''}`);
      raw = next;
      i++;
    }
    const key = byName.get(name)?.aliasOf ?? name;
    values[key] = convert(spec, raw, values[key], explicit.has(key));
    explicit.add(key);
  }
  return { values, explicit, positionals, help };
}

function convert(spec: FlagSpec, raw: string, previous: FlagValue | undefined, seen: boolean): FlagValue {
  const flag = `--${spec.name}`;
  switch (spec.type) {
    case 'bool':
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      throw new UsageError(`${flag} takes true or false, got ${JSON.stringify(raw)}`);
    case 'int': {
      if (!/^-?\d+$/.test(raw)) throw new UsageError(`${flag} takes a whole number, got ${JSON.stringify(raw)}`);
      return Number(raw);
    }
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === undefined) throw new UsageError(`${flag} takes a duration like 500ms, 5s, 1m or 2d, got ${JSON.stringify(raw)}`);
      return ms;
    }
    case 'list':
      return seen && Array.isArray(previous) ? [...previous, raw] : [raw];
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new UsageError(`${flag} must be one of ${spec.choices.join('|')}, got ${JSON.stringify(raw)}`);
      }
      return raw;
  }
}

function suggest(name: string, specs: readonly FlagSpec[]): string {
  const close = specs.find((s) => !s.planned && !s.aliasOf && (s.name.includes(name) || name.includes(s.name)));
  return close ? ` (did you mean --${close.name}?)` : '';
}

/** Renders the flag table for `--help`, grouped, planned flags last and marked. */
export function renderFlagHelp(specs: readonly FlagSpec[]): string {
  const lines: string[] = [];
  let group: string | undefined;
  const shown = specs.filter((s) => !s.aliasOf);
  const rows = [...shown.filter((s) => !s.planned), ...shown.filter((s) => s.planned)];
  for (const s of rows) {
    const g = s.planned ? 'Accepted later (not in this version)' : s.group;
    if (g !== group) {
      group = g;
      if (g) lines.push('', `${g}:`);
    }
    const left = `  ${s.short ? `-${s.short}, ` : ''}--${s.name}${s.type === 'bool' ? '' : ` ${s.arg ?? (s.type === 'int' ? 'N' : s.type === 'duration' ? 'DURATION' : 'VALUE')}`}`;
    const def = s.default !== undefined && s.default !== false ? ` (default ${String(s.default)})` : '';
    lines.push(`${left.padEnd(34)} ${s.help}${def}`);
  }
  return lines.join('\n');
}
