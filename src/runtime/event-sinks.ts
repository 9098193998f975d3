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
  /** Queues a copy; a promise only for backpressure (a mandatory sink's full queue). Never throws. */
  offer(e: AnyEventEnvelope): Promise<void> | undefined;
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
  #closed: EventSinkCounters[] | undefined;

  constructor(inner: IngestionPolicy, sinks: readonly EventSink[]) {
    this.name = inner.name;
    this.#inner = inner;
    this.#sinks = sinks;
    // Only when the inner policy has one: the supervisor awaits it before every read.
    const before = inner.beforeNextRead?.bind(inner);
    if (before) this.beforeNextRead = before;
  }

  beforeNextRead?: () => Promise<void>;

  ingest(event: AnyEventEnvelope): Promise<void> | void {
    let waits: Array<Promise<void>> | undefined;
    for (const s of this.#sinks) {
      if (s.failure !== undefined) throw new PolicyFailureError(s.failure);
      const w = s.offer(event);
      if (w !== undefined) (waits ??= []).push(w);
    }
    if (waits === undefined) return this.#inner.ingest(event);
    return Promise.all(waits).then(() => this.#inner.ingest(event));
  }


  async close(): Promise<void> {
    let innerErr: unknown;
    try {
      await this.#inner.close();
    } catch (err) {
      innerErr = err;
    }
    this.#closed = await Promise.all(this.#sinks.map((s) => s.close()));
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
