/**
 * The Redis Streams event sink (SPEC §11): a copy of every event of a run,
 * XADDed to a stream while the run goes, OFF the ingestion hot path: the run
 * never waits for Redis. The ingesting code only appends each event, as one
 * packed line built from the payload JSON storage already made, to a string,
 * and hands that string per batch to the run's {@link StreamWriter}
 * (src/notify/redis-stream-writer.ts), which sends it with one asynchronous
 * call on the same event loop, in the gaps ingestion leaves. No second JSON
 * encoding, no structured clone, no thread: a worker thread cost the run
 * more (each hand-off's copy, the thread's start and heap) than the sending
 * it took off this thread (docs/benchmarks.md "Event sink cost").
 *
 * Bounded: events handed over and not yet reported sent or dropped count
 * against `capacity`. Delivery `best_effort` (our default): an event finding
 * no room, or in a batch failing all its retries, is dropped, counted as a
 * sink drop (never a policy drop); the run goes on. `mandatory`: no room
 * makes ingestion wait (backpressure), and a batch still failing after its
 * retries fails the run (`policy_failure`).
 */
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import { packEvent, payloadJson, wireChunk, type WireChunk } from './redis-stream-pack.js';
import type { StreamWriter, WriterProgress } from './redis-stream-writer.js';

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
}

/** §11 defaults (the original's, but best_effort). */
export const REDIS_SINK_DEFAULTS = { streamKey: 'quarry:events', maxLen: 100_000, ttlMs: 86_400_000, timeoutMs: 2000, retries: 2, delivery: 'best_effort' as const };

/**
 * Events wait here until a writer's batch of them (its `BATCH`, 500), or
 * HAND_OFF_MS, then go to the writer as one run of bytes: one per Redis
 * call, never an object per event.
 */
const HAND_OFF_EVENTS = 500;
const HAND_OFF_MS = 20;

/** Events a sink holds at most, queued or being sent. */
export const DEFAULT_CAPACITY = 10_000;

/** What the sink did, for the report and metrics. */
export interface SinkCounters {
  kind: 'redis';
  target: string;
  delivery: 'mandatory' | 'best_effort';
  sent: number;
  /** Events not in the stream: no room (best_effort) or a batch failing every retry. */
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

/** The writer's module, loaded with the first sink: a run without one never loads the Redis client (nor node:tls). */
let writerModule: Promise<typeof import('./redis-stream-writer.js')> | undefined;

/** One run's sink (implements the runtime's `EventSink`). Create per run; `close()` flushes what is queued (within the retries). */
export class RedisStreamSink {
  readonly #capacity: number;
  readonly #delivery: 'mandatory' | 'best_effort';
  readonly #target: string;
  /** The writer once its module has loaded; until then handed-off chunks wait in `#early`. */
  #writer: StreamWriter | undefined;
  readonly #ready: Promise<void>;
  #early: WireChunk[] = [];
  /** Events not yet handed to the writer, packed (a string per batch, never an object per event). */
  #packed = '';
  #count = 0;
  /** The hand-off timer (one per sink, re-armed), and whether it is armed. */
  #handOff: NodeJS.Timeout | undefined;
  #handOffArmed = false;
  /** Handed to the writer and not yet reported sent or dropped. */
  #inFlight = 0;
  /** The writer's counters, as last reported. */
  #progress: WriterProgress = { done: 0, sent: 0, dropped: 0, lastError: null };
  /** Dropped here, finding no room. */
  #noRoom = 0;
  #failed: string | undefined;
  #closing = false;
  /** Set when the writer could not be made (its module failed to load): everything offered is dropped, counted. */
  #broken = false;
  #spaceWaiters: Array<() => void> = [];

  constructor(options: RedisSinkOptions, runId: string, partition: SinkPartition, target: string) {
    this.#capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.#delivery = options.delivery;
    this.#target = target;
    const p = { dataset: partition.dataset, source: partition.source, category: partition.category };
    this.#ready = (writerModule ??= import('./redis-stream-writer.js')).then(
      ({ StreamWriter }) => {
        // The writer connects at once, while the executor starts: a client connected only at the first event let the first burst fill the queue.
        this.#writer = new StreamWriter(options, runId, p, target, (m) => this.#onProgress(m));
        for (const c of this.#early.splice(0)) this.#writer.push(c);
      },
      (err: Error) => this.#break(`the Redis client could not be loaded: ${err.message}`),
    );
  }

  /** Set when a mandatory sink has failed: the run must end `policy_failure` with this message. */
  get failure(): string | undefined {
    return this.#failed;
  }

