/**
 * `strict` (SPEC §6): every event is written to its type's open segment
 * before the next frame is taken; nothing is dropped. Segments are synced and
 * published once, at close.
 */
import type { AnyEventEnvelope } from '../../protocol/envelope.js';
import type { PolicyCounters } from '../../storage/manifest.js';
import type { RunWriter } from '../../storage/run-writer.js';
import { type IngestionPolicy, PolicyFailureError, PolicyStats } from './policy.js';
import { describeStorageFailure } from './storage-failure.js';

export class StrictPolicy implements IngestionPolicy {
  readonly name = 'strict' as const;
  readonly #writer: RunWriter;
  readonly #stats = new PolicyStats('strict', {});
  #closed = false;

  constructor(writer: RunWriter) {
    this.#writer = writer;
  }

  async ingest(event: AnyEventEnvelope): Promise<void> {
    if (this.#closed) throw new PolicyFailureError('strict policy: event after close');
    this.#stats.received++;
    try {
      await this.#writer.append(event.type, this.#writer.recordLine(event), 1, event.seq, event.seq);
    } catch (err) {
      throw new PolicyFailureError(`strict policy: ${describeStorageFailure(err)}`, { cause: err });
    }
    this.#stats.persisted++;
    if (event.type === 'artifact') this.#writer.listArtifact(event.payload.artifact_id);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
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
