/**
 * The Redis frontier (SPEC §12): one tree's frontier in Redis, shared by every
 * worker of the tree. Each decision is one Lua script run by EVALSHA
 * (redis-frontier-scripts.ts), so it is atomic across all clients the way the
 * SQLite frontier's `BEGIN IMMEDIATE` is. Time comes from the caller's clock
 * (passed to each script), so the conformance suite's fake clock drives
 * lease expiry here too. ioredis is imported lazily: the embedded default
 * never loads it.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { monotonicFactory } from 'ulid';
import type { RunOutcome } from '../storage/manifest.js';
import {
  checkOwner,
  checkTreeOptions,
  FrontierError,
  SYSTEM_CLOCK,
  type AdmitDecision,
  type AttemptOutcome,
  type AttemptPartition,
  type Clock,
  type CompleteResult,
  type Frontier,
  type FrontierCounters,
  type ItemRecord,
  type ItemState,
  type Lease,
  type LeaseRef,
  type TreeOptions,
  type WorkItem,
  type WorkItemInput,
} from './frontier.js';
import {
  ABANDON_LUA, ADMIT_LUA, CLAIM_LEASE_LUA, CLAIM_LUA, COMPLETE_LUA, CREATE_LUA, END_CLAIM_LUA, EXPIRE_LUA, FRONTIER_KEYS, IN_FLIGHT_LUA, LEASE_LUA,
  RENEW_CLAIM_LUA, RENEW_LUA, REOPEN_CLAIM_LUA,
} from './redis-frontier-scripts.js';

/** The Redis frontier's layout version, stored in the tree's `meta` hash. */
export const REDIS_FRONTIER_SCHEMA_VERSION = 1;

/** Options of {@link RedisFrontier.create} and {@link RedisFrontier.open}. */
export interface RedisFrontierOptions {
  /** Time source for leases; default the wall clock. */
  clock?: Clock;
  /** Prefix of every key (default `quarry:`); the queue name makes deployments sharing one Redis apart. */
  keyPrefix?: string;
}

/** Mutable item state as the scripts keep it ('' = absent). */
interface StoredState { state: ItemState; reason: string; final: string; failures: number }
interface StoredAttempt {
  key: string; attempt: number; owner: string; leased_at: number; outcome: string; partition: string; finished_at: number; prev: string;
}

/** A Lua script and its SHA-1, for EVALSHA. */
interface Script { lua: string; sha: string }
const script = (lua: string): Script => ({ lua, sha: createHash('sha1').update(lua).digest('hex') });
const S = {
  create: script(CREATE_LUA), admit: script(ADMIT_LUA), lease: script(LEASE_LUA), renew: script(RENEW_LUA),
  expire: script(EXPIRE_LUA), abandon: script(ABANDON_LUA), complete: script(COMPLETE_LUA), claim: script(CLAIM_LUA),
  inFlight: script(IN_FLIGHT_LUA), claimLease: script(CLAIM_LEASE_LUA), renewClaim: script(RENEW_CLAIM_LUA), endClaim: script(END_CLAIM_LUA),
  reopenClaim: script(REOPEN_CLAIM_LUA),
};

/**
 * What {@link RedisFrontier.claimFinalizationLease} found: the lease is this
 * caller's (`previous`: the owner whose lapsed lease it took over, '' when it
 * was the first claim); another holder's, unexpired (`job`: the queue job it
 * claimed under); ended (`done` or `failed`); or the tree is not done yet.
 */
export type FinalizationClaim =
  | { kind: 'claimed'; previous: string }
  | { kind: 'held'; owner: string; expires_at: number; job: string }
  | { kind: 'ended'; state: 'done' | 'failed'; owner: string }
  | { kind: 'busy' };

/** The keys of a tree: one hash tag, so a cluster keeps them in one slot. */
export function frontierKeys(keyPrefix: string, treeId: string): string[] {
  return FRONTIER_KEYS.map((k) => `${keyPrefix}frontier:{${treeId}}:${k}`);
}

const nullable = (s: string): string | null => (s === '' ? null : s);

