/**
 * `streaming` (SPEC §6): near real time, no drops. Flushes every
 * `--flush-count` events and/or every `--flush-interval`, on termination, and
 * when its bounded buffer reaches capacity. Up to two flushes write at once
 * and list in order; while they are in flight the next batch fills, and an
 * ingest that finds it full waits for the older one, so a slow backend
 * blocks the executor through the pipe instead of growing memory. The
 * interval trigger never queues behind a pending flush: at most three
 * batches are ever held.
 */
import type { AnyEventEnvelope } from '../../protocol/envelope.js';
import type { FlushTrigger, PolicyCounters } from '../../storage/manifest.js';
import type { RunWriter } from '../../storage/run-writer.js';
import { Batch, FlushQueue } from './batch.js';
import type { PolicyDeps } from './buffered.js';
import type { FlushMode } from './index.js';
import { type IngestionPolicy, PolicyFailureError, PolicyStats } from './policy.js';

/** Events held at most when only an interval is set. */
export const STREAMING_DEFAULT_CAPACITY_EVENTS = 10_000;
/** Record-line characters held at most, whatever the settings (about as many bytes for ASCII data). */
export const STREAMING_CAPACITY_BYTES = 64 * 1024 * 1024;

/**
 * Flushes writing at once: the next batch's segments are written while the
 * one before waits on its fsyncs (listing stays in the order taken), so a
 * flush's sync latency no longer stalls ingestion. At most three batches in memory.
 */
export const STREAMING_FLUSHES_IN_FLIGHT = 2;

export interface StreamingOptions {
  flushCount?: number;
  flushIntervalMs?: number;
  flushMode: FlushMode;
}

export interface StreamingDeps extends PolicyDeps {
  setInterval: (fn: () => void, ms: number) => { unref?(): void };
  clearInterval: (handle: unknown) => void;
}

export class StreamingPolicy implements IngestionPolicy {
  readonly name = 'streaming' as const;
  readonly #writer: RunWriter;
  readonly #opts: StreamingOptions;
  readonly #deps: StreamingDeps;
  readonly #stats: PolicyStats;
  readonly #capacity: number;
  #batch = new Batch();
  readonly #queue: FlushQueue;
  #timer: unknown;
  #closed = false;
  /** The interval came while a flush was pending: flush once the queue is idle. */
  #intervalDue = false;

  constructor(writer: RunWriter, opts: StreamingOptions, deps: StreamingDeps) {
    if (!(opts.flushCount && opts.flushCount > 0) && !(opts.flushIntervalMs && opts.flushIntervalMs > 0)) {
      throw new PolicyFailureError('streaming policy needs flushCount and/or flushIntervalMs > 0');
    }
    this.#writer = writer;
    this.#opts = opts;
    this.#deps = deps;
    this.#stats = new PolicyStats('streaming', { ...opts });
    this.#capacity = opts.flushCount ?? STREAMING_DEFAULT_CAPACITY_EVENTS;
    this.#queue = new FlushQueue(
      writer,
      opts.flushMode,
      deps.sleep,
      (n) => {
        this.#stats.persisted += n;
      },
      () => {
        if (this.#intervalDue) this.#onInterval();
      },
      STREAMING_FLUSHES_IN_FLIGHT,
    );
    if (opts.flushIntervalMs) {
      const t = deps.setInterval(() => this.#onInterval(), opts.flushIntervalMs);
      t.unref?.();
      this.#timer = t;
    }
  }

  ingest(event: AnyEventEnvelope): Promise<void> | void {
    if (this.#closed) throw new PolicyFailureError('streaming policy: event after close');
    if (this.#queue.failure !== undefined) return this.#queue.drain();
    this.#stats.received++;
    this.#batch.add(event, this.#writer.recordLine(event));
    if (this.#opts.flushCount && this.#batch.events >= this.#opts.flushCount) return this.#flush('count');
    if (this.#batch.events >= this.#capacity || this.#batch.bytes >= STREAMING_CAPACITY_BYTES) return this.#flush('capacity');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) this.#deps.clearInterval(this.#timer);
    await this.#flush('termination');
  }

  counters(): PolicyCounters {
    return this.#stats.snapshot(true);
  }

  /**
   * The interval trigger does not wait for its flush (nothing awaits a
   * timer), so it flushes only when no flush is pending: otherwise every tick
   * on a backend slower than the interval would queue one more batch, without
   * bound. A tick during a flush is kept and served when the queue is idle;
   * meanwhile the batch fills up to its capacity, whose flush does wait.
   */
  #onInterval(): void {
    if (this.#closed || this.#batch.events === 0) return;
    if (this.#queue.pending > 0) {
      this.#intervalDue = true;
      return;
    }
    this.#intervalDue = false;
    void this.#flush('interval').catch(() => undefined);
  }

  /** Queues the current batch (up to two flushes in flight while the next fills); `termination` waits for all. */
  async #flush(trigger: FlushTrigger): Promise<void> {
    const batch = this.#batch;
    if (batch.events > 0 && this.#queue.failure === undefined) {
      this.#batch = new Batch();
      this.#stats.flushed(trigger);
      await this.#queue.push(batch);
    }
    if (trigger === 'termination') await this.#queue.drain();
  }
}
