/**
 * The settings a run ran with (SPEC §8 "State-driven retry"), recorded in its
 * claim and its manifest so that `quarry retry` re-runs it the same way.
 * Nothing secret is ever stored here: a browser endpoint is kept redacted
 * (password and secret query values masked), so a retry reuses it only when
 * the endpoint is given again.
 */

export type RecordedFlushMode = 'at_least_once' | 'chunks_first' | 'two_phase';

/** The ingestion policy and its options (SPEC §6), in the manifest's snake_case. */
export type RecordedPolicy =
  | { name: 'strict' }
  | { name: 'buffered'; flush_mode: RecordedFlushMode; buffer_events?: number; buffer_bytes?: number }
  | { name: 'streaming'; flush_mode: RecordedFlushMode; flush_count?: number; flush_interval_ms?: number };

/** How the run got its browser: launched by the executor (when the script needs one), or an endpoint, redacted. */
export type RecordedBrowser = { mode: 'launch' } | { mode: 'endpoint'; endpoint: string };

/** Field `settings` of a claim and a manifest. */
export interface RunSettings {
  policy: RecordedPolicy;
  /** `--run-timeout` in milliseconds; null when the run had none. */
  run_timeout_ms: number | null;
  /** `--retries` of the invocation that started the run. */
  retries: number;
  browser: RecordedBrowser;
  /** Proxy pool and strategy; null: the run had no proxy pool. */
  proxy: { pool: string; strategy: string } | null;
  /** Run-completed adapter, kind and target without credentials; null: none (adapters are not built yet). */
  adapter: { kind: string; target: string } | null;
  /** Live event sinks, without secrets; empty today (sinks are not built yet). */
  event_sinks: Array<{ kind: string; target: string }>;
}

const FLUSH_MODES: readonly string[] = ['at_least_once', 'chunks_first', 'two_phase'];

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** What is wrong with recorded policy settings, or undefined. */
function policyProblem(p: unknown): string | undefined {
  if (!isObject(p)) return 'policy is not an object';
  const allowed: Record<string, readonly string[]> = {
    strict: ['name'],
    buffered: ['name', 'flush_mode', 'buffer_events', 'buffer_bytes'],
    streaming: ['name', 'flush_mode', 'flush_count', 'flush_interval_ms'],
  };
  const keys = typeof p.name === 'string' ? allowed[p.name] : undefined;
  if (!keys) return `policy.name ${JSON.stringify(p.name)} is not strict, buffered or streaming`;
  const stray = Object.keys(p).find((k) => !keys.includes(k));
  if (stray) return `policy.${stray} is not an option of ${p.name}`;
  if (p.name === 'strict') return undefined;
  if (!FLUSH_MODES.includes(p.flush_mode as string)) return `policy.flush_mode ${JSON.stringify(p.flush_mode)} is not one of ${FLUSH_MODES.join(', ')}`;
  const bad = keys.slice(2).find((k) => p[k] !== undefined && !isCount(p[k]));
  if (bad) return `policy.${bad} is not a whole number above 0`;
  // A policy with none of its bounds could not have run (SPEC §6: at least one is required).
  if (keys.slice(2).every((k) => p[k] === undefined)) return `policy ${p.name} records none of ${keys.slice(2).join(', ')}`;
  return undefined;
}

function targetProblem(v: unknown, what: string): string | undefined {
  if (!isObject(v) || typeof v.kind !== 'string' || typeof v.target !== 'string') return `${what} is not { kind, target }`;
  return undefined;
}

/**
 * What is wrong with a stored `settings` value, or undefined when it is
 * well-formed. Pure; the manifest and claim parsers turn a problem into
 * their own error naming the file.
 */
export function runSettingsProblem(v: unknown): string | undefined {
  if (!isObject(v)) return 'not an object';
  const policy = policyProblem(v.policy);
  if (policy) return policy;
  if (v.run_timeout_ms !== null && !isCount(v.run_timeout_ms)) return 'run_timeout_ms is not null or a whole number above 0';
  if (typeof v.retries !== 'number' || !Number.isSafeInteger(v.retries) || v.retries < 0) return 'retries is not a whole number, 0 or more';
  const b = v.browser;
  if (!isObject(b) || !((b.mode === 'launch' && Object.keys(b).length === 1) || (b.mode === 'endpoint' && typeof b.endpoint === 'string' && Object.keys(b).length === 2))) {
    return 'browser is not { mode: "launch" } or { mode: "endpoint", endpoint }';
  }
  if (v.proxy !== null && (!isObject(v.proxy) || typeof v.proxy.pool !== 'string' || typeof v.proxy.strategy !== 'string')) return 'proxy is not null or { pool, strategy }';
  if (v.adapter !== null) {
    const a = targetProblem(v.adapter, 'adapter');
    if (a) return `${a} or null`;
  }
  if (!Array.isArray(v.event_sinks)) return 'event_sinks is not a list';
  for (const s of v.event_sinks) {
    const bad = targetProblem(s, 'an event sink');
    if (bad) return bad;
  }
  return undefined;
}
