/**
 * The proxy views of SPEC §9/§11, read-only like every read command:
 * `list pools` and `inspect proxy <pool>` (the pools as configured — by
 * `--config`'s `proxies:` and `--proxy-config` — with their selection state
 * from `<state-dir>/proxy-state.sqlite`), `stats proxies` (uses, failures and
 * rotations per endpoint, from the stored run manifests) and `debug resolve
 * proxy <pool>` (the endpoint the next run would get, computed from the
 * state without storing a selection). No password is ever shown: endpoints
 * are printed as protocol, host, port and user name.
 */
import { resolve } from 'node:path';
import { loadPoolsFile, mergePools, parsePools, ProxyConfigError, type LoadedPools } from '../../proxy/pools-config.js';
import { ProxySelector, UnknownPoolError } from '../../proxy/selector.js';
import { proxyStatePath, SqliteProxyStateStore } from '../../proxy/sqlite-state-store.js';
import type { PoolState, ProxyStateStore } from '../../proxy/state.js';
import { poolFingerprint, randomCandidates, stateFor } from '../../proxy/strategy.js';
import type { ProxyPool } from '../../sdk/proxy-pool.js';
import type { ManifestProxy, RunOutcome } from '../../storage/manifest.js';
import { DEFAULT_STORAGE_PATH } from '../common-flags.js';
import { UsageError, type FlagSpec, type ParsedFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { compileProxyPlan, standaloneJobKey } from './proxy-setup.js';
import { openReadBackend, PARTITION_FILTER_FLAGS, partitionFilters, READ_FLAGS, ReadCommandError, readRuns, runReadCommand, stringFlag, type ReadCommandSpec, type StoredRun } from './read-common.js';
import { RUN_FLAGS } from './run-flags.js';
import { stateDirFor } from './state-dir-flag.js';

/** Where the pools and their state come from. */
const POOL_FLAGS: readonly FlagSpec[] = [
  { name: 'config', type: 'string', arg: 'FILE', help: 'quarry run config file: its proxies:, proxy_config, state_dir and storage keys fill the flags not given', group: 'Pools' },
  { name: 'proxy-config', type: 'string', arg: 'FILE', help: 'JSON file of proxy pools, as quarry run takes it', group: 'Pools' },
  { name: 'state-dir', type: 'string', arg: 'DIR', help: 'Where the selection state is (default: <storage-path>/.quarry for fs storage, as quarry run)', group: 'Pools' },
];

/** The run flags `debug resolve proxy` takes, with the same meaning. */
const RESOLVE_FLAGS: readonly FlagSpec[] = RUN_FLAGS.filter((f) => ['script', 'job', 'proxy-strategy', 'proxy-sticky-key', 'proxy-domain', 'proxy-origin'].includes(f.name))
  .map((f) => ({ ...f, group: 'Run' }));

/** Config keys that fill a view's flags (CLI beats config). */
const CONFIG_FILLS = ['proxy-config', 'state-dir', 'storage-path', 'storage-backend'] as const;

/** The pools of a view, where each was defined, and the flag values after `--config`. */
interface ViewPools {
  loaded: LoadedPools;
  definedIn: ReadonlyMap<string, string>;
  values: ParsedFlags['values'];
  stateFile: string;
}

/**
 * Loads the pools the flags name, as `quarry run` would.
 * @throws UsageError for a bad config or pools file (exit 2).
 */
async function loadViewPools(values: ParsedFlags['values'], explicit: ReadonlySet<string>, io: CliIO): Promise<ViewPools> {
  const v = { ...values };
  const configFile = stringFlag(values, 'config');
  let proxies: unknown;
  if (configFile !== undefined) {
    const { loadRunConfig } = await import('../config.js');
    const cfg = await loadRunConfig(configFile, io.cwd, io.env);
    for (const k of CONFIG_FILLS) if (!explicit.has(k) && cfg.values[k] !== undefined) v[k] = cfg.values[k];
    proxies = cfg.proxies;
  }
  const definedIn = new Map<string, string>();
  let loaded: LoadedPools;
  try {
    const fromConfig = proxies !== undefined ? parsePools(proxies, `config ${configFile!}`, 'proxies') : undefined;
    const file = stringFlag(v, 'proxy-config');
    const fromFile = file !== undefined ? await loadPoolsFile(file, io.cwd) : undefined;
    for (const name of fromConfig?.pools.keys() ?? []) definedIn.set(name, `config ${resolve(io.cwd, configFile!)}`);
    for (const name of fromFile?.pools.keys() ?? []) definedIn.set(name, `--proxy-config ${resolve(io.cwd, file!)}`);
    loaded = mergePools(fromConfig, fromFile);
  } catch (err) {
    if (err instanceof ProxyConfigError) throw new UsageError(err.message);
    throw err;
  }
  const backend = stringFlag(v, 'storage-backend') === 's3' ? 's3' : 'fs';
  const stateDir = stateDirFor(stringFlag(v, 'state-dir'), { backend, path: stringFlag(v, 'storage-path') ?? DEFAULT_STORAGE_PATH }, io);
  return { loaded, definedIn, values: v, stateFile: proxyStatePath(stateDir) };
}

/** A store over no file: every pool is fresh. A reader never creates the state file. */
const NO_STATE: ProxyStateStore = {
  location: '',
  update: () => Promise.reject(new Error('read-only view')),
  read: () => Promise.resolve(undefined),
  close: () => Promise.resolve(),
};

/** Runs `body` with the state file opened read-only (or an empty state when there is none yet). */
async function withState<T>(file: string, body: (store: ProxyStateStore, exists: boolean) => Promise<T>): Promise<T> {
  let store: SqliteProxyStateStore | undefined;
  try {
    store = SqliteProxyStateStore.openReader(file);
  } catch (err) {
    throw new ReadCommandError(`cannot read the proxy selection state ${file}: ${(err as Error).message}`);
  }
  try {
    return await body(store ?? NO_STATE, store !== undefined);
  } finally {
    await store?.close();
  }
}

const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined || ms === 0 ? null : new Date(ms).toISOString());
const noPools = 'no proxy pools configured: give --config FILE (its proxies:) or --proxy-config FILE, as to quarry run';