/** A client of one tree's Redis frontier. */
export class RedisFrontier implements Frontier {
  readonly #redis: Redis;
  readonly #ownsConnection: boolean;
  readonly #clock: Clock;
  readonly #opts: TreeOptions;
  readonly #keys: string[];
  readonly #newRunId = monotonicFactory();
  #roundTrips = 0;

  private constructor(redis: Redis, ownsConnection: boolean, clock: Clock, opts: TreeOptions, keys: string[]) {
    this.#redis = redis;
    this.#ownsConnection = ownsConnection;
    this.#clock = clock;
    this.#opts = opts;
    this.#keys = keys;
  }

  get treeId(): string {
    return this.#opts.tree_id;
  }

  /** Redis round trips this client made (a script, a MULTI, or one read): what docs/scaling.md counts per page. */
  get roundTrips(): number {
    return this.#roundTrips;
  }

  /**
   * Creates the tree in Redis with its options and returns a client. `redis`
   * is a URL (the client opens, and closes, its own connection) or a
   * connection the caller keeps. Throws FrontierError when the tree exists or
   * an option is bad.
   */
  static async create(redis: string | Redis, options: TreeOptions, o: RedisFrontierOptions = {}): Promise<RedisFrontier> {
    const opts = checkTreeOptions(options);
    const conn = await connect(redis);
    try {
      const keys = frontierKeys(o.keyPrefix ?? 'quarry:', opts.tree_id);
      const made = await evalScript(conn.redis, S.create, keys, [REDIS_FRONTIER_SCHEMA_VERSION, opts.parallel, JSON.stringify(opts)]);
      if (made !== 1) throw new FrontierError(`tree ${opts.tree_id} already has a frontier in Redis; resume it with --resume ${opts.tree_id}`);
      return new RedisFrontier(conn.redis, conn.owns, o.clock ?? SYSTEM_CLOCK, opts, keys);
    } catch (err) {
      if (conn.owns) conn.redis.disconnect();
      throw err;
    }
  }

  /** Opens another client of an existing tree. Throws FrontierError when there is none, or of another layout version. */
  static async open(redis: string | Redis, treeId: string, o: RedisFrontierOptions = {}): Promise<RedisFrontier> {
    const conn = await connect(redis);
    try {
      const keys = frontierKeys(o.keyPrefix ?? 'quarry:', treeId);
      const [opts, schema] = await Promise.all([conn.redis.get(keys[0]!), conn.redis.hget(keys[1]!, 'schema')]);
      if (opts === null) throw new FrontierError(`no frontier for tree ${treeId} in Redis under ${JSON.stringify(o.keyPrefix ?? 'quarry:')} (check --queue and --queue-name)`);
      if (Number(schema) !== REDIS_FRONTIER_SCHEMA_VERSION) {
        throw new FrontierError(`tree ${treeId} has Redis frontier schema ${schema}; this Quarry reads ${REDIS_FRONTIER_SCHEMA_VERSION}: resume it with the version that started it`);
      }
      return new RedisFrontier(conn.redis, conn.owns, o.clock ?? SYSTEM_CLOCK, JSON.parse(opts) as TreeOptions, keys);
    } catch (err) {
      if (conn.owns) conn.redis.disconnect();
      throw err;
    }
  }

  #run(s: Script, args: (string | number)[]): Promise<unknown> {
    this.#roundTrips++;
    return evalScript(this.#redis, s, this.#keys, args);
  }

