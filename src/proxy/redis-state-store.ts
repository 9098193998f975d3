/**
 * Proxy selection state in Redis (SPEC §11, §12): the same port as the
 * embedded SQLite store, shared by every worker of a deployment, so round
 * robin continues across machines, a sticky key stays on its endpoint
 * whichever worker runs it, and the recency window sees every worker's picks.
 *
 * One hash per pool, `<prefix>proxy-state:{<pool>}` with fields `v` (a
 * version, bumped by each change) and `state` (the JSON {@link PoolState}).
 * Each change is optimistic and atomic: the selection is computed by the same
 * pure strategy code as on one machine (strategy.ts), then one Lua script
 * stores it only if `v` is still the version it was computed from; if another
 * worker changed the pool in between, the script answers with the current
 * state and the change is computed again from it. The client remembers the
 * last state it saw, so an uncontended change is one round trip.
 *
 * Nothing secret is stored (endpoints by index, sticky keys hashed), as in
 * the SQLite store. ioredis is imported lazily.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { PoolState, ProxyStateStore } from './state.js';

/**
 * KEYS[1] the pool's hash; ARGV[1] the version the change was computed from
 * ('0': none stored), ARGV[2] the new state. Returns {1, new version} when
 * stored, else {0, current version, current state}.
 */
const CAS_LUA = `
local v = redis.call('HGET', KEYS[1], 'v')
local cur = v and tonumber(v) or 0
if cur ~= tonumber(ARGV[1]) then
  return {0, cur, redis.call('HGET', KEYS[1], 'state') or ''}
end
redis.call('HSET', KEYS[1], 'v', cur + 1, 'state', ARGV[2])
return {1, cur + 1}
`;
const CAS_SHA = createHash('sha1').update(CAS_LUA).digest('hex');

/** Conflicts one change survives before it fails (each one means another worker's change was stored). */
const MAX_CONFLICTS = 1_000;

export interface RedisProxyStateStoreOptions {
  /** Prefix of every key (default `quarry:`): the queue name keeps deployments sharing one Redis apart. */
  keyPrefix?: string;
}

/** The Redis key of a pool's state. */
export function proxyStateKey(keyPrefix: string, pool: string): string {
  return `${keyPrefix}proxy-state:{${pool}}`;
}

interface Seen { version: number; state: PoolState | undefined }

function parseState(raw: string | null | undefined): PoolState | undefined {
  if (raw === null || raw === undefined || raw === '') return undefined;
  try {
    return JSON.parse(raw) as PoolState;
  } catch {
    // A state that cannot be read is started afresh: selection must never block a run.
    return undefined;
  }
}

/** A {@link ProxyStateStore} in Redis, shared by every worker that uses the same Redis and key prefix. */
export class RedisProxyStateStore implements ProxyStateStore {
  readonly location: string;
  readonly #redis: Redis;
  readonly #owns: boolean;
  readonly #prefix: string;
  /** The last version and state this client saw, per pool: the guess of the next change. */
  readonly #seen = new Map<string, Seen>();
  #roundTrips = 0;
  #conflicts = 0;

  private constructor(redis: Redis, owns: boolean, prefix: string, location: string) {
    this.#redis = redis;
    this.#owns = owns;
    this.#prefix = prefix;
    this.location = location;
  }

  /**
   * A store on `redis`: a URL (the store opens and closes its own connection)
   * or a connection the caller keeps and closes.
   */
  static async open(redis: string | Redis, options: RedisProxyStateStoreOptions = {}): Promise<RedisProxyStateStore> {
    const prefix = options.keyPrefix ?? 'quarry:';
    if (typeof redis !== 'string') return new RedisProxyStateStore(redis, false, prefix, `redis ${prefix}proxy-state:*`);
    const { Redis: RedisClient } = await import('ioredis');
    const conn = new RedisClient(redis, { maxRetriesPerRequest: 3, lazyConnect: true });
    conn.on('error', () => undefined);
    try {
      await conn.connect();
    } catch (err) {
      conn.disconnect();
      throw new Error(`cannot reach Redis for the proxy selection state: ${(err as Error).message}`);
    }
    return new RedisProxyStateStore(conn, true, prefix, `${redactUrl(redis)} ${prefix}proxy-state:*`);
  }

  /** Redis round trips this client made (for docs/scaling.md). */
  get roundTrips(): number {
    return this.#roundTrips;
  }

  /** Changes computed again because another client changed the pool first. */
  get conflicts(): number {
    return this.#conflicts;
  }

  async update<T>(pool: string, change: (current: PoolState | undefined) => { state: PoolState; result: T }): Promise<T> {
    const key = proxyStateKey(this.#prefix, pool);
    let seen = this.#seen.get(pool) ?? (await this.#fetch(key));
    for (let i = 0; i <= MAX_CONFLICTS; i++) {
      const { state, result } = change(seen.state);
      const json = JSON.stringify(state);
      const res = (await this.#cas(key, seen.version, json)) as [number, number, string?];
      if (Number(res[0]) === 1) {
        this.#seen.set(pool, { version: Number(res[1]), state: JSON.parse(json) as PoolState });
        return result;
      }
      this.#conflicts++;
      seen = { version: Number(res[1]), state: parseState(res[2]) };
      this.#seen.set(pool, seen);
    }
    throw new Error(`proxy selection state of pool ${pool} changed ${MAX_CONFLICTS} times under this selection; too many workers on one pool`);
  }

  async read(pool: string): Promise<PoolState | undefined> {
    return (await this.#fetch(proxyStateKey(this.#prefix, pool))).state;
  }

  async close(): Promise<void> {
    if (this.#owns) await this.#redis.quit().catch(() => this.#redis.disconnect());
  }

  async #fetch(key: string): Promise<Seen> {
    this.#roundTrips++;
    const [v, raw] = await this.#redis.hmget(key, 'v', 'state');
    return { version: v === null ? 0 : Number(v), state: parseState(raw) };
  }

  async #cas(key: string, version: number, json: string): Promise<unknown> {
    this.#roundTrips++;
    try {
      return await this.#redis.evalsha(CAS_SHA, 1, key, String(version), json);
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return this.#redis.eval(CAS_LUA, 1, key, String(version), json);
    }
  }
}

/** A Redis URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
