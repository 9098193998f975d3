/**
 * `buffered` (SPEC §6): volume first, bounded memory. Events collect in a
 * buffer bounded by `--buffer-events` and/or `--buffer-bytes`. When the
 * buffer is full, an arriving droppable event (log, enqueue, rotate_proxy) is
 * dropped and counted instead of forcing a write; an arriving non-droppable
 * event flushes the buffer first. Nothing else is ever dropped.
 */
import { DROPPABLE_EVENT_TYPES, type AnyEventEnvelope } from '../../protocol/envelope.js';
import type { PolicyCounters } from '../../storage/manifest.js';
import type { RunWriter } from '../../storage/run-writer.js';
import { Batch, FlushQueue } from './batch.js';
import type { FlushMode } from './index.js';
import { type IngestionPolicy, PolicyFailureError, PolicyStats } from './policy.js';

export interface BufferedOptions {
  bufferEvents?: number;
  bufferBytes?: number;
  flushMode: FlushMode;
}

export interface PolicyDeps {
  sleep: (ms: number) => Promise<void>;
  /** One line for the operator (stderr), e.g. the drop totals at the end. */
  warn: (message: string) => void;
}

export class BufferedPolicy implements IngestionPolicy {
  readonly name = 'buffered' as const;
  readonly #writer: RunWriter;
  readonly #opts: BufferedOptions;
  readonly #deps: PolicyDeps;
  readonly #stats: PolicyStats;
  #batch = new Batch();
  readonly #queue: FlushQueue;
  #closed = false;

  constructor(writer: RunWriter, opts: BufferedOptions, deps: PolicyDeps) {
    if (!(opts.bufferEvents && opts.bufferEvents > 0) && !(opts.bufferBytes && opts.bufferBytes > 0)) {
      throw new PolicyFailureError('buffered policy needs bufferEvents and/or bufferBytes > 0');
    }
    this.#writer = writer;
    this.#opts = opts;
    this.#deps = deps;
    this.#stats = new PolicyStats('buffered', { ...opts });
    this.#queue = new FlushQueue(writer, opts.flushMode, deps.sleep, (n) => {
      this.#stats.persisted += n;
    });
  }

  ingest(event: AnyEventEnvelope): Promise<void> | void {
    if (this.#closed) throw new PolicyFailureError('buffered policy: event after close');
    this.#stats.received++;
    const line = this.#writer.recordLine(event);
    // Exact UTF-8 size only when bytes are bounded; the event bound needs none.
    const size = this.#opts.bufferBytes ? Buffer.byteLength(line, 'utf8') : line.length;
    if (this.#full(size)) {
      if (DROPPABLE_EVENT_TYPES.has(event.type)) {
        this.#stats.drop(event.type);
        return;
      }
      return this.#flush('buffer_full').then(() => this.#batch.add(event, line, size));
    }
    this.#batch.add(event, line, size);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#flush('termination');
    } finally {
      if (this.#stats.dropped > 0) {
        const byType = Object.entries(this.#stats.droppedByType).map(([t, n]) => `${t}=${n}`).join(', ');
        this.#deps.warn(`buffered policy dropped ${this.#stats.dropped} droppable event(s) when its buffer was full (${byType}); all are counted in the manifest and report`);
      }
    }
  }

  counters(): PolicyCounters {
    return this.#stats.snapshot(true);
  }

  #full(nextBytes: number): boolean {
    const b = this.#batch;
    if (b.events === 0) return false;
    if (this.#opts.bufferEvents && b.events + 1 > this.#opts.bufferEvents) return true;
    return Boolean(this.#opts.bufferBytes && b.bytes + nextBytes > this.#opts.bufferBytes);
  }

  /** Queues the current batch (one flush in flight while the next fills); `termination` waits for all. */
  async #flush(trigger: 'buffer_full' | 'termination'): Promise<void> {
    const batch = this.#batch;
    if (batch.events > 0) {
      this.#batch = new Batch();
      this.#stats.flushed(trigger);
      await this.#queue.push(batch);
    }
    if (trigger === 'termination') await this.#queue.drain();
  }
}
