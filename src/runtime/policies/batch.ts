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

  /** All lines, as the buffers they were encoded into (written as they are: a flush copies none of them). */
  text(): readonly Buffer[] {
    this.#encode();
    return this.chunks;
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
  text: readonly Buffer[];
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
export async function flushBatch(writer: RunWriter, batch: Batch, mode: FlushMode, sleep: (ms: number) => Promise<void>, onListed: (records: number) => void, mayList: () => Promise<void> = async () => undefined): Promise<void> {
  if (batch.events === 0) return;
  let cleared = false;
  const list = async (objs: ManifestObject[]): Promise<void> => {
    if (!cleared) {
      try {
        await mayList();
      } catch (err) {
        // An earlier flush failed: nothing of this one is ever listed (durable objects are kept for audit).
        writer.supersede(objs);
        throw new FlushAbandoned(err);
      }
      cleared = true;
    }
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
        await list(done);
      } else if (mode === 'chunks_first') {
        for (const p of pieces) {
          if (p.written) continue;
          p.written = await write(writer, p);
          await list([p.written]);
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
        await list(pieces.map((p) => p.written!));
      }
      for (const id of batch.artifactIds) writer.listArtifact(id);
      return;
    } catch (err) {
      if (err instanceof FlushAbandoned) throw err;
      lastError = err;
    }
  }
  throw new PolicyFailureError(`flush failed after ${FLUSH_ATTEMPTS} attempts (${mode}): ${describeStorageFailure(lastError)}`, { cause: lastError });
}

/** A flush that did not list because an earlier one failed (that failure is the run's). */
class FlushAbandoned extends Error {
  constructor(cause: unknown) {
    super('an earlier flush failed', { cause });
  }
}

function write(writer: RunWriter, p: Piece): Promise<ManifestObject> {
  return writer.writeSegment(p.eventType, p.text, p.records, p.firstSeq, p.lastSeq);
}


/**
 * Batches taken by a policy, flushed in the order taken. Up to `inFlight`
 * flushes write at once (their fsyncs overlap), but each lists its segments
 * only once every earlier flush has listed its own, so the manifest keeps
 * the order taken. `push` resolves when fewer than `inFlight` flushes pushed
 * BEFORE the new one are still pending (at most `inFlight` + 1 batches in
 * memory, the one filling included); `drain` waits for all. The first failure stops later flushes
 * (one already writing lists nothing; what it wrote is superseded) and is
 * rethrown by every later `push`/`drain`.
 */
export class FlushQueue {
  /** Ends when the last pushed flush has ended (listed, or failed). */
  #tail: Promise<void> = Promise.resolve();
  /** The ends of the flushes pushed most recently, oldest first (at most `inFlight`). */
  readonly #recent: Array<Promise<void>> = [];
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
    /** Flushes writing at once (1: one after another). */
    private readonly inFlight = 1,
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
    // The flush `inFlight` places back must end before the caller goes on.
    const gate = this.#recent.length >= this.inFlight ? this.#recent[this.#recent.length - this.inFlight]! : Promise.resolve();
    this.#pending++;
    const mayList = async (): Promise<void> => {
      await before;
      if (this.#failure !== undefined) throw this.#failure;
    };
    const ended = (async () => {
      try {
        if (this.#failure === undefined) await flushBatch(this.writer, batch, this.mode, this.sleep, this.onListed, mayList);
      } catch (err) {
        // Ends after every earlier flush (its listing waited for them), so the first failure is the earliest.
        await before;
        if (!(err instanceof FlushAbandoned)) this.#failure ??= err;
      } finally {
        if (--this.#pending === 0) this.onIdle();
      }
    })();
    this.#tail = before.then(() => ended);
    this.#recent.push(this.#tail);
    if (this.#recent.length > this.inFlight) void this.#recent.shift();
    return gate.then(() => this.#throwIfFailed());
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
