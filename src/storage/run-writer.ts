/**
 * Writes one run partition (SPEC §7): claims the run_id, publishes record
 * segments, artifact bytes and sidecar files, and writes `_manifest.json` last.
 *
 * Invariant: every object is created exclusively through the storage port, so
 * nothing already stored is ever replaced; an object whose write failed is
 * never listed in the manifest.
 */
import { randomUUID } from 'node:crypto';
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import type { ObjectInfo, ObjectWriter, StorageBackend } from './backend.js';
import { StorageError } from './backend.js';
import { artifactName, manifestKey, runClaimKey, runPrefix, segmentName, sidecarMetaName, sidecarName, type RunPartition } from './layout.js';
import { putNewOrOwn } from './create-own.js';
import { serializeManifest, type ManifestObject, type RunClaim, type RunManifest } from './manifest.js';
import { recordLineSerializer, type RecordLineSerializer } from './records.js';
import { reachKillPoint } from '../runtime/kill-point.js';

/** The run_id is taken in this dataset: a partition cannot be created twice (SPEC §5). */
export class RunIdExistsError extends Error {
  override readonly name = 'RunIdExistsError';
  constructor(readonly runId: string, readonly dataset: string) {
    super(`run_id ${runId} already exists in dataset ${dataset}; choose another --run-id or omit it to generate one`);
  }
}

/** Counts of storage writes, for the §9 `lode_write_*` metrics. */
export interface WriteCounters {
  success: number;
  failure: number;
  retry: number;
}

/** A segment kept open for appends (strict policy): synced and published at seal. */
interface OpenSegment {
  writer: ObjectWriter;
  records: number;
  firstSeq: number;
  lastSeq: number;
}

interface OpenArtifact {
  writer: ObjectWriter;
  nextSeq: number;
  chunks: number;
}

/** What the writer knows about an artifact's bytes. */
export interface ArtifactBytes {
  artifact_id: string;
  path?: string;
  bytes: number;
  chunks: number;
  complete: boolean;
  sha256?: string;
}

export class RunWriter {
  readonly partition: RunPartition;
  readonly #backend: StorageBackend;
  readonly #prefix: string;
  readonly #line: RecordLineSerializer;
  readonly #objects: ManifestObject[] = [];
  readonly #superseded: ManifestObject[] = [];
  readonly #segmentCounters = new Map<string, number>();
  readonly #open = new Map<string, OpenSegment>();
  readonly #artifacts = new Map<string, OpenArtifact>();
  readonly #artifactBytes = new Map<string, ArtifactBytes>();
  readonly writes: WriteCounters = { success: 0, failure: 0, retry: 0 };
  #finalized = false;
  /** Called with the objects each flush lists (buffered, streaming), once listed: `quarry run` checks them as they are published. */
  onListed: ((objects: readonly ManifestObject[]) => void) | undefined;

  private constructor(backend: StorageBackend, partition: RunPartition) {
    this.#backend = backend;
    this.partition = partition;
    this.#prefix = runPrefix(partition);
    this.#line = recordLineSerializer(partition);
  }

  /**
   * Claims the run_id in the dataset and returns a writer for its partition.
   * The claim gets a random `claim_token` (unless given), so a create
   * reported failed that did store this claim is recognised as ours.
   * @throws RunIdExistsError when the run_id was used before (in any partition of the dataset).
   */
  static async claim(backend: StorageBackend, claim: RunClaim): Promise<RunWriter> {
    // The token makes this writer's claim bytes its own: a create reported failed
    // that did take effect is recognised, and another writer's identical claim never is.
    const ours: RunClaim = { ...claim, claim_token: claim.claim_token ?? randomUUID() };
    try {
      await putNewOrOwn(backend, runClaimKey(claim.dataset, claim.run_id), serializeManifest(ours));
    } catch (err) {
      if (err instanceof StorageError && err.code === 'exists') throw new RunIdExistsError(claim.run_id, claim.dataset);
      throw err;
    }
    const writer = new RunWriter(backend, claim);
    // A partition folder left by an older layout or by hand is refused as well.
    if (await backend.stat(manifestKey(claim))) throw new RunIdExistsError(claim.run_id, claim.dataset);
    return writer;
  }

