/**
 * The Redis Streams event sink (SPEC §11): a copy of every event of a run,
 * XADDed to a stream while the run goes, OFF the ingestion hot path. The
 * ingesting thread only appends each event, as one packed line built from
 * the payload JSON storage already made, to a string, and hands that string
 * per burst to the sinks' worker thread (src/notify/redis-stream-worker.ts),
 * which talks to Redis ({@link StreamWriter}); so strict never waits for
 * Redis and pays no second JSON encoding, no structured clone of payloads
 * and no client work for it.
 *
 * Bounded: events handed over and not yet reported sent or dropped count
 * against `capacity`. Delivery `best_effort` (our default): an event finding
 * no room, or in a batch failing all its retries, is dropped, counted as a
 * sink drop (never a policy drop); the run goes on. `mandatory`: no room
 * makes ingestion wait (backpressure), and a batch still failing after its
 * retries fails the run (`policy_failure`).
 */
import { Worker } from 'node:worker_threads';
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import { packEvent, payloadJson, type WireChunk } from './redis-stream-pack.js';
import type { WriterProgress } from './redis-stream-writer.js';

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
 * Events wait on the ingesting thread until HAND_OFF_EVENTS of them, or
 * HAND_OFF_MS, then cross to the worker as one string: each message costs
 * the ingesting thread tens of microseconds whatever its size, so one per
 * pipe read (tens of events) cost more than the packing itself.
 */
const HAND_OFF_EVENTS = 2000;
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

/** Messages to the worker thread. */
export type ToWorker =
  | { type: 'open'; id: number; options: RedisSinkOptions; runId: string; partition: SinkPartition; target: string }
  | { type: 'events'; id: number; chunk: WireChunk }
  | { type: 'close'; id: number };

/** Messages from it: progress after each batch, the final counters after `close`. */
type FromWorker = ({ type: 'progress' } | { type: 'closed' }) & { id: number } & WriterProgress;

type Listener = (m: FromWorker | { type: 'crashed'; message: string }) => void;

/**
 * The worker thread of the process for one delivery, shared by every sink
 * with that delivery (a tree runs many runs at once): started with the first
 * sink, let go a moment after the last one closes, so a crawl's runs do not
 * each pay a thread's start. The best_effort thread runs at a lower CPU
 * priority (Linux: its own nice value): when CPU is short, ingestion keeps
 * it and the live copy falls behind and drops (counted) instead of slowing
 * the run. A mandatory sink's thread keeps normal priority, since the run
 * waits for it when its queue is full.
 */
class SinkThread {
  static readonly #shared = new Map<RedisSinkOptions['delivery'], SinkThread>();
  readonly #delivery: RedisSinkOptions['delivery'];
  readonly #worker: Worker;
  readonly #listeners = new Map<number, Listener>();
  #idle: NodeJS.Timeout | undefined;