  /**
   * Queues a copy of `e` (`json`: its payload's JSON when storage just made
   * it, so it is not encoded twice). Returns nothing on the fast path; a
   * promise only when a mandatory sink has no room (backpressure). Never throws.
   */
  offer(e: AnyEventEnvelope, json?: string): Promise<void> | undefined {
    if (this.#failed !== undefined || this.#closing || this.#broken) {
      this.#noRoom++;
      return undefined;
    }
    if (this.#count + this.#inFlight >= this.#capacity) {
      if (this.#delivery === 'best_effort') {
        this.#noRoom++;
        return undefined;
      }
      return new Promise<void>((resolve) => this.#spaceWaiters.push(resolve)).then(() => this.offer(e, json));
    }
    const line = packEvent(e.seq, e.type, e.ts, json ?? payloadJson(e.payload));
    this.#packed = this.#count === 0 ? line : `${this.#packed}\n${line}`;
    if (++this.#count >= HAND_OFF_EVENTS) this.#flush();
    else if (!this.#handOffArmed) {
      this.#handOffArmed = true;
      if (this.#handOff === undefined) this.#handOff = setTimeout(this.#onHandOff, HAND_OFF_MS);
      else this.#handOff.refresh();
    }
    return undefined;
  }

  readonly #onHandOff = (): void => {
    this.#handOffArmed = false;
    this.#flush();
  };

  #flush(): void {
    if (this.#count === 0) return;
    const chunk = wireChunk(this.#packed, this.#count);
    this.#packed = '';
    this.#count = 0;
    this.#inFlight += chunk.count;
    if (this.#writer !== undefined) this.#writer.push(chunk);
    else this.#early.push(chunk);
  }

  #onProgress(m: WriterProgress): void {
    this.#inFlight -= m.done;
    this.#progress = m;
    if (m.failed !== undefined) this.#failed ??= m.failed;
    this.#wake();
  }

  #break(message: string): void {
    this.#broken = true;
    // Whatever was waiting is lost to the stream (never to storage): counted, and fatal only when mandatory.
    this.#progress = { ...this.#progress, dropped: this.#progress.dropped + this.#inFlight + this.#count, lastError: message };
    this.#inFlight = 0;
    this.#early = [];
    this.#packed = '';
    this.#count = 0;
    if (this.#delivery === 'mandatory') this.#failed ??= `event sink redis ${this.#target}: ${message}; delivery is mandatory`;
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#spaceWaiters.splice(0)) w();
  }

  /** Sends what is queued (best effort within the retries), then disconnects. Never throws. */
  async close(): Promise<SinkCounters> {
    clearTimeout(this.#handOff);
    this.#handOffArmed = false;
    this.#flush();
    this.#closing = true;
    this.#wake();
    await this.#ready;
    if (this.#writer !== undefined) this.#onProgress(await this.#writer.close());
    return this.counters();
  }

  counters(): SinkCounters {
    return { kind: 'redis', target: this.#target, delivery: this.#delivery, sent: this.#progress.sent, dropped: this.#progress.dropped + this.#noRoom, last_error: this.#progress.lastError };
  }
}

/** A sink's options are wrong: the message names the flag and quotes the value. */
export class SinkConfigError extends Error {
  override readonly name = 'SinkConfigError';
}

/** How an option is named in messages: a flag by default (`--event-sink-redis-max-len`), a config key for `events.sinks[]`. */
export type SinkOptionName = (option: 'url' | 'stream-key' | 'max-len' | 'ttl' | 'timeout' | 'retries' | 'delivery') => string;

const FLAG_NAME: SinkOptionName = (o) => `--event-sink-redis-${o}`;

/**
 * Checks and compiles the Redis sink options (SPEC §11 defaults filled in).
 * @throws SinkConfigError naming the option as `name` does (the flag by default).
 */
export function compileRedisSink(input: { url: string | undefined; streamKey?: string | undefined; maxLen?: number | undefined; ttlMs?: number | undefined; timeoutMs?: number | undefined; retries?: number | undefined; delivery?: string | undefined }, name: SinkOptionName = FLAG_NAME): RedisSinkOptions {
  const url = input.url ?? '';
  if (url === '') throw new SinkConfigError(`${name === FLAG_NAME ? '--event-sink redis' : 'a redis sink'} needs ${name('url')} (e.g. redis://127.0.0.1:6379)`);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new SinkConfigError(`${name('url')} is not a URL (e.g. redis://127.0.0.1:6379)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new SinkConfigError(`${name('url')} must start with redis:// or rediss://, got ${u.protocol}//`);
  // The sink's client SELECTs the database the path names (src/notify/resp-client.ts reads it the same way).
  if (!/^\/?\d*$/.test(u.pathname)) throw new SinkConfigError(`${name('url')}: the database (the URL's path) must be a number, got ${u.pathname}`);
  // Not quoted: a query may hold a password.
  if (u.search !== '') throw new SinkConfigError(`${name('url')} takes no query string: give the database as the path and credentials before the host (redis://user:password@host:6379/2)`);
  const o = { ...REDIS_SINK_DEFAULTS, url };
  if (input.streamKey !== undefined) o.streamKey = input.streamKey;
  if (o.streamKey === '') throw new SinkConfigError(`${name('stream-key')} must not be empty`);
  for (const [option, v, min] of [['max-len', input.maxLen, 1], ['ttl', input.ttlMs, 1], ['timeout', input.timeoutMs, 1], ['retries', input.retries, 0]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw new SinkConfigError(`${name(option)} must be ${min === 0 ? '0 or more' : 'more than 0'}, got ${v}`);
  }
  if (input.maxLen !== undefined) o.maxLen = input.maxLen;
  if (input.ttlMs !== undefined) o.ttlMs = input.ttlMs;
  if (input.timeoutMs !== undefined) o.timeoutMs = input.timeoutMs;
  if (input.retries !== undefined) o.retries = input.retries;
  const delivery = input.delivery ?? 'best_effort';
  if (delivery !== 'mandatory' && delivery !== 'best_effort') throw new SinkConfigError(`${name('delivery')} must be mandatory or best_effort, got ${JSON.stringify(delivery)}`);
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