  get backend(): StorageBackend {
    return this.#backend;
  }

  /** Storage key (relative to the backend root) of a path inside the run folder. */
  keyOf(path: string): string {
    return `${this.#prefix}${path}`;
  }

  /** Published objects so far, in publication order. */
  get objects(): readonly ManifestObject[] {
    return this.#objects;
  }

  /** Serializes an event as its record line (artifact events point at their bytes). */
  recordLine(e: AnyEventEnvelope): string {
    return this.#line(e, e.type === 'artifact' ? artifactName(e.payload.artifact_id) : undefined);
  }

  /**
   * The payload JSON {@link recordLine} just made for `e` (undefined when `e`
   * was not the last event serialized, or its payload holds bytes), so an
   * event sink reuses it instead of encoding the payload again.
   */
  payloadJsonOf(e: AnyEventEnvelope): string | undefined {
    return this.#line.payloadJsonOf(e);
  }

  /**
   * Appends lines to the open segment of `eventType` (opened on first use). Not durable until {@link sealSegments}.
   * @throws StorageError when the append fails; the segment is then aborted and never published
   *   (its earlier lines are lost with it: the caller fails the run).
   */
  async append(eventType: string, text: string, records: number, firstSeq: number, lastSeq: number): Promise<void> {
    let seg = this.#open.get(eventType);
    if (!seg) {
      const name = this.#nextSegmentName(eventType);
      seg = { writer: await this.#backend.openNew(this.keyOf(name)), records: 0, firstSeq, lastSeq };
      this.#open.set(eventType, seg);
    }
    try {
      await seg.writer.write(Buffer.from(text, 'utf8'));
    } catch (err) {
      // The segment may hold part of this text: discard it now (handle, temp file, multipart upload), never publish it.
      this.#open.delete(eventType);
      this.writes.failure++;
      await seg.writer.abort().catch(() => undefined);
      throw err;
    }
    seg.records += records;
    seg.lastSeq = lastSeq;
    reachKillPoint('mid_segment');
  }

  /**
   * Syncs and publishes every open segment; each becomes a manifest object, in
   * the order the segments were opened. The segments are independent objects,
   * so they are committed together: their fsyncs wait for the disk at once
   * instead of one after another (a crawl's run has two, item and run_complete).
   */
  async sealSegments(): Promise<void> {
    const open = [...this.#open.entries()];
    this.#open.clear();
    const commits = await Promise.allSettled(open.map(([, seg]) => seg.writer.commit()));
    let firstError: unknown;
    for (const [i, [eventType, seg]] of open.entries()) {
      const c = commits[i]!;
      if (c.status === 'fulfilled') {
        this.writes.success++;
        this.#objects.push(recordsObject(this.#prefix, c.value, eventType, seg.records, seg.firstSeq, seg.lastSeq));
        reachKillPoint('after_segment_published');
      } else {
        this.writes.failure++;
        await seg.writer.abort().catch(() => undefined);
        firstError ??= c.reason;
      }
    }
    if (firstError !== undefined) throw firstError;
  }

  /**
   * Publishes one complete segment of `eventType` (one flush) WITHOUT listing
   * it: the caller lists a flush's segments together with {@link listObjects}
   * once the flush as a whole succeeded. The segment name is taken before the
   * write, so a retry gets a fresh name and never collides with a half-known object.
   */
  async writeSegment(eventType: string, text: Uint8Array | string | readonly Uint8Array[], records: number, firstSeq: number, lastSeq: number): Promise<ManifestObject> {
    const key = this.keyOf(this.#nextSegmentName(eventType));
    const info = typeof text === 'string' || !Array.isArray(text) ? await this.#put(key, text as Uint8Array | string) : await this.#putChunks(key, text);
    reachKillPoint('after_segment_published');
    return recordsObject(this.#prefix, info, eventType, records, firstSeq, lastSeq);
  }

  /** Lists published objects in the manifest, in order. */
  listObjects(objects: readonly ManifestObject[]): void {
    this.#objects.push(...objects);
    this.onListed?.(objects);
  }

  /**
   * Records objects that were published by a flush attempt that failed as a
   * whole and were rewritten by its retry: never listed, never read, kept for audit.
   */
  supersede(objects: readonly ManifestObject[]): void {
    this.#superseded.push(...objects);
  }

  /** Objects published but superseded by a retry (not part of the run's data). */
  get superseded(): readonly ManifestObject[] {
    return this.#superseded;
  }

  /** Appends one artifact chunk; the bytes object is published when the last chunk arrives. */
  async artifactChunk(artifactId: string, seq: number, isLast: boolean, data: Uint8Array): Promise<void> {
    const known = this.#artifactBytes.get(artifactId);
    if (known?.complete) throw new ArtifactProtocolError(`artifact ${artifactId}: chunk ${seq} after its last chunk`);
    let open = this.#artifacts.get(artifactId);
    if (!open) {
      if (seq !== 1) throw new ArtifactProtocolError(`artifact ${artifactId}: first chunk has seq ${seq}, expected 1`);
      open = { writer: await this.#backend.openNew(this.keyOf(artifactName(artifactId))), nextSeq: 1, chunks: 0 };
      this.#artifacts.set(artifactId, open);
      this.#artifactBytes.set(artifactId, { artifact_id: artifactId, bytes: 0, chunks: 0, complete: false });
    }
    if (seq !== open.nextSeq) throw new ArtifactProtocolError(`artifact ${artifactId}: chunk seq ${seq}, expected ${open.nextSeq}`);
    open.nextSeq++;
    open.chunks++;
    if (data.byteLength > 0) await open.writer.write(data);
    const state = this.#artifactBytes.get(artifactId)!;
    state.bytes = open.writer.bytes;
    state.chunks = open.chunks;
    if (isLast) {
      this.#artifacts.delete(artifactId);
      try {
        const info = await open.writer.commit();
        state.sha256 = info.sha256;
        this.writes.success++;
      } catch (err) {
        this.writes.failure++;
        await open.writer.abort().catch(() => undefined);
        throw err;
      }
      state.complete = true;
      state.path = artifactName(artifactId);
    }
  }

  /** Bytes received for an artifact so far (undefined when no chunk arrived). */
  artifactState(artifactId: string): ArtifactBytes | undefined {
    return this.#artifactBytes.get(artifactId);
  }

  /** Every artifact that received bytes, committed or not. */
  artifactStates(): ArtifactBytes[] {
    return [...this.#artifactBytes.values()];
  }

  /** Lists a committed artifact's bytes in the manifest (called when its commit event is persisted). */
  listArtifact(artifactId: string): void {
    const st = this.#artifactBytes.get(artifactId);
    if (!st?.path || st.sha256 === undefined) return;
    this.#objects.push({ path: st.path, kind: 'artifact', artifact_id: artifactId, bytes: st.bytes, sha256: st.sha256 });
  }

  /** Discards artifacts whose last chunk never came (their bytes were never published). */
  async abortOpenArtifacts(): Promise<void> {
    for (const open of this.#artifacts.values()) await open.writer.abort().catch(() => undefined);
    this.#artifacts.clear();
  }

  /**
   * Writes a sidecar file and its `.meta.json` (SPEC §2 storage.put), and
   * lists both in the manifest only once both are durable; when either write
   * fails neither is listed (a published file without its meta stays unlisted,
   * so no consumer reads it).
   * @returns the storage key of the file.
   * @throws StorageError from either write.
   */
  async putFile(filename: string, contentType: string, data: Uint8Array): Promise<string> {
    const key = this.keyOf(sidecarName(filename));
    const info = await this.#put(key, data);
    const meta = `${JSON.stringify({ filename, content_type: contentType, bytes: info.bytes, sha256: info.sha256 })}\n`;
    const metaInfo = await this.#put(this.keyOf(sidecarMetaName(filename)), meta);
    // Listed together, once both are durable: a file whose description failed is never listed (SPEC §7).
    this.#objects.push(
      { path: sidecarName(filename), kind: 'file', bytes: info.bytes, sha256: info.sha256 },
      { path: sidecarMetaName(filename), kind: 'file_meta', bytes: metaInfo.bytes, sha256: metaInfo.sha256 },
    );
    return key;
  }

  /** Publishes the run's metrics record. */
  async putMetrics(line: string): Promise<void> {
    const name = 'event_type=metrics/metrics.jsonl';
    const info = await this.#put(this.keyOf(name), line);
    this.#objects.push({ path: name, kind: 'metrics', event_type: 'metrics', bytes: info.bytes, records: 1, sha256: info.sha256 });
  }

  /**
   * Writes `_manifest.json`, the commit record. After this the partition is
   * finalized. A write reported failed after which the key holds exactly this
   * manifest succeeded (see `create-own.ts`).
   * @throws StorageError (e.g. `exists` with other bytes) — the manifest is never replaced.
   */
  async finalize(manifest: RunManifest): Promise<void> {
    if (this.#finalized) throw new Error(`run ${this.partition.run_id} is already finalized`);
    // Only this run (it holds the claim) writes this manifest, so finding these exact bytes means our create took effect.
    await this.#put(manifestKey(this.partition), serializeManifest(manifest), putNewOrOwn);
    this.#finalized = true;
  }

  /**
   * Publishes the concatenation of `chunks`. On fs they are written one by
   * one into the temporary file (hashed as they go), so a 3 MB segment is
   * never copied into one buffer first (that copy cost a streaming run ~5%
   * of its CPU at a million events; docs/benchmarks.md, "Emit throughput by
   * wall clock"); on S3 they are one body, since a multipart upload per
   * segment would cost three requests instead of one.
   */
  async #putChunks(key: string, chunks: readonly Uint8Array[]): Promise<ObjectInfo> {
    if (this.#backend.kind !== 'fs') return this.#put(key, Buffer.concat(chunks));
    let w: ObjectWriter | undefined;
    try {
      w = await this.#backend.openNew(key);
      for (const c of chunks) await w.write(c);
      // Test-only: a crash with a whole segment written but not published (docs/contracts/run.md).
      reachKillPoint('mid_segment');
      const info = await w.commit();
      this.writes.success++;
      return info;
    } catch (err) {
      this.writes.failure++;
      await w?.abort().catch(() => undefined);
      throw err;
    }
  }

  async #put(key: string, data: Uint8Array | string, put: typeof putNewOrOwn = (b, k, d) => b.putNew(k, d)): Promise<ObjectInfo> {
    try {
      const info = await put(this.#backend, key, data);
      this.writes.success++;
      return info;
    } catch (err) {
      this.writes.failure++;
      throw err;
    }
  }

  #nextSegmentName(eventType: string): string {
    const n = (this.#segmentCounters.get(eventType) ?? 0) + 1;
    this.#segmentCounters.set(eventType, n);
    return segmentName(eventType, n);
  }
}

/** The executor broke the artifact chunk rules (SPEC §3): a fatal stream error. */
export class ArtifactProtocolError extends Error {
  override readonly name = 'ArtifactProtocolError';
}

function recordsObject(prefix: string, info: ObjectInfo, eventType: string, records: number, firstSeq: number, lastSeq: number): ManifestObject {
  return {
    path: info.key.slice(prefix.length),
    kind: 'records',
    event_type: eventType,
    bytes: info.bytes,
    records,
    sha256: info.sha256,
    first_seq: firstSeq,
    last_seq: lastSeq,
  };
}
