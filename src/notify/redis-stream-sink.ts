/**
 * The Redis Streams event sink (SPEC §11): a copy of every event of a run,
 * XADDed to a stream while the run goes, OFF the ingestion hot path. Events
 * wait in a bounded queue; a background loop sends them in batches through
 * one Lua call that skips any seq at or below the run's highest seq already
 * added (so a batch retried after a timeout that had in fact landed adds
 * nothing twice), trims by length (`MAXLEN ~`) and by age (`XTRIM MINID ~`:
 * entries older than the TTL go; the key itself never expires).
 *
 * Delivery `best_effort` (our default): a full queue or a batch failing all
 * its retries drops events, counted as sink drops (never policy drops); the
 * run goes on. `mandatory`: a full queue makes ingestion wait (backpressure),
 * and a batch still failing after its retries fails the run (`policy_failure`).
 */
import type { AnyEventEnvelope } from '../protocol/envelope.js';

/** Sink options, compiled from the original's flags and config keys. */
export interface RedisSinkOptions {
  url: string;
  streamKey: string;
  maxLen: number;
  ttlMs: number;
  /** Per Redis call. */
  timeoutMs: number;
  retries: number;
  delivery: 'mandatory' | 'best_effort';
  /** Events held at most (bounded memory). Default 10 000. */
  capacity?: number;
  /** Events per XADD batch. Default 200. */
  batch?: number;
}

/** §11 defaults (the original's, but best_effort). */
export const REDIS_SINK_DEFAULTS = { streamKey: 'quarry:events', maxLen: 100_000, ttlMs: 86_400_000, timeoutMs: 2000, retries: 2, delivery: 'best_effort' as const };

/** What the sink did, for the report and metrics. */
export interface SinkCounters {
  kind: 'redis';
  target: string;
  delivery: 'mandatory' | 'best_effort';
  sent: number;
  /** Events not in the stream: queue full (best_effort) or a batch failing every retry. */
  dropped: number;
  /** Why the last failure happened; null when none. */
  last_error: string | null;
}

/** The partition keys every entry carries besides the envelope's own fields. */
export interface SinkPartition {
  dataset: string;
  source: string;
  category: string;
}

const ADD_SCRIPT = `
local hwm = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local added = 0
local i = 5
while i <= #ARGV do
  local seq = tonumber(ARGV[i])
  if seq > hwm then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'run_id', ARGV[1], 'seq', ARGV[i], 'type', ARGV[i+1], 'ts', ARGV[i+2], 'payload', ARGV[i+3], 'source', ARGV[i+4], 'category', ARGV[i+5], 'dataset', ARGV[i+6])
    hwm = seq
    added = added + 1
  end
  i = i + 7
end
redis.call('HSET', KEYS[2], ARGV[1], hwm)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if ARGV[3] ~= '0' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3]) end
return added`;

function jsonOf(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? Buffer.from(x).toString('base64') : x));
}

type Client = import('ioredis').Redis & { quarryAdd?: (keys: number, ...args: string[]) => Promise<number> };

/** One run's sink (implements the runtime's `EventSink`). Create per run; `close()` flushes what is queued (within the retries) and disconnects. */
export class RedisStreamSink {
  readonly #o: Required<RedisSinkOptions>;
  readonly #partition: SinkPartition;
  readonly #runId: string;
  readonly #target: string;
  #queue: AnyEventEnvelope[] = [];
  #sent = 0;
  #dropped = 0;
  #lastError: string | null = null;
  #failed: string | undefined;
  #loop: Promise<void> | undefined;
  #closing = false;
  #client: Client | undefined;
  #spaceWaiters: Array<() => void> = [];

  constructor(options: RedisSinkOptions, runId: string, partition: SinkPartition, target: string) {
    this.#o = { capacity: 10_000, batch: 200, ...options };
    this.#runId = runId;
    this.#partition = partition;
    this.#target = target;
  }

  /** Set when a mandatory sink has failed: the run must end `policy_failure` with this message. */
  get failure(): string | undefined {
    return this.#failed;
  }

