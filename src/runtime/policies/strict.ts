/**
 * `strict` (SPEC §6): every event is written (a `write(2)` to its type's open
 * segment, not yet synced) before the runtime reads the pipe again; nothing
 * is dropped. The supervisor decodes one pipe read at a time, so the events
 * of one read are appended together, one write per event type, before the
 * next read: the durability point is the same, at a fraction of the calls.
 * Segments are synced and published once, at close.
 */
import type { AnyEventEnvelope } from '../../protocol/envelope.js';
import type { PolicyCounters } from '../../storage/manifest.js';
import type { RunWriter } from '../../storage/run-writer.js';
import { type IngestionPolicy, PolicyFailureError, PolicyStats } from './policy.js';
import { describeStorageFailure } from './storage-failure.js';

interface Pending {
  lines: string[];
  firstSeq: number;
  lastSeq: number;
  artifactIds: string[];
}

export class StrictPolicy implements IngestionPolicy {
  readonly name = 'strict' as const;
  readonly #writer: RunWriter;
  readonly #stats = new PolicyStats('strict', {});
  readonly #pending = new Map<string, Pending>();
  #closed = false;
  /** The first failed write: the run is a policy_failure and nothing more is written. */
  #failure: PolicyFailureError | undefined;
  /** Records appended to each type's open segment: a failed append discards them all. */
  readonly #appendedByType = new Map<string, number>();

  constructor(writer: RunWriter) {
    this.#writer = writer;
  }

  ingest(event: AnyEventEnvelope): void {
    if (this.#closed) throw new PolicyFailureError('strict policy: event after close');
    this.#stats.received++;
    let p = this.#pending.get(event.type);
    if (!p) {
      p = { lines: [], firstSeq: event.seq, lastSeq: event.seq, artifactIds: [] };
      this.#pending.set(event.type, p);
    }
    p.lines.push(this.#writer.recordLine(event));
    p.lastSeq = event.seq;
    if (event.type === 'artifact') p.artifactIds.push(event.payload.artifact_id);
  }

  /**
   * Writes what this pipe read brought, before the supervisor reads again.
   * Each type's lines leave the pending set as their append starts, so a
   * failure part-way through a read never makes a later call append lines
   * already written. After a failure nothing more is written.
   */
  async beforeNextRead(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure;
    for (const [eventType, p] of this.#pending) {
      this.#pending.delete(eventType);
      try {
        await this.#writer.append(eventType, p.lines.join(''), p.lines.length, p.firstSeq, p.lastSeq);
      } catch (err) {
        // The failed type's segment was discarded with its earlier lines, and the rest of this
        // read is not stored: the run ends with policy_failure, none of them counted as persisted.
        this.#stats.persisted -= this.#appendedByType.get(eventType) ?? 0;
        this.#appendedByType.delete(eventType);
        this.#pending.clear();
        this.#failure = new PolicyFailureError(`strict policy: ${describeStorageFailure(err)}`, { cause: err });
        throw this.#failure;
      }
      this.#stats.persisted += p.lines.length;
      this.#appendedByType.set(eventType, (this.#appendedByType.get(eventType) ?? 0) + p.lines.length);
      for (const id of p.artifactIds) this.#writer.listArtifact(id);
    }
  }

  /**
   * Writes what is pending (unless a write already failed), then seals every
   * open segment whatever happened, so no file handle, temporary file or
   * multipart upload outlives the run. Segments whose appends all succeeded
   * are published and listed; the first failure is rethrown.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let failure: unknown;
    try {
      await this.beforeNextRead();
    } catch (err) {
      failure = err;
    }
    try {
      await this.#writer.sealSegments();
    } catch (err) {
      failure ??= new PolicyFailureError(`strict policy: sealing segments failed: ${describeStorageFailure(err)}`, { cause: err });
    }
    if (failure !== undefined) throw failure;
  }

  counters(): PolicyCounters {
    return this.#stats.snapshot(false);
  }
}
