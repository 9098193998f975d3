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

/** Lines gathered as strings before they are encoded into one buffer. */
const LINES_PER_CHUNK = 256;

/**
 * One event type's lines in a batch. Lines are encoded to UTF-8 a few
 * hundred at a time, so a batch that lives until its flush sits in buffers
 * off the garbage-collected heap instead of as many small strings.
 */
class Group {
  readonly chunks: Buffer[] = [];
  #lines: string[] = [];
  records = 0;
  /** UTF-8 bytes of the lines already encoded. */
  #encodedBytes = 0;
  lastSeq: number;

  constructor(readonly firstSeq: number) {
    this.lastSeq = firstSeq;
  }

  add(line: string, seq: number): void {
    this.#lines.push(line);
    this.records++;
    this.lastSeq = seq;
    if (this.#lines.length >= LINES_PER_CHUNK) this.#encode();
  }

  /** All lines, as one buffer. */
  text(): Buffer {
    this.#encode();
    return this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.#encodedBytes);
  }

  #encode(): void {
    if (this.#lines.length === 0) return;
    const b = Buffer.from(this.#lines.join(''), 'utf8');
    this.#lines = [];
    this.chunks.push(b);
    this.#encodedBytes += b.length;
  }
}

/** Records held in memory, grouped by event type, in arrival order. */
export class Batch {
  readonly groups = new Map<string, Group>();
  events = 0;
  /** UTF-8 bytes of the record lines held (as given by the caller). */
  bytes = 0;
  readonly artifactIds: string[] = [];

  /** Adds a record line; `bytes` is its UTF-8 length when the caller bounds bytes, else its string length. */
  add(event: AnyEventEnvelope, line: string, bytes: number = line.length): void {
    let g = this.groups.get(event.type);
    if (!g) {
      g = new Group(event.seq);
      this.groups.set(event.type, g);
    }
    g.add(line, event.seq);
    this.bytes += bytes;
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

/**
 * Batches taken by a policy, flushed one after another in the order taken.
 * `push` resolves when the flushes queued BEFORE the new one are done, so one
 * flush is in flight while the next batch fills (at most two in memory);
 * `drain` waits for all. The first failure stops later flushes and is
 * rethrown by every later `push`/`drain`.
 */
export class FlushQueue {
  #tail: Promise<void> = Promise.resolve();
  #failure: unknown;
  /** Batches pushed whose flush has not ended (in flight or waiting). */
  #pending = 0;

  constructor(
    private readonly writer: RunWriter,
    private readonly mode: FlushMode,
    private readonly sleep: (ms: number) => Promise<void>,
    private readonly onListed: (records: number) => void,
    /** Called each time the last pending flush ends (the queue is idle again). */
    private readonly onIdle: () => void = () => undefined,
  ) {}

  /** The first flush failure, if any. */
  get failure(): unknown {
    return this.#failure;
  }

  /** Batches taken and not yet flushed: a trigger that does not wait (the interval) must not add to them. */
  get pending(): number {
    return this.#pending;
  }

  push(batch: Batch): Promise<void> {
    const before = this.#tail;
    this.#pending++;
    this.#tail = before.then(async () => {
      try {
        if (this.#failure === undefined) await flushBatch(this.writer, batch, this.mode, this.sleep, this.onListed);
      } catch (err) {
        this.#failure = err;
      } finally {
        if (--this.#pending === 0) this.onIdle();
      }
    });
    return before.then(() => this.#throwIfFailed());
  }

  async drain(): Promise<void> {
    await this.#tail;
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#failure === undefined) return;
    const err = this.#failure;
    throw err instanceof PolicyFailureError ? err : new PolicyFailureError(String(err), { cause: err });
  }
}