/** The stored state if it was made for this pool's endpoints; `stale` when they changed since. */
function poolState(pool: ProxyPool, stored: PoolState | undefined): { state: PoolState; stored: boolean; stale: boolean } {
  const stale = stored !== undefined && stored.fingerprint !== poolFingerprint(pool);
  return { state: stateFor(pool, stored), stored: stored !== undefined && !stale, stale };
}

/** One row of `quarry list pools`. */
export interface PoolRow {
  pool: string;
  strategy: string;
  endpoints: number;
  sticky_scope: string | null;
  sticky_ttl_ms: number | null;
  recency_window: number | null;
  /** Selections made so far (from the state dir); 0 when never used. */
  selections: number;
  last_used_at: string | null;
  defined_in: string;
}

/** `quarry list pools`: the configured pools, with how often each was used. */
export const LIST_POOLS: ReadCommandSpec = {
  name: 'list pools',
  usage: `Usage: quarry list pools [--config FILE] [--proxy-config FILE] [flags]

Lists the proxy pools the config file's proxies: and --proxy-config define
(as quarry run reads them), each with its strategy, endpoint count, sticky
scope and TTL, recency window, and the selections made so far from the
selection state in the state dir. No password is shown. With no pools
configured it prints an empty list and says so on stderr. Exit code 0, 2 for
a bad command line or pools file.`,
  flags: [...POOL_FLAGS, ...READ_FLAGS],
  opensStorage: false,
  body: async ({ values, explicit, io }) => {
    const view = await loadViewPools(values, explicit, io);
    const rows = await withState(view.stateFile, async (store) => {
      const out: PoolRow[] = [];
      for (const pool of [...view.loaded.pools.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
        const { state } = poolState(pool, await store.read(pool.name));
        out.push({
          pool: pool.name,
          strategy: pool.strategy,
          endpoints: pool.endpoints.length,
          sticky_scope: pool.sticky?.scope ?? null,
          sticky_ttl_ms: pool.sticky?.ttl_ms ?? null,
          recency_window: pool.recency_window ?? null,
          selections: state.selections,
          last_used_at: iso(state.last_used_at),
          defined_in: view.definedIn.get(pool.name)!,
        });
      }
      return out;
    });
    return { data: rows, table: { empty: '(no proxy pools)' }, ...(rows.length === 0 ? { notice: noPools } : {}) };
  },
};

/** Uses of one endpoint, summed from the stored manifests. */
export interface ProxyUsageRow {
  pool: string;
  /** Position in the pool's list when it was last used. */
  endpoint_index: number;
  protocol: string;
  host: string;
  port: number;
  username: string | null;
  /** Finalized runs that went through it. */
  uses: number;
  succeeded: number;
  /** Runs that ended other than success or interrupted: each moved the pool off the endpoint. */
  failures: number;
  /** `rotate_proxy` events of those runs. */
  rotations: number;
  first_used_at: string;
  last_used_at: string;
}

const NEUTRAL: ReadonlySet<RunOutcome> = new Set<RunOutcome>(['success', 'interrupted']);

/** Per endpoint (pool, protocol, host, port, user), the uses of the finalized runs among `runs`. Pure. */
export function proxyUsage(runs: readonly StoredRun[], onlyPool?: string): ProxyUsageRow[] {
  const rows = new Map<string, ProxyUsageRow>();
  for (const { manifest } of runs) {
    const px: ManifestProxy | undefined = manifest?.proxy;
    if (manifest === undefined || px === undefined || (onlyPool !== undefined && px.pool !== onlyPool)) continue;
    const e = px.endpoint;
    const key = JSON.stringify([px.pool, e.protocol, e.host, e.port, e.username ?? null]);
    const at = manifest.started_at;
    let row = rows.get(key);
    if (row === undefined) {
      row = { pool: px.pool, endpoint_index: px.endpoint_index, protocol: e.protocol, host: e.host, port: e.port, username: e.username ?? null, uses: 0, succeeded: 0, failures: 0, rotations: 0, first_used_at: at, last_used_at: at };
      rows.set(key, row);
    }
    row.uses++;
    if (manifest.outcome === 'success') row.succeeded++;
    if (!NEUTRAL.has(manifest.outcome)) row.failures++;
    row.rotations += px.rotations.length;
    if (at < row.first_used_at) row.first_used_at = at;
    if (at >= row.last_used_at) {
      row.last_used_at = at;
      row.endpoint_index = px.endpoint_index;
    }
  }
  return [...rows.values()].sort((a, b) => (a.pool === b.pool ? a.endpoint_index - b.endpoint_index || a.port - b.port : a.pool < b.pool ? -1 : 1));
}

/** `quarry stats proxies`: uses, failures and rotations per endpoint, from the stored runs. */
export const STATS_PROXIES: ReadCommandSpec = {
  name: 'stats proxies',
  usage: `Usage: quarry stats proxies [--pool NAME] [flags]

Counts, per endpoint of each proxy pool, the finalized runs that went through
it (uses), how many succeeded, failures (runs that ended other than success
or interrupted), and rotations (rotate_proxy events), from the proxy the run
manifests record. Runs without a proxy and unfinalized runs (no manifest
yet) are not counted. Exit code 0, 1 when the storage cannot be read, 2 for
a bad command line.`,
  flags: [{ name: 'pool', type: 'string', arg: 'NAME', help: 'Only this pool', group: 'Filters' }, ...PARTITION_FILTER_FLAGS, ...READ_FLAGS],
  opensStorage: true,
  body: async ({ backend, dataset, values }) => {
    const rows = proxyUsage(await readRuns(backend, dataset, partitionFilters(values)), stringFlag(values, 'pool'));
    return { data: rows, table: { columns: ['pool', 'endpoint_index', 'protocol', 'host', 'port', 'username', 'uses', 'succeeded', 'failures', 'rotations', 'last_used_at'], empty: '(no runs went through a proxy)' } };
  },
};

/** The pool `name`. @throws ReadCommandError listing the pools there are. */
function poolNamed(view: ViewPools, name: string): ProxyPool {
  const pool = view.loaded.pools.get(name);
  if (pool !== undefined) return pool;
  if (view.loaded.pools.size === 0) throw new ReadCommandError(`no proxy pool ${JSON.stringify(name)}: ${noPools}`);
  throw new ReadCommandError(`no proxy pool ${JSON.stringify(name)}; pools: ${[...view.loaded.pools.keys()].join(', ')}`);
}

/** Stored runs of the view's storage when it exists; undefined when there is none to read. */
async function storedRunsIfAny(values: ParsedFlags['values'], io: CliIO, dataset: string): Promise<{ location: string; runs: StoredRun[] } | undefined> {
  let backend;
  try {
    backend = await openReadBackend(values, io.cwd);
  } catch (err) {
    if (err instanceof ReadCommandError) return undefined;
    throw err;
  }
  try {
    return { location: backend.location, runs: await readRuns(backend, dataset, {}) };
  } finally {
    await backend.close();
  }
}

/** `quarry inspect proxy <pool>`: one pool, its endpoints, its selection state and their uses. */
export const INSPECT_PROXY: ReadCommandSpec = {
  name: 'inspect proxy',
  usage: `Usage: quarry inspect proxy <pool> [--config FILE] [--proxy-config FILE] [flags]

Shows one proxy pool as configured (strategy, sticky scope and TTL, recency
window, endpoints without passwords), its selection state in the state dir
(selections so far, the next round-robin endpoint, recent picks, endpoints
the next selection skips after a rotation or failure, sticky assignments)
and, when the storage exists, each endpoint's uses, failures and rotations
from the stored runs. Exit code 0, 1 when no such pool is configured, 2 for
a bad command line or pools file.`,
  flags: [...POOL_FLAGS, ...READ_FLAGS],
  positionals: ['pool'],
  opensStorage: false,
  body: async ({ values, explicit, positionals, dataset, io }) => {
    const view = await loadViewPools(values, explicit, io);
    const pool = poolNamed(view, positionals[0]!);
    const now = Date.now();
    const { state, stored, stale } = await withState(view.stateFile, async (store) => poolState(pool, await store.read(pool.name)));
    const sticky = Object.values(state.sticky).filter((s) => s.expires_at === null || s.expires_at > now);
    const stats = await storedRunsIfAny(view.values, io, dataset);
    const usage = stats ? proxyUsage(stats.runs, pool.name) : [];
    const endpoints = pool.endpoints.map((e, index) => {
      const u = usage.find((r) => r.protocol === e.protocol && r.host === e.host && r.port === e.port && r.username === (e.username ?? null));
      return {
        index,
        protocol: e.protocol,
        host: e.host,
        port: e.port,
        username: e.username ?? null,
        credentials: e.password !== undefined,
        last_selected_at: iso(state.last_used[index]),
        skipped_next: state.avoid.includes(index),
        sticky_keys: sticky.filter((s) => s.index === index).length,
        uses: u?.uses ?? 0,
        failures: u?.failures ?? 0,
        rotations: u?.rotations ?? 0,
      };
    });
    const data = {
      pool: pool.name,
      strategy: pool.strategy,
      sticky: pool.sticky ? { scope: pool.sticky.scope, ttl_ms: pool.sticky.ttl_ms ?? null } : null,
      recency_window: pool.recency_window ?? null,
      defined_in: view.definedIn.get(pool.name)!,
      state: {
        location: view.stateFile,
        stored,
        ...(stale ? { note: 'the stored state was made for another endpoint list; the next run starts afresh' } : {}),
        selections: state.selections,
        last_used_at: iso(state.last_used_at),
        next_round_robin_index: state.cursor,
        recent: state.recent,
        skipped_next: state.avoid,
        sticky_assignments: sticky.filter((s) => s.index !== null).length,
        sticky_rotated: sticky.filter((s) => s.index === null).length,
      },
      endpoints,
      usage_from: stats ? { storage: stats.location, dataset, runs: usage.reduce((n, r) => n + r.uses, 0) } : null,
    };
    return { data, ...(stats ? {} : { notice: `no storage at ${String(view.values['storage-path'])}: uses per endpoint are not counted (give --storage-path)` }) };
  },
};

/** Parses `--job` as `quarry run` does. @throws UsageError */
function jobOf(values: ParsedFlags['values']): unknown {
  const raw = stringFlag(values, 'job');
  if (raw === undefined) return {};
  let job: unknown;
  try {
    job = JSON.parse(raw);
  } catch {
    throw new UsageError('--job is not valid JSON');
  }
  if (typeof job !== 'object' || job === null || Array.isArray(job)) throw new UsageError('--job must be a JSON object');
  return job;
}

/** `quarry debug resolve proxy <pool>`: the endpoint the next run would get, nothing stored. */
export const DEBUG_RESOLVE_PROXY: ReadCommandSpec = {
  name: 'debug resolve proxy',
  usage: `Usage: quarry debug resolve proxy <pool> [--job JSON] [--script FILE] [--proxy-* flags] [flags]

Prints the endpoint (never its password) that the next run of this job would
get from the pool, given the selection state in the state dir, with the
flags quarry run would be given. It only reads: no selection is stored, so
the next run still gets this endpoint (for random: one of the candidates,
all listed). For sticky scope job (or a domain/origin key the job cannot
give), --script is needed: a standalone run's key is its script and job.
Exit code 0, 1 when no such pool is configured, 2 for a bad command line.`,
  flags: [...RESOLVE_FLAGS, ...POOL_FLAGS, ...READ_FLAGS],
  positionals: ['pool'],
  opensStorage: false,
  body: async ({ values, explicit, positionals, io }) => {
    const view = await loadViewPools(values, explicit, io);
    const pool = poolNamed(view, positionals[0]!);
    const plan = compileProxyPlan({ ...values, 'proxy-pool': pool.name, 'proxy-config': undefined }, io.cwd, undefined, [])!;
    const job = jobOf(values);
    const script = stringFlag(values, 'script');
    return withState(view.stateFile, async (store, exists) => {
      const selector = new ProxySelector(view.loaded.pools, store);
      let sel;
      try {
        sel = await selector.select({
          pool: pool.name,
          jobKey: script !== undefined ? standaloneJobKey(resolve(io.cwd, script), job) : '',
          job,
          ...(plan.strategy ? { strategy: plan.strategy } : {}),
          ...(plan.stickyKey ? { stickyKey: plan.stickyKey } : {}),
          ...(plan.domain ? { domain: plan.domain } : {}),
          ...(plan.origin ? { origin: plan.origin } : {}),
        }, false);
      } catch (err) {
        if (err instanceof UnknownPoolError) throw new ReadCommandError(err.message);
        throw err;
      }
      if (sel.sticky && (sel.sticky.key_source === 'job' || sel.sticky.key_source === 'job_fallback') && script === undefined) {
        throw new UsageError(`pool ${pool.name} is sticky by ${sel.sticky.key_source === 'job' ? 'job' : `${sel.sticky.scope}, and the job has no url (nor --proxy-${sel.sticky.scope})`}: the key is the run's script and job, so give --script FILE (or --proxy-sticky-key)`);
      }
      const stored = await store.read(pool.name);
      const entry = sel.sticky ? poolState(pool, stored).state.sticky[sel.sticky.key_hash] : undefined;
      const e = sel.endpoint;
      return {
        data: {
          pool: sel.pool,
          strategy: sel.strategy,
          endpoint_index: sel.index,
          endpoint: { protocol: e.protocol, host: e.host, port: e.port, username: e.username ?? null },
          ...(sel.strategy === 'random' ? { candidates: randomCandidates(pool, stored, pool.recency_window) } : {}),
          ...(sel.sticky ? { sticky: { scope: sel.sticky.scope, key_source: sel.sticky.key_source, hit: sel.sticky.hit, expires_at: sel.sticky.hit ? iso(entry?.expires_at) : null } } : {}),
          consumed: false,
          state: { location: view.stateFile, stored: exists && stored !== undefined },
        },
      };
    });
  },
};

/** Entry of `quarry list pools`. */
export function listPoolsCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(LIST_POOLS, argv, io);
}

/** Entry of `quarry stats proxies`. */
export function statsProxiesCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(STATS_PROXIES, argv, io);
}

/** Entry of `quarry inspect proxy`. */
export function inspectProxyCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(INSPECT_PROXY, argv, io);
}

/** Entry of `quarry debug resolve proxy`. */
export function debugResolveProxyCommand(argv: readonly string[], io: CliIO): Promise<number> {
  return runReadCommand(DEBUG_RESOLVE_PROXY, argv, io);
}