  async admit(items: readonly WorkItemInput[]): Promise<AdmitDecision[]> {
    if (items.length === 0) return [];
    const args: (string | number)[] = [this.#opts.max_depth, this.#opts.max_runs];
    for (const it of items) {
      const fields: WorkItem = {
        key: it.key, target: it.target, params: it.params, params_digest: it.params_digest, target_sha256: it.target_sha256,
        depth: it.depth, parent_run_id: it.parent_run_id, source: it.source ?? null, category: it.category ?? null,
      };
      args.push(it.key, it.depth, it.not_found !== undefined ? '1' : '0', JSON.stringify(fields));
    }
    return (await this.#run(S.admit, args)) as AdmitDecision[];
  }

  async lease(owner: string, n: number): Promise<Lease[]> {
    checkOwner(owner);
    if (!Number.isSafeInteger(n) || n < 0) throw new FrontierError(`lease count must be a non-negative integer, got ${JSON.stringify(n)}`);
    const now = this.#clock.now();
    const ids = Array.from({ length: Math.min(n, this.#opts.max_runs) }, () => this.#newRunId(now));
    const flat = (await this.#run(S.lease, [now, owner, ids.length, this.#opts.lease_ms, this.treeId, ...ids])) as (string | number)[];
    const out: Lease[] = [];
    for (let i = 0; i < flat.length; i += 6) {
      out.push({
        key: String(flat[i]), run_id: String(flat[i + 1]), attempt: Number(flat[i + 2]), tree_id: this.treeId, owner,
        expires_at: Number(flat[i + 3]), previous_run_id: nullable(String(flat[i + 4])), item: JSON.parse(String(flat[i + 5])) as WorkItem,
      });
    }
    return out;
  }

  async renew(owner: string): Promise<string[]> {
    const held = (await this.#run(S.renew, [this.#clock.now(), owner, this.#opts.lease_ms])) as string[];
    return held.sort();
  }

  async requeueExpired(): Promise<number> {
    return Number(await this.#run(S.expire, [this.#clock.now()]));
  }

  async requeueAbandoned(owner: string): Promise<number> {
    return Number(await this.#run(S.abandon, [this.#clock.now(), owner]));
  }

  async complete(lease: LeaseRef, outcome: RunOutcome, partition?: AttemptPartition): Promise<CompleteResult> {
    const r = (await this.#run(S.complete, [
      this.#clock.now(), lease.run_id, lease.key, lease.attempt, outcome, partition ? JSON.stringify(partition) : '', this.#opts.retries,
    ])) as string[];
    if (r[0] === 'none') throw new FrontierError(`tree ${this.treeId} has no attempt ${lease.attempt} of run ${lease.run_id} for that item`);
    return { recorded: r[0] === '1', state: r[1] as ItemState };
  }

  async counters(): Promise<FrontierCounters> {
    this.#roundTrips++;
    const res = await this.#redis.multi()
      .hgetall(this.#keys[1]!)
      .zcard(this.#keys[3]!)
      .zcard(this.#keys[8]!)
      .exec();
    const [meta, admitted, running] = (res ?? []).map(([err, v]) => {
      if (err) throw err;
      return v;
    }) as [Record<string, string>, number, number];
    const m = (k: string): number => Number(meta[k] ?? 0);
    return {
      admitted, succeeded: m('n_succeeded'), failed: m('n_failed'), retried: m('retried'), deduplicated: m('dedup'),
      not_executed_cap: m('r_over_cap'), not_executed_depth: m('r_over_depth'), running, queued: m('n_queued'), requeued: m('requeued'),
    };
  }

  async options(): Promise<TreeOptions> {
    this.#roundTrips++;
    const parallel = await this.#redis.hget(this.#keys[1]!, 'parallel');
    return { ...this.#opts, parallel: Number(parallel) };
  }

  async setParallel(parallel: number): Promise<void> {
    if (!Number.isSafeInteger(parallel) || parallel < 1) throw new FrontierError(`parallel must be an integer ≥ 1, got ${JSON.stringify(parallel)}`);
    this.#roundTrips++;
    await this.#redis.hset(this.#keys[1]!, 'parallel', parallel);
  }

  async claimFinalization(): Promise<boolean> {
    return Number(await this.#run(S.claim, [this.#clock.now()])) === 1;
  }

  /**
   * The finalization claim of a queue deployment (SPEC §12), as a lease of
   * the tree's `lease_ms` that `owner` renews ({@link renewFinalization})
   * while it publishes and validates the tree and ends
   * ({@link endFinalization}) once it has a result. A holder that stops
   * renewing (a dead worker) loses it: the next caller takes it over. A
   * claim made by {@link claimFinalization} never lapses.
   */
  async claimFinalizationLease(owner: string, job: string): Promise<FinalizationClaim> {
    checkOwner(owner);
    const r = (await this.#run(S.claimLease, [this.#clock.now(), owner, this.#opts.lease_ms, job])) as string[];
    switch (r[0]) {
      case 'claimed': return { kind: 'claimed', previous: r[1] ?? '' };
      case 'held': return { kind: 'held', owner: r[1] ?? '', expires_at: Number(r[2]), job: r[3] ?? '' };
      case 'ended': return { kind: 'ended', state: r[1] === 'failed' ? 'failed' : 'done', owner: r[2] ?? '' };
      default: return { kind: 'busy' };
    }
  }

  /** Extends `owner`'s finalization lease by `lease_ms`; false when it no longer holds it (taken over, or ended). */
  async renewFinalization(owner: string): Promise<boolean> {
    return Number(await this.#run(S.renewClaim, [this.#clock.now(), owner, this.#opts.lease_ms])) === 1;
  }

  /** Ends the finalization as `done` or `failed`; true for the first caller to end it. */
  async endFinalization(owner: string, state: 'done' | 'failed'): Promise<boolean> {
    return Number(await this.#run(S.endClaim, [owner, state])) === 1;
  }

  /** Opens a `failed` finalization again, so the next claim finalizes the tree anew; false when it had not failed. */
  async reopenFinalization(): Promise<boolean> {
    return Number(await this.#run(S.reopenClaim, [])) === 1;
  }

  async inFlight(): Promise<Lease[]> {
    const flat = (await this.#run(S.inFlight, [])) as string[];
    const rows: (Lease & { seq: number })[] = [];
    for (let i = 0; i < flat.length; i += 5) {
      const a = JSON.parse(flat[i + 2]!) as StoredAttempt;
      rows.push({
        key: a.key, run_id: flat[i]!, attempt: a.attempt, tree_id: this.treeId, owner: a.owner, expires_at: Number(flat[i + 1]),
        previous_run_id: nullable(a.prev), item: JSON.parse(flat[i + 3]!) as WorkItem, seq: Number(flat[i + 4]),
      });
    }
    rows.sort((x, y) => x.seq - y.seq || x.attempt - y.attempt);
    return rows.map(({ seq: _seq, ...lease }) => lease);
  }

  async items(): Promise<ItemRecord[]> {
    this.#roundTrips++;
    const res = await this.#redis.multi()
      .zrange(this.#keys[3]!, '0', '-1')
      .hgetall(this.#keys[2]!)
      .hgetall(this.#keys[4]!)
      .hgetall(this.#keys[7]!)
      .exec();
    const [order, fields, states, attempts] = (res ?? []).map(([err, v]) => {
      if (err) throw err;
      return v;
    }) as [string[], Record<string, string>, Record<string, string>, Record<string, string>];
    const byKey = new Map<string, (StoredAttempt & { run_id: string })[]>();
    for (const [run_id, raw] of Object.entries(attempts)) {
      const a = JSON.parse(raw) as StoredAttempt;
      byKey.set(a.key, [...(byKey.get(a.key) ?? []), { ...a, run_id }]);
    }
    return order.map((key): ItemRecord => {
      const s = JSON.parse(states[key]!) as StoredState;
      return {
        ...(JSON.parse(fields[key]!) as WorkItem),
        state: s.state,
        reason: nullable(s.reason),
        final_run_id: nullable(s.final),
        failures: s.failures,
        attempts: (byKey.get(key) ?? []).sort((x, y) => x.attempt - y.attempt).map((a) => ({
          run_id: a.run_id, attempt: a.attempt, owner: a.owner, leased_at: a.leased_at,
          outcome: a.outcome === '' ? null : (a.outcome as AttemptOutcome),
          partition: a.partition === '' ? null : (JSON.parse(a.partition) as AttemptPartition),
          finished_at: a.finished_at === 0 ? null : a.finished_at,
        })),
      };
    });
  }

  async close(): Promise<void> {
    if (this.#ownsConnection) await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

async function connect(redis: string | Redis): Promise<{ redis: Redis; owns: boolean }> {
  if (typeof redis !== 'string') return { redis, owns: false };
  const { Redis: RedisClient } = await import('ioredis');
  return { redis: new RedisClient(redis, { maxRetriesPerRequest: 3 }), owns: true };
}

/** EVALSHA, loading the script once per server when Redis does not know it (NOSCRIPT). */
async function evalScript(redis: Redis, s: Script, keys: string[], values: (string | number)[]): Promise<unknown> {
  const args = values.map(String);
  try {
    return await redis.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
    return redis.eval(s.lua, keys.length, ...keys, ...args);
  }
}