  private constructor(delivery: RedisSinkOptions['delivery']) {
    this.#delivery = delivery;
    this.#worker = new Worker(new URL('./redis-stream-worker.js', import.meta.url), { workerData: { lowPriority: delivery === 'best_effort' } });
    this.#worker.on('message', (m: FromWorker) => this.#listeners.get(m.id)?.(m));
    const crash = (message: string): void => {
      if (SinkThread.#shared.get(delivery) === this) SinkThread.#shared.delete(delivery);
      for (const l of [...this.#listeners.values()]) l({ type: 'crashed', message });
      this.#listeners.clear();
    };
    this.#worker.on('error', (err) => crash(`the sink thread failed: ${err.message}`));
    this.#worker.on('exit', (code) => crash(`the sink thread exited (${code})`));
  }

  static attach(delivery: RedisSinkOptions['delivery'], id: number, listener: Listener): SinkThread {
    let t = SinkThread.#shared.get(delivery);
    if (t === undefined) SinkThread.#shared.set(delivery, (t = new SinkThread(delivery)));
    clearTimeout(t.#idle);
    t.#worker.ref();
    t.#listeners.set(id, listener);
    return t;
  }

  post(m: ToWorker): void {
    this.#worker.postMessage(m);
  }

  detach(id: number): void {
    this.#listeners.delete(id);
    if (this.#listeners.size > 0) return;
    // Nothing left to send: the process may exit; the thread ends soon unless another run needs it.
    this.#worker.unref();
    this.#idle = setTimeout(() => {
      if (this.#listeners.size > 0) return;
      if (SinkThread.#shared.get(this.#delivery) === this) SinkThread.#shared.delete(this.#delivery);
      this.#worker.removeAllListeners('exit');
      void this.#worker.terminate();
    }, 2000).unref();
  }
}

let nextId = 1;

/** One run's sink (implements the runtime's `EventSink`). Create per run; `close()` flushes what is queued (within the retries). */
export class RedisStreamSink {
  readonly #capacity: number;
  readonly #delivery: 'mandatory' | 'best_effort';
  readonly #target: string;
  readonly #id = nextId++;
  readonly #thread: SinkThread;
  /** Events not yet handed to the worker, packed (a string per burst crosses to the worker, never an object per event). */
  #packed = '';
  #count = 0;
  /** The hand-off timer (one per sink, re-armed), and whether it is armed. */
  #handOff: NodeJS.Timeout | undefined;
  #handOffArmed = false;
  /** Handed to the worker and not yet reported sent or dropped. */
  #inFlight = 0;
  /** The worker's counters, as last reported. */
  #progress: WriterProgress = { done: 0, sent: 0, dropped: 0, lastError: null };
  /** Dropped here, finding no room. */
  #noRoom = 0;
  #failed: string | undefined;
  #closing = false;
  #crashed = false;
  #spaceWaiters: Array<() => void> = [];
  #closed: ((p: WriterProgress) => void) | undefined;

  constructor(options: RedisSinkOptions, runId: string, partition: SinkPartition, target: string) {
    this.#capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.#delivery = options.delivery;
    this.#target = target;
    this.#thread = SinkThread.attach(options.delivery, this.#id, (m) => this.#onMessage(m));
    this.#thread.post({ type: 'open', id: this.#id, options, runId, partition: { dataset: partition.dataset, source: partition.source, category: partition.category }, target });
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
    if (this.#failed !== undefined || this.#closing || this.#crashed) {
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
    if (this.#count === 0 || this.#crashed) return;
    const chunk: WireChunk = { text: this.#packed, count: this.#count };
    this.#packed = '';
    this.#count = 0;
    this.#inFlight += chunk.count;
    this.#thread.post({ type: 'events', id: this.#id, chunk });
  }

  #onMessage(m: FromWorker | { type: 'crashed'; message: string }): void {
    if (m.type === 'crashed') {
      this.#crashed = true;
      // Whatever the thread held is lost to the stream (never to storage): counted, and fatal only when mandatory.
      this.#progress = { ...this.#progress, dropped: this.#progress.dropped + this.#inFlight + this.#count, lastError: m.message };
      this.#inFlight = 0;
      this.#packed = '';
      this.#count = 0;
      if (this.#delivery === 'mandatory') this.#failed ??= `event sink redis ${this.#target}: ${m.message}; delivery is mandatory`;
      this.#wake();
      this.#closed?.(this.#progress);
      return;
    }
    this.#inFlight -= m.done;
    this.#progress = m;
    if (m.failed !== undefined) this.#failed ??= m.failed;
    this.#wake();
    if (m.type === 'closed') this.#closed?.(m);
  }

  #wake(): void {
    for (const w of this.#spaceWaiters.splice(0)) w();
  }

  /** Sends what is queued (best effort within the retries), then lets the thread go. Never throws. */
  async close(): Promise<SinkCounters> {
    clearTimeout(this.#handOff);
    this.#handOffArmed = false;
    if (!this.#crashed) this.#flush();
    this.#closing = true;
    this.#wake();
    if (!this.#crashed) {
      await new Promise<WriterProgress>((resolve) => {
        this.#closed = resolve;
        this.#thread.post({ type: 'close', id: this.#id });
      });
    }
    this.#thread.detach(this.#id);
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
  // The sink thread's client SELECTs the database the path names (src/notify/resp-client.ts reads it the same way).
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
