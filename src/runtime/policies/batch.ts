/**
 * A batch of record lines and the flush that publishes it (buffered and
 * streaming, SPEC §6). A flush writes one segment per event type in the batch;
 * the flush mode decides what a failed write keeps and what the retry
 * rewrites. Whatever the mode, a segment is listed in the manifest only once
 * durable, and a flush's segments are listed in order, so a consumer never
 * sees a duplicate or a gap.
 */
import type { AnyEventEnvelope } from '../../protocol/envelope.js';
import type { ManifestObject } from '../../storage/manifest.js';
import type { RunWriter } from '../../storage/run-writer.js';
import type { FlushMode } from './index.js';
import { PolicyFailureError } from './policy.js';
import { describeStorageFailure } from './storage-failure.js';

/** Attempts per flush (1 + retries) before the run ends with `policy_failure`. */
export const FLUSH_ATTEMPTS = 4;
/** Backoff before retry n (ms). */
const BACKOFF_MS = [0, 20, 100, 400];

/** Bytes of one group's buffer; lines are copied in as they arrive. */
const GROUP_CHUNK_BYTES = 256 * 1024;

/**
 * One event type's lines in a batch, kept as UTF-8 bytes in a few large
 * buffers rather than as strings: they leave the JS heap at once, so a batch
 * that lives until its flush does not swell the garbage-collected heap.
 */
class Group {
  readonly chunks: Buffer[] = [];
  #cur: Buffer | undefined;
  #used = 0;
  records = 0;
  bytes = 0;
  lastSeq: number;

  constructor(readonly firstSeq: number) {
    this.lastSeq = firstSeq;
  }

  add(line: string, seq: number): number {
    // A UTF-8 line takes at most 3 bytes per UTF-16 unit: measure exactly only near the end of the buffer.
    const room = this.#cur ? this.#cur.length - this.#used : 0;
    const need = line.length * 3 <= room ? -1 : Buffer.byteLength(line, 'utf8');
    if (need > room) {
      this.#seal();
      this.#cur = Buffer.allocUnsafe(Math.max(GROUP_CHUNK_BYTES, need));
      this.#used = 0;
    }
    const written = this.#cur!.write(line, this.#used, 'utf8');
    this.#used += written;
    this.records++;
    this.bytes += written;
    this.lastSeq = seq;
    return written;
  }

  /** All lines, as one buffer. */
  text(): Buffer {
    this.#seal();
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bytes);
  }

  #seal(): void {
    if (this.#cur && this.#used > 0) this.chunks.push(this.#cur.subarray(0, this.#used));
    this.#cur = undefined;
    this.#used = 0;
  }
}

/** Records held in memory, grouped by event type, in arrival order. */
export class Batch {
  readonly groups = new Map<string, Group>();
  events = 0;
  /** UTF-8 bytes of the record lines held. */
  bytes = 0;
  readonly artifactIds: string[] = [];

  add(event: AnyEventEnvelope, line: string): void {
    let g = this.groups.get(event.type);
    if (!g) {
      g = new Group(event.seq);
      this.groups.set(event.type, g);
    }
    this.bytes += g.add(line, event.seq);
    this.events++;
    if (event.type === 'artifact') this.artifactIds.push(event.payload.artifact_id);
  }
}

interface Piece {
  eventType: string;
  text: Buffer;
  records: number;
  firstSeq: number;
  lastSeq: number;
  written?: ManifestObject;
}

/**
 * Publishes a batch according to `mode`, with bounded retries.
 *
 * - `at_least_once`: an attempt writes every segment of the batch; if any write
 *   fails, the next attempt rewrites them all under fresh names, and the
 *   segments the failed attempt did publish are superseded (never listed).
 *   Simple, most rewriting.
 * - `chunks_first`: segments are written and listed one by one as each becomes
 *   durable; a failure retries that segment only, then the rest. Least memory
 *   held, partial progress visible in the manifest if the run then fails.
 * - `two_phase`: phase one writes every segment, keeping the ones that
 *   succeed and retrying only the failed ones; phase two lists the whole batch
 *   at once. Least rewriting; nothing of the batch is listed unless all of it is.
 *
 * @throws PolicyFailureError after {@link FLUSH_ATTEMPTS} failed attempts; what
 *   was listed before stays listed and valid.
 */
export async function flushBatch(writer: RunWriter, batch: Batch, mode: FlushMode, sleep: (ms: number) => Promise<void>, onListed: (records: number) => void): Promise<void> {
  if (batch.events === 0) return;
  const list = (objs: ManifestObject[]): void => {
    writer.listObjects(objs);
    onListed(objs.reduce((n, o) => n + (o.records ?? 0), 0));
  };
  const pieces: Piece[] = [...batch.groups.entries()].map(([eventType, g]) => ({
    eventType,
    text: g.text(),
    records: g.records,
    firstSeq: g.firstSeq,
    lastSeq: g.lastSeq,
  }));
  let lastError: unknown;
  for (let attempt = 1; attempt <= FLUSH_ATTEMPTS; attempt++) {
    if (attempt > 1) {
      writer.writes.retry++;
      await sleep(BACKOFF_MS[attempt - 1] ?? 500);
    }
    try {
      if (mode === 'at_least_once') {
        const done: ManifestObject[] = [];
        try {
          for (const p of pieces) done.push(await write(writer, p));
        } catch (err) {
          writer.supersede(done);
          throw err;
        }
        list(done);
      } else if (mode === 'chunks_first') {
        for (const p of pieces) {
          if (p.written) continue;
          p.written = await write(writer, p);
          list([p.written]);
        }
      } else {
        let failure: unknown;
        for (const p of pieces) {
          if (p.written) continue;
          try {
            p.written = await write(writer, p);
          } catch (err) {
            failure ??= err;
          }
        }
        if (failure !== undefined) throw failure;
        list(pieces.map((p) => p.written!));
      }
      for (const id of batch.artifactIds) writer.listArtifact(id);
      return;
    } catch (err) {
      lastError = err;
    }
  }
  throw new PolicyFailureError(`flush failed after ${FLUSH_ATTEMPTS} attempts (${mode}): ${describeStorageFailure(lastError)}`, { cause: lastError });
}

function write(writer: RunWriter, p: Piece): Promise<ManifestObject> {
  return writer.writeSegment(p.eventType, p.text, p.records, p.firstSeq, p.lastSeq);
}
