/**
 * Live event sinks beside storage (SPEC §11): every event the policy is given
 * is also offered to each sink, which copies it off the hot path. A sink that
 * is `mandatory` and has failed ends the run `policy_failure` (at the next
 * event, or at close); a `best_effort` one only counts its drops, apart from
 * the policy's. Runtime knows sinks only by this interface (src/notify/ has
 * the Redis Streams one).
 */
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import type { PolicyCounters } from '../storage/manifest.js';
import { PolicyFailureError, type IngestionPolicy } from './policies/policy.js';

/** What a sink did, as the report shows it. */
export interface EventSinkCounters {
  kind: string;
  target: string;
  delivery: 'mandatory' | 'best_effort';
  sent: number;
  dropped: number;
  last_error: string | null;
}

/** One run's sink. */
export interface EventSink {
  /**
   * Queues a copy; a promise only for backpressure (a mandatory sink's full
   * queue). `payloadJson` is `JSON.stringify(e.payload)` when storage has
   * just made it (never for a payload holding bytes): the sink reuses it
   * instead of encoding the payload again. Never throws.
   */
  offer(e: AnyEventEnvelope, payloadJson?: string): Promise<void> | undefined;
  /** Set once a mandatory sink has failed. */
  readonly failure: string | undefined;
  close(): Promise<EventSinkCounters>;
  counters(): EventSinkCounters;
}

/** Makes a run's sink, given its id and partition keys. */
export type EventSinkFactory = (runId: string, partition: { dataset: string; source: string; category: string }) => EventSink;

/** The policy with its sinks: storage first in what the run waits for, sinks beside it. */
export class SinkedPolicy implements IngestionPolicy {
  readonly name: IngestionPolicy['name'];
  readonly #inner: IngestionPolicy;
  readonly #sinks: readonly EventSink[];
  readonly #payloadJsonOf: (e: AnyEventEnvelope) => string | undefined;
  #closed: EventSinkCounters[] | undefined;

  /** `payloadJsonOf` gives the payload JSON the inner policy's record line just used (the run writer's), if any. */
  constructor(inner: IngestionPolicy, sinks: readonly EventSink[], payloadJsonOf: (e: AnyEventEnvelope) => string | undefined = () => undefined) {
    this.name = inner.name;
    this.#inner = inner;
    this.#sinks = sinks;
    this.#payloadJsonOf = payloadJsonOf;
    // Only when the inner policy has one: the supervisor awaits it before every read.
    const before = inner.beforeNextRead?.bind(inner);
    if (before) this.beforeNextRead = before;
  }

  beforeNextRead?: () => Promise<void>;

  /**
   * Storage first (its record line makes the payload JSON the sinks reuse),
   * then each sink's copy. The run waits for storage as the policy says, and
   * for a sink only when a mandatory one has no room (backpressure).
   */
  ingest(event: AnyEventEnvelope): Promise<void> | void {
    for (const s of this.#sinks) if (s.failure !== undefined) throw new PolicyFailureError(s.failure);
    const stored = this.#inner.ingest(event);
    const json = this.#payloadJsonOf(event);
    let waits: Array<Promise<void> | void> | undefined;
    for (const s of this.#sinks) {
      const w = s.offer(event, json);
      if (w !== undefined) (waits ??= []).push(w);
    }
    if (waits === undefined) return stored;
    waits.push(stored);
    return Promise.all(waits).then(() => undefined);
  }

  /** Closes storage and the sinks together: a sink's last batches go out while storage writes its last segment, not after it. */
  async close(): Promise<void> {
    const sinksClosed = Promise.all(this.#sinks.map((s) => s.close()));
    let innerErr: unknown;
    try {
      await this.#inner.close();
    } catch (err) {
      innerErr = err;
    }
    this.#closed = await sinksClosed;
    if (innerErr !== undefined) throw innerErr;
    const failed = this.#sinks.find((s) => s.failure !== undefined);
    if (failed) throw new PolicyFailureError(failed.failure!);
  }

  counters(): PolicyCounters {
    return this.#inner.counters();
  }

  /** Each sink's counters (final once closed). */
  sinkCounters(): EventSinkCounters[] {
    return this.#closed ?? this.#sinks.map((s) => s.counters());
  }
}
