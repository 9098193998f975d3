/**
 * The proxy flags of `quarry run` (SPEC §11): `--proxy-pool` (config
 * `proxy.pool`) picks a pool from the config file's `proxies:` and
 * `--proxy-config`; the other flags refine the selection. Compiled and
 * loaded before anything runs, so a bad pool is a usage error (exit 2).
 */
import { resolve } from 'node:path';
import { loadPoolsFile, mergePools, parsePools, ProxyConfigError, type LoadedPools } from '../../proxy/pools-config.js';
import { ProxyRouter } from '../../proxy/router.js';
import { ProxySelector } from '../../proxy/selector.js';
import { RedisProxyStateStore } from '../../proxy/redis-state-store.js';
import { proxyStatePath, SqliteProxyStateStore } from '../../proxy/sqlite-state-store.js';
import type { ProxyStateStore } from '../../proxy/state.js';
import type { ProxyStrategy } from '../../sdk/proxy-pool.js';
import { UsageError, type ParsedFlags } from '../flags.js';

/** The proxy choice of an invocation, checked; no secret in it (pools are loaded apart). */
export interface ProxyPlan {
  pool: string;
  strategy?: ProxyStrategy;
  stickyKey?: string;
  domain?: string;
  origin?: string;
  /** The config file the pools came from (absolute), if any: a tree stores it so resume can reload it. */
  configFile?: string;
  /** `--proxy-config` (absolute), if any. */
  proxyConfigFile?: string;
}

/** A plan with its pools (which hold passwords: never stored or printed). */
export interface PreparedProxy {
  plan: ProxyPlan;
  pools: LoadedPools;
}

