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

  /** Writes what this pipe read brought, before the supervisor reads again. */
  async beforeNextRead(): Promise<void> {
    for (const [eventType, p] of this.#pending) {
      try {
        await this.#writer.append(eventType, p.lines.join(''), p.lines.length, p.firstSeq, p.lastSeq);
      } catch (err) {
        throw new PolicyFailureError(`strict policy: ${describeStorageFailure(err)}`, { cause: err });
      }
      this.#stats.persisted += p.lines.length;
      for (const id of p.artifactIds) this.#writer.listArtifact(id);
    }
    this.#pending.clear();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.beforeNextRead();
    try {
      await this.#writer.sealSegments();
    } catch (err) {
      throw new PolicyFailureError(`strict policy: sealing segments failed: ${describeStorageFailure(err)}`, { cause: err });
    }
  }

  counters(): PolicyCounters {
    return this.#stats.snapshot(false);
  }
}