  /**
   * Queues a copy of `e`. Returns nothing on the fast path; a promise only when
   * a mandatory sink's queue is full (backpressure). Never throws.
   */
  offer(e: AnyEventEnvelope): Promise<void> | undefined {
    if (this.#failed !== undefined) return undefined;
    if (this.#queue.length >= this.#o.capacity) {
      if (this.#o.delivery === 'best_effort') {
        this.#dropped++;
        return undefined;
      }
      return new Promise<void>((resolve) => this.#spaceWaiters.push(resolve)).then(() => this.offer(e));
    }
    this.#queue.push(e);
    this.#kick();
    return undefined;
  }

  /** Starts the sending loop unless it runs; it restarts itself if events arrived as it ended. */
  #kick(): void {
    if (this.#loop !== undefined || this.#closing) return;
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      if (this.#queue.length > 0 && this.#failed === undefined) this.#kick();
    });
  }

  async #connect(): Promise<Client> {
    if (this.#client !== undefined && this.#client.status === 'ready') return this.#client;
    this.#client?.disconnect();
    const { Redis } = await import('ioredis');
    const c = new Redis(this.#o.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: this.#o.timeoutMs, retryStrategy: () => null }) as Client;
    c.on('error', () => undefined);
    c.defineCommand('quarryAdd', { lua: ADD_SCRIPT });
    this.#client = c;
    await withTimeout(c.connect(), this.#o.timeoutMs);
    return c;
  }

  async #send(batch: readonly AnyEventEnvelope[]): Promise<void> {
    const args: string[] = [this.#runId, String(this.#o.maxLen), String(Math.max(0, Date.now() - this.#o.ttlMs)), String(Math.max(this.#o.ttlMs, 60_000))];
    for (const e of batch) args.push(String(e.seq), e.type, e.ts, jsonOf(e.payload), this.#partition.source, this.#partition.category, this.#partition.dataset);
    const c = await this.#connect();
    await withTimeout(c.quarryAdd!(2, this.#o.streamKey, `${this.#o.streamKey}:seq`, ...args), this.#o.timeoutMs);
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0 && this.#failed === undefined) {
      const batch = this.#queue.slice(0, this.#o.batch);
      let ok = false;
      for (let n = 0; n <= this.#o.retries && !ok; n++) {
        try {
          await this.#send(batch);
          ok = true;
        } catch (err) {
          this.#lastError = (err as Error).message;
          this.#client?.disconnect();
          this.#client = undefined;
          if (n < this.#o.retries) await new Promise((r) => setTimeout(r, 100 * 2 ** n));
        }
      }
      this.#queue.splice(0, batch.length);
      for (const w of this.#spaceWaiters.splice(0)) w();
      if (ok) {
        this.#sent += batch.length;
        continue;
      }
      if (this.#o.delivery === 'mandatory') {
        this.#failed = `event sink redis ${this.#target}: a batch failed after ${this.#o.retries} retries (${this.#lastError}); delivery is mandatory`;
        this.#dropped += batch.length + this.#queue.length;
        this.#queue = [];
        return;
      }
      this.#dropped += batch.length;
    }
  }

  /** Sends what is queued (best effort within the retries), then disconnects. Never throws. */
  async close(): Promise<SinkCounters> {
    while (this.#loop !== undefined) await this.#loop;
    this.#closing = true;
    // Whatever the queue still holds (a failed mandatory sink emptied it) was not sent.
    this.#dropped += this.#queue.length;
    this.#queue = [];
    this.#client?.disconnect();
    for (const w of this.#spaceWaiters.splice(0)) w();
    return this.counters();
  }

  counters(): SinkCounters {
    return { kind: 'redis', target: this.#target, delivery: this.#o.delivery, sent: this.#sent, dropped: this.#dropped, last_error: this.#lastError };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`timeout after ${ms}ms`)), ms); })]).finally(() => clearTimeout(t));
}

/** A sink's options are wrong: the message names the flag and quotes the value. */
export class SinkConfigError extends Error {
  override readonly name = 'SinkConfigError';
}

/**
 * Checks and compiles the Redis sink options (SPEC §11 defaults filled in).
 * @throws SinkConfigError naming the flag.
 */
export function compileRedisSink(input: { url: string | undefined; streamKey?: string | undefined; maxLen?: number | undefined; ttlMs?: number | undefined; timeoutMs?: number | undefined; retries?: number | undefined; delivery?: string | undefined }): RedisSinkOptions {
  const url = input.url ?? '';
  if (url === '') throw new SinkConfigError('--event-sink redis needs --event-sink-redis-url (e.g. redis://127.0.0.1:6379)');
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SinkConfigError('--event-sink-redis-url is not a URL (e.g. redis://127.0.0.1:6379)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new SinkConfigError(`--event-sink-redis-url must start with redis:// or rediss://, got ${u.protocol}//`);
  const o = { ...REDIS_SINK_DEFAULTS, url };
  if (input.streamKey !== undefined) o.streamKey = input.streamKey;
  if (o.streamKey === '') throw new SinkConfigError('--event-sink-redis-stream-key must not be empty');
  for (const [flag, v, min] of [['max-len', input.maxLen, 1], ['ttl', input.ttlMs, 1], ['timeout', input.timeoutMs, 1], ['retries', input.retries, 0]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new SinkConfigError(`--event-sink-redis-${flag} must be ${min === 0 ? '0 or more' : 'more than 0'}, got ${v}`);
  }
  if (input.maxLen !== undefined) o.maxLen = input.maxLen;
  if (input.ttlMs !== undefined) o.ttlMs = input.ttlMs;
  if (input.timeoutMs !== undefined) o.timeoutMs = input.timeoutMs;
  if (input.retries !== undefined) o.retries = input.retries;
  const delivery = input.delivery ?? 'best_effort';
  if (delivery !== 'mandatory' && delivery !== 'best_effort') throw new SinkConfigError(`--event-sink-redis-delivery must be mandatory or best_effort, got ${JSON.stringify(delivery)}`);
  return { ...o, delivery };
}

/** The sink's target as recorded and shown: the URL without credentials, and the stream key as the fragment. */
export function sinkTarget(o: RedisSinkOptions): string {
  const u = new URL(o.url);
  u.username = '';
  u.password = '';
  u.search = '';
  u.hash = '';
  return `${u.toString()}#${encodeURIComponent(o.streamKey)}`;
}