/** The config file's pools, as `--config` gave them. */
export interface ConfigPools {
  /** Absolute path of the config file. */
  file: string;
  proxies?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const REFINING = ['proxy-strategy', 'proxy-sticky-key', 'proxy-domain', 'proxy-origin'] as const;

/**
 * Compiles the proxy flags. Undefined when no pool is chosen.
 * @throws UsageError for a refining flag without a pool, or a bad origin.
 */
export function compileProxyPlan(v: ParsedFlags['values'], cwd: string, config: ConfigPools | undefined, notices: string[]): ProxyPlan | undefined {
  const pool = str(v['proxy-pool']);
  const proxyConfig = str(v['proxy-config']);
  if (pool === undefined) {
    const stray = REFINING.find((f) => str(v[f]) !== undefined);
    if (stray) throw new UsageError(`--${stray} needs --proxy-pool NAME (the pool to select from)`);
    if (proxyConfig !== undefined) notices.push('--proxy-config has no effect without --proxy-pool (no run gets a proxy)');
    return undefined;
  }
  const origin = str(v['proxy-origin']);
  if (origin !== undefined) {
    let ok = false;
    try {
      const u = new URL(origin);
      ok = u.origin === origin.replace(/\/$/, '') && u.origin !== 'null';
    } catch {
      ok = false;
    }
    if (!ok) throw new UsageError(`--proxy-origin ${JSON.stringify(origin)} must be scheme://host[:port], e.g. https://shop.example`);
  }
  return {
    pool,
    ...(str(v['proxy-strategy']) ? { strategy: str(v['proxy-strategy']) as ProxyStrategy } : {}),
    ...(str(v['proxy-sticky-key']) ? { stickyKey: str(v['proxy-sticky-key'])! } : {}),
    ...(str(v['proxy-domain']) ? { domain: str(v['proxy-domain'])! } : {}),
    ...(origin ? { origin: new URL(origin).origin } : {}),
    ...(config && config.proxies !== undefined ? { configFile: config.file } : {}),
    ...(proxyConfig ? { proxyConfigFile: resolve(cwd, proxyConfig) } : {}),
  };
}

/**
 * Loads the pools of a plan: the config file's `proxies:` and the `--proxy-config` file.
 * @throws UsageError naming the file and field; or when the chosen pool is in neither.
 */
export async function loadProxyPools(plan: ProxyPlan, config: ConfigPools | undefined, cwd: string): Promise<LoadedPools> {
  try {
    const fromConfig = config?.proxies !== undefined ? parsePools(config.proxies, `config ${config.file}`, 'proxies') : undefined;
    const fromFile = plan.proxyConfigFile !== undefined ? await loadPoolsFile(plan.proxyConfigFile, cwd) : undefined;
    const loaded = mergePools(fromConfig, fromFile);
    if (!loaded.pools.has(plan.pool)) {
      const where = [fromConfig ? `proxies: of ${config!.file}` : undefined, fromFile ? `--proxy-config ${plan.proxyConfigFile}` : undefined].filter(Boolean).join(' and ');
      throw new UsageError(`--proxy-pool ${plan.pool}: no such pool${where ? ` in ${where}` : ' (no pools are configured: give --proxy-config FILE or proxies: in --config)'}; pools: ${[...loaded.pools.keys()].join(', ') || '(none)'}`);
    }
    return loaded;
  } catch (err) {
    if (err instanceof ProxyConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** Compiles and loads in one step; undefined when no pool is chosen. */
export async function prepareProxy(v: ParsedFlags['values'], cwd: string, config: ConfigPools | undefined, notices: string[]): Promise<PreparedProxy | undefined> {
  const plan = compileProxyPlan(v, cwd, config, notices);
  if (plan === undefined) return undefined;
  const pools = await loadProxyPools(plan, config, cwd);
  notices.push(...pools.warnings);
  return { plan, pools };
}

/**
 * The router every run of the invocation selects through, its state in
 * `<stateDir>/proxy-state.sqlite`.
 * @throws UsageError when the state file cannot be opened.
 */
export function openProxyRouter(p: PreparedProxy, stateDir: string, onError: (message: string) => void): ProxyRouter {
  let store: SqliteProxyStateStore;
  const path = proxyStatePath(stateDir);
  try {
    store = SqliteProxyStateStore.open(path);
  } catch (err) {
    throw new UsageError(`cannot open the proxy selection state ${path}: ${(err as Error).message}; give a writable --state-dir`);
  }
  return proxyRouterOn(p, store, onError);
}

/** Where an invocation keeps its proxy selection state (SPEC §11, §12). */
export type ProxyStateTarget =
  /** One machine: `<stateDir>/proxy-state.sqlite`. */
  | { stateDir: string }
  /** A queue deployment (`--queue`, `quarry worker`): Redis, keys under the queue name's prefix, shared by every worker. */
  | { queue: string; queueName?: string };

/** The key prefix of a queue deployment's shared state in Redis (`--queue-name`, default `quarry`). */
export function queueKeyPrefix(queueName = 'quarry'): string {
  return `quarry:${queueName}:`;
}

/**
 * The proxy selection state store of an invocation: Redis for a queue
 * deployment (so every worker shares round robin, sticky map and recency
 * window), else the state dir's SQLite file.
 * @throws UsageError when the store cannot be opened or reached.
 */
export async function openProxyStateStore(target: ProxyStateTarget): Promise<ProxyStateStore> {
  if ('queue' in target) {
    try {
      return await RedisProxyStateStore.open(target.queue, { keyPrefix: queueKeyPrefix(target.queueName) });
    } catch (err) {
      throw new UsageError(`${(err as Error).message}; check --queue`);
    }
  }
  const path = proxyStatePath(target.stateDir);
  try {
    return SqliteProxyStateStore.open(path);
  } catch (err) {
    throw new UsageError(`cannot open the proxy selection state ${path}: ${(err as Error).message}; give a writable --state-dir`);
  }
}

/** The router of an invocation over a store from {@link openProxyStateStore}. */
export function proxyRouterOn(p: PreparedProxy, store: ProxyStateStore, onError: (message: string) => void): ProxyRouter {
  const { plan } = p;
  return new ProxyRouter(new ProxySelector(p.pools.pools, store), {
    pool: plan.pool,
    ...(plan.strategy ? { strategy: plan.strategy } : {}),
    ...(plan.stickyKey ? { stickyKey: plan.stickyKey } : {}),
    ...(plan.domain ? { domain: plan.domain } : {}),
    ...(plan.origin ? { origin: plan.origin } : {}),
  }, onError);
}

/**
 * A standalone run's key for sticky scope `job`: its script and job, as a
 * fan-out item's dedup key is its target and params (SPEC §10), so the
 * attempts of one job share it.
 */
export function standaloneJobKey(scriptPath: string, job: unknown): string {
  return `${scriptPath}\n${JSON.stringify(job ?? {})}`;
}

/** The plan as a tree stores it (SPEC §10: sources, never secrets). */
export function storedProxyPlan(plan: ProxyPlan): Record<string, string> {
  return {
    pool: plan.pool,
    ...(plan.strategy ? { strategy: plan.strategy } : {}),
    ...(plan.stickyKey ? { sticky_key: plan.stickyKey } : {}),
    ...(plan.domain ? { domain: plan.domain } : {}),
    ...(plan.origin ? { origin: plan.origin } : {}),
    ...(plan.configFile ? { config: plan.configFile } : {}),
    ...(plan.proxyConfigFile ? { proxy_config: plan.proxyConfigFile } : {}),
  };
}

/** A stored plan read back. */
export function proxyPlanFromStored(s: Record<string, unknown>): ProxyPlan {
  const g = (k: string): string | undefined => str(s[k]);
  return {
    pool: g('pool') ?? '',
    ...(g('strategy') ? { strategy: g('strategy') as ProxyStrategy } : {}),
    ...(g('sticky_key') ? { stickyKey: g('sticky_key')! } : {}),
    ...(g('domain') ? { domain: g('domain')! } : {}),
    ...(g('origin') ? { origin: g('origin')! } : {}),
    ...(g('config') ? { configFile: g('config')! } : {}),
    ...(g('proxy_config') ? { proxyConfigFile: g('proxy_config')! } : {}),
  };
}
