/**
 * The ingestion policy port (SPEC §6). The runtime hands every event to one
 * policy, in order; the policy decides when records reach storage and whether
 * a droppable event may be dropped. It never changes an event's shape or order.
 */
import type { AnyEventEnvelope } from '../../protocol/envelope.js';
import type { FlushTrigger, PolicyCounters, PolicyName } from '../../storage/manifest.js';

export interface IngestionPolicy {
  readonly name: PolicyName;
  /**
   * Takes one event. Returns nothing when the next event can come at once,
   * or a promise that resolves when the policy can take the next one: the
   * runtime reads no further frame meanwhile, so a slow policy backpressures
   * the executor through the pipe.
   * @throws PolicyFailureError (or rejects with it) when the event cannot be taken or stored.
   */
  ingest(event: AnyEventEnvelope): Promise<void> | void;
  /**
   * Called by the supervisor after the frames of one pipe read were ingested
   * and before it reads again (strict writes there). Optional.
   * @throws PolicyFailureError when the write fails.
   */
  beforeNextRead?(): Promise<void>;
  /**
   * Flushes everything held and seals open segments (termination trigger).
   * Called exactly once, whatever the outcome; after it nothing is ingested.
   * @throws PolicyFailureError when the final flush fails after its retries.
   */
  close(): Promise<void>;
  /** Counters so far (received, persisted, dropped by type, flush triggers). */
  counters(): PolicyCounters;
}

/** A policy could not take or store an event: the run's outcome is `policy_failure` (exit 3). */
export class PolicyFailureError extends Error {
  override readonly name = 'PolicyFailureError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Counter bookkeeping shared by every policy. */
export class PolicyStats {
  received = 0;
  persisted = 0;
  dropped = 0;
  readonly droppedByType: Record<string, number> = {};
  readonly flushTriggers: Partial<Record<FlushTrigger, number>> = {};

  constructor(readonly name: PolicyName, readonly options: Record<string, unknown>) {}

  drop(type: string): void {
    this.dropped++;
    this.droppedByType[type] = (this.droppedByType[type] ?? 0) + 1;
  }

  flushed(trigger: FlushTrigger): void {
    this.flushTriggers[trigger] = (this.flushTriggers[trigger] ?? 0) + 1;
  }

  snapshot(withTriggers: boolean): PolicyCounters {
    const c: PolicyCounters = {
      name: this.name,
      events_received: this.received,
      events_persisted: this.persisted,
      events_dropped: this.dropped,
      dropped_by_type: { ...this.droppedByType },
      options: this.options,
    };
    if (withTriggers) c.flush_triggers = { ...this.flushTriggers };
    return c;
  }
}
