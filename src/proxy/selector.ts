/**
 * `ProxySelector`: picks each run's proxy at run start from a pool (SPEC §11),
 * through a {@link ProxyStateStore} so the choice continues where the last
 * run, the last invocation (state dir) or another worker (Redis) left it.
 * Sticky keys come from the run: `--proxy-sticky-key`, else by scope — the
 * work item's dedup key (`job`), or the job's `url` host (`domain`) or
 * origin (`origin`), falling back to `--proxy-domain`/`--proxy-origin`.
 */
import type { ProxyEndpoint, ProxyEndpointRedacted } from '../protocol/index.js';
import type { ProxyPool, ProxyStickyScope, ProxyStrategy } from '../sdk/proxy-pool.js';
import { redactProxyEndpoint } from '../sdk/proxy.js';
import type { ProxyStateStore } from './state.js';
import { hashStickyKey, markEndpoint, selectEndpoint, stateFor } from './strategy.js';

/** Where a sticky key came from. */
export type StickyKeySource = 'explicit' | 'job' | 'job_url' | 'flag' | 'job_fallback';

/** What the selector needs to know of a run. */
export interface ProxyRequest {
  readonly pool: string;
  /** `--proxy-strategy`: replaces the pool's strategy. */
  readonly strategy?: ProxyStrategy;
  /** `--proxy-sticky-key`: replaces the scope's key. */
  readonly stickyKey?: string;
  /** The work item's dedup key (sticky scope `job`). */
  readonly jobKey: string;
  /** The run's job: its `url`, when a string, gives the domain and origin. */
  readonly job?: unknown;
  /** `--proxy-domain`. */
  readonly domain?: string;
  /** `--proxy-origin`. */
  readonly origin?: string;
}

/** A run's proxy. `endpoint` holds the password: it goes only into the run request. */
export interface ProxySelection {
  readonly pool: string;
  readonly strategy: ProxyStrategy;
  readonly index: number;
  readonly endpoint: ProxyEndpoint;
  readonly sticky?: { readonly scope: ProxyStickyScope; readonly key_source: StickyKeySource; readonly key_hash: string; readonly hit: boolean };
}

/** A selection as the manifest and report record it: no password, the sticky key only as its source. */
export interface RecordedProxySelection {
  pool: string;
  strategy: ProxyStrategy;
  endpoint: ProxyEndpointRedacted;
  endpoint_index: number;
  sticky?: { scope: ProxyStickyScope; key_source: StickyKeySource; hit: boolean };
}

/** The record of a selection. Pure. */
export function recordSelection(sel: ProxySelection): RecordedProxySelection {
  return {
    pool: sel.pool,
    strategy: sel.strategy,
    endpoint: redactProxyEndpoint(sel.endpoint),
    endpoint_index: sel.index,
    ...(sel.sticky ? { sticky: { scope: sel.sticky.scope, key_source: sel.sticky.key_source, hit: sel.sticky.hit } } : {}),
  };
}

/** The pool named in a request does not exist. */
export class UnknownPoolError extends Error {
  override readonly name = 'UnknownPoolError';
}

function jobUrl(job: unknown): URL | undefined {
  const raw = typeof job === 'object' && job !== null && !Array.isArray(job) ? (job as Record<string, unknown>).url : undefined;
  if (typeof raw !== 'string') return undefined;
  try {
    const u = new URL(raw);
    return u.host !== '' ? u : undefined;
  } catch {
    return undefined;
  }
}

/** The sticky key of a request and where it came from. Pure. */
export function stickyKeyOf(scope: ProxyStickyScope, req: ProxyRequest): { key: string; source: StickyKeySource } {
  if (req.stickyKey !== undefined && req.stickyKey !== '') return { key: `key:${req.stickyKey}`, source: 'explicit' };
  if (scope === 'job') return { key: `job:${req.jobKey}`, source: 'job' };
  const url = jobUrl(req.job);
  if (scope === 'domain') {
    if (url) return { key: `domain:${url.hostname.toLowerCase()}`, source: 'job_url' };
    if (req.domain) return { key: `domain:${req.domain.toLowerCase()}`, source: 'flag' };
  } else {
    if (url) return { key: `origin:${url.origin}`, source: 'job_url' };
    if (req.origin) return { key: `origin:${req.origin}`, source: 'flag' };
  }
  return { key: `job:${req.jobKey}`, source: 'job_fallback' };
}

export interface ProxySelectorOptions {
  /** Epoch ms; default `Date.now`. */
  readonly now?: () => number;
  /** Uniform in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

/** Selects proxies from named pools with persisted state. */
export class ProxySelector {
  readonly #pools: ReadonlyMap<string, ProxyPool>;
  readonly #store: ProxyStateStore;
  readonly #now: () => number;
  readonly #random: () => number;

  constructor(pools: ReadonlyMap<string, ProxyPool>, store: ProxyStateStore, options: ProxySelectorOptions = {}) {
    this.#pools = pools;
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  get store(): ProxyStateStore {
    return this.#store;
  }

  /** The pool called `name`. @throws UnknownPoolError listing the pools there are. */
  pool(name: string): ProxyPool {
    const p = this.#pools.get(name);
    if (p === undefined) throw new UnknownPoolError(`no proxy pool ${JSON.stringify(name)}; pools: ${[...this.#pools.keys()].join(', ') || '(none)'}`);
    return p;
  }

  /**
   * Selects the endpoint for one run and stores the state after it.
   * @param commit false: compute the choice without storing it (`debug resolve proxy`).
   * @throws UnknownPoolError; the store's error when the state cannot be written.
   */
  async select(req: ProxyRequest, commit = true): Promise<ProxySelection> {
    const pool = this.pool(req.pool);
    const strategy = req.strategy ?? pool.strategy;
    const scope = pool.sticky?.scope ?? 'job';
    const sticky = strategy === 'sticky' ? stickyKeyOf(scope, req) : undefined;
    const stickyHash = sticky ? hashStickyKey(sticky.key) : undefined;
    const input = {
      strategy,
      ...(stickyHash !== undefined ? { stickyKey: stickyHash } : {}),
      ...(pool.sticky?.ttl_ms !== undefined ? { ttlMs: pool.sticky.ttl_ms } : {}),
      ...(pool.recency_window !== undefined ? { recencyWindow: pool.recency_window } : {}),
      now: this.#now(),
      random: this.#random,
    };
    const pick = commit
      ? await this.#store.update(pool.name, (cur) => {
        const r = selectEndpoint(pool, cur, input);
        return { state: r.state, result: r.pick };
      })
      : selectEndpoint(pool, await this.#store.read(pool.name), input).pick;
    return {
      pool: pool.name,
      strategy,
      index: pick.index,
      endpoint: pool.endpoints[pick.index]!,
      ...(sticky && stickyHash !== undefined ? { sticky: { scope, key_source: sticky.source, key_hash: stickyHash, hit: pick.stickyHit === true } } : {}),
    };
  }

  /**
   * Moves the next selection (or the sticky key's next assignment) off the
   * selection's endpoint: called on `rotate_proxy` and when a run fails.
   */
  async mark(sel: ProxySelection): Promise<void> {
    const pool = this.pool(sel.pool);
    await this.#store.update(pool.name, (cur) => ({ state: markEndpoint(pool, cur, sel.index, sel.sticky?.key_hash), result: undefined }));
  }

  /** The pool's state as stored (fresh when never used or its endpoints changed). */
  async state(name: string): Promise<ReturnType<typeof stateFor>> {
    const pool = this.pool(name);
    return stateFor(pool, await this.#store.read(name));
  }
}
