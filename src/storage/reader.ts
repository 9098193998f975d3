/**
 * Reads stored runs back (SPEC §7, for the CLI's read commands and the ledger's
 * validator and consumers of §8). Streams everywhere: a run's records are read
 * object by object, line by line, never a whole run into memory.
 */
import { StorageError, type StorageBackend } from './backend.js';
import { splitLines } from './lines.js';
import { manifestKey, runClaimKey, runClaimsPrefix, runPrefix, type RunPartition } from './layout.js';
import { checkSettings, ManifestError, parseJsonObject, parseManifest, type ManifestObject, type PolicyName, type RunClaim, type RunManifest, type RunOutcome } from './manifest.js';
import type { StoredRecord } from './records.js';

/** Manifests and claims read at once: enough to hide latency (S3), few enough for small file-descriptor limits. */
export const READ_CONCURRENCY = 32;

/** A stored object is not what the format says (bad JSON line, seq out of order, missing artifact). */
export class ReaderError extends Error {
  override readonly name = 'ReaderError';
  constructor(
    message: string,
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const CLAIM_FIELDS: ReadonlyArray<[keyof RunClaim, string]> = [
  ['claim_version', 'number'], ['run_id', 'string'], ['dataset', 'string'], ['source', 'string'], ['category', 'string'],
  ['day', 'string'], ['started_at', 'string'], ['attempt', 'number'], ['root_run_id', 'string'], ['depth', 'number'], ['script_path', 'string'],
];

/**
 * Parses and checks a run claim.
 * @throws ManifestError naming the first missing or mistyped field.
 */
export function parseClaim(bytes: Uint8Array | string, where: string): RunClaim {
  const c = parseJsonObject(bytes, where);
  for (const [field, type] of CLAIM_FIELDS) {
    if (typeof c[field] !== type) throw new ManifestError(`${where}: field ${String(field)} missing or not a ${type}`);
  }
  checkSettings(c, where);
  return c as unknown as RunClaim;
}

/**
 * Maps `fn` over `items` with at most `limit` calls in flight, yielding results
 * in input order. Stops starting new calls when the consumer stops iterating.
 */
export async function* mapOrdered<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): AsyncIterable<R> {
  const inflight: Array<Promise<R>> = [];
  let next = 0;
  const fill = (): void => {
    while (inflight.length < limit && next < items.length) {
      const p = fn(items[next++]!);
      // Rejections are observed when awaited in order; this only silences the "unhandled" warning meanwhile.
      p.catch(() => undefined);
      inflight.push(p);
    }
  };
  fill();
  while (inflight.length > 0) {
    const r = await inflight.shift()!;
    fill();
    yield r;
  }
}

/**
 * Every run claim of a dataset (`datasets/<d>/runs/*.json`), in run_id order.
 * @throws ManifestError for a claim that does not parse; StorageError from the backend.
 */
export async function listRunClaims(backend: StorageBackend, dataset: string): Promise<RunClaim[]> {
  const prefix = runClaimsPrefix(dataset);
  const keys: string[] = [];
  for await (const o of backend.list(prefix)) {
    const rest = o.key.slice(prefix.length);
    if (rest.endsWith('.json') && !rest.includes('/')) keys.push(o.key);
  }
  const claims: RunClaim[] = [];
  for await (const c of mapOrdered(keys, READ_CONCURRENCY, async (key) => parseClaim(await backend.get(key), `${backend.location}/${key}`))) claims.push(c);
  return claims;
}

/** One run's claim, or undefined when that run_id was never claimed. */
export async function readRunClaim(backend: StorageBackend, dataset: string, runId: string): Promise<RunClaim | undefined> {
  const key = runClaimKey(dataset, runId);
  try {
    return parseClaim(await backend.get(key), `${backend.location}/${key}`);
  } catch (err) {
    if (err instanceof StorageError && err.code === 'not_found') return undefined;
    throw err;
  }
}

/**
 * The run's manifest, or undefined when the run partition has none (not finalized).
 * @throws ManifestError when it exists but is malformed; StorageError from the backend.
 */
export async function readManifest(backend: StorageBackend, run: RunPartition): Promise<RunManifest | undefined> {
  const key = manifestKey(run);
  let bytes: Buffer;
  try {
    bytes = await backend.get(key);
  } catch (err) {
    if (err instanceof StorageError && err.code === 'not_found') return undefined;
    throw err;
  }
  return parseManifest(bytes, `${backend.location}/${key}`);
}

/** Filters of {@link listRuns}; all optional, combined with AND. */
export interface RunFilters {
  source?: string;
  category?: string;
  day?: string;
  /** Only days from this one (inclusive, YYYY-MM-DD). */
  from?: string;
  /** Only days up to this one (inclusive, YYYY-MM-DD). */
  to?: string;
  /** Only finalized runs with this outcome. */
  outcome?: RunOutcome;
  /** At most this many rows (the most recently started first). */
  limit?: number;
  /** true: only runs without a manifest; false: only finalized runs; absent: both. */
  unfinalized?: boolean;
}

/** Whether a claim's partition keys pass the source, category, day and day-range filters. */
export function claimMatches(c: Pick<RunClaim, 'source' | 'category' | 'day'>, f: Pick<RunFilters, 'source' | 'category' | 'day' | 'from' | 'to'>): boolean {
  return (f.source === undefined || c.source === f.source) && (f.category === undefined || c.category === f.category) && (f.day === undefined || c.day === f.day)
    && (f.from === undefined || c.day >= f.from) && (f.to === undefined || c.day <= f.to);
}

/** One row of `list runs`: the claim's identity plus what the manifest adds once finalized. */
export interface RunSummary {
  dataset: string;
  source: string;
  category: string;
  day: string;
  run_id: string;
  job_id?: string;
  attempt: number;
  parent_run_id?: string;
  root_run_id: string;
  depth: number;
  script_path: string;
  started_at: string;
  finalized: boolean;
  finalized_at?: string;
  outcome?: RunOutcome;
  message?: string;
  exit_code?: number;
  skipped?: boolean;
  policy?: PolicyName;
  event_count?: number;
  /** Bytes of every published object the manifest lists. */
  bytes?: number;
}

/** A run's summary row from its claim and (when finalized) its manifest. */
export function summarize(claim: RunClaim, manifest: RunManifest | undefined): RunSummary {
  const row: RunSummary = {
    dataset: claim.dataset,
    source: claim.source,
    category: claim.category,
    day: claim.day,
    run_id: claim.run_id,
    attempt: claim.attempt,
    root_run_id: claim.root_run_id,
    depth: claim.depth,
    script_path: claim.script_path,
    started_at: claim.started_at,
    finalized: manifest !== undefined,
  };
  if (claim.job_id !== undefined) row.job_id = claim.job_id;
  if (claim.parent_run_id !== undefined) row.parent_run_id = claim.parent_run_id;
  if (manifest !== undefined) {
    row.finalized_at = manifest.finalized_at;
    row.outcome = manifest.outcome;
    row.message = manifest.message;
    row.exit_code = manifest.exit_code;
    row.skipped = manifest.skipped;
    row.policy = manifest.policy.name;
    row.event_count = manifest.event_count;
    // Listed for any finalized run, vetted or not: a corrupt entry counts nothing rather than failing the listing.
    row.bytes = manifest.objects.reduce((n, o: Partial<ManifestObject> | null) => n + (typeof o?.bytes === 'number' ? o.bytes : 0), 0);
  }
  return row;
}

/**
 * Summary rows of a dataset's runs, newest first (started_at, then run_id,
 * descending). Claims are filtered by partition keys before any manifest is
 * read; manifests are read {@link READ_CONCURRENCY} at a time and reading
 * stops once `limit` rows are found.
 * @throws ManifestError for a malformed claim or manifest; StorageError from the backend.
 */
export async function listRuns(backend: StorageBackend, dataset: string, filters: RunFilters = {}): Promise<RunSummary[]> {
  const claims = (await listRunClaims(backend, dataset)).filter((c) => claimMatches(c, filters));
  claims.sort((a, b) => (a.started_at === b.started_at ? cmp(b.run_id, a.run_id) : cmp(b.started_at, a.started_at)));
  const limit = filters.limit ?? Infinity;
  const rows: RunSummary[] = [];
  if (limit <= 0) return rows;
  for await (const row of mapOrdered(claims, READ_CONCURRENCY, async (c) => summarize(c, await readManifest(backend, c)))) {
    if (filters.unfinalized === true && row.finalized) continue;
    if (filters.unfinalized === false && !row.finalized) continue;
    if (filters.outcome !== undefined && row.outcome !== filters.outcome) continue;
    rows.push(row);
    if (rows.length >= limit) break;
  }
  return rows;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Options of {@link streamRecords}. */
export interface StreamRecordsOptions {
  /** Only these event types (folder names: `item`, `log` …; `metrics` for the metrics record). Absent: every event type, no metrics. */
  eventTypes?: readonly string[];
}

/** Records of the given objects, in order, checked to be in strictly increasing seq order. */
async function* objectRecords(backend: StorageBackend, keys: readonly string[], checkSeq: boolean): AsyncIterable<StoredRecord> {
  let last = -Infinity;
  for (const key of keys) {
    let n = 0;
    for await (const bytes of splitLines(backend.read(key))) {
      const line = bytes.toString('utf8');
      n++;
      if (line === '') continue;
      let rec: StoredRecord;
      try {
        rec = JSON.parse(line) as StoredRecord;
      } catch (err) {
        throw new ReaderError(`${backend.location}/${key} line ${n}: not valid JSON (${(err as Error).message})`, key, { cause: err });
      }
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
        throw new ReaderError(`${backend.location}/${key} line ${n}: not a JSON object (a record is one object per line)`, key);
      }
      if (checkSeq) {
        const seq = (rec as { seq?: unknown }).seq;
        if (typeof seq !== 'number' || seq <= last) {
          throw new ReaderError(`${backend.location}/${key} line ${n}: seq ${typeof seq === 'number' ? seq : typeof seq} does not follow ${last} (records of one event type must be in seq order)`, key);
        }
        last = seq;
      }
      yield rec;
    }
  }
}

/**
 * Records of a finalized run, from the objects its manifest lists (never by
 * listing folders), merged across event types in `seq` order. Each event
 * type's segments are already in seq order, so a k-way merge by seq suffices;
 * at most one line per event type is held. The metrics record, when asked for,
 * comes after every event record.
 * @throws ReaderError for a malformed line or out-of-order seq; StorageError from the backend.
 */
export async function* streamRecords(backend: StorageBackend, manifest: RunManifest, options: StreamRecordsOptions = {}): AsyncIterable<StoredRecord> {
  const want = options.eventTypes === undefined ? undefined : new Set(options.eventTypes);
  const base = runPrefix(manifest);
  const byType = new Map<string, ManifestObject[]>();
  const metrics: string[] = [];
  for (const o of manifest.objects) {
    const type = o.event_type ?? '';
    if (o.kind === 'metrics') {
      if (want?.has('metrics') === true) metrics.push(`${base}${o.path}`);
      continue;
    }
    if (o.kind !== 'records' || (want !== undefined && !want.has(type))) continue;
    const list = byType.get(type) ?? [];
    list.push(o);
    byType.set(type, list);
  }
  const cursors: Array<{ it: AsyncIterator<StoredRecord>; head: StoredRecord; seq: number }> = [];
  try {
    for (const segments of byType.values()) {
      // Segment names are zero-padded, so name order is write order; first_seq breaks nothing when present.
      segments.sort((a, b) => (a.first_seq !== undefined && b.first_seq !== undefined ? a.first_seq - b.first_seq : cmp(a.path, b.path)));
      const it = objectRecords(backend, segments.map((s) => `${base}${s.path}`), true)[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done !== true) cursors.push({ it, head: first.value, seq: (first.value as { seq: number }).seq });
    }
    while (cursors.length > 0) {
      let min = 0;
      for (let i = 1; i < cursors.length; i++) if (cursors[i]!.seq < cursors[min]!.seq) min = i;
      const c = cursors[min]!;
      yield c.head;
      const next = await c.it.next();
      if (next.done === true) cursors.splice(min, 1);
      else {
        c.head = next.value;
        c.seq = (next.value as { seq: number }).seq;
      }
    }
  } finally {
    // Closing the iterators closes the object streams of a consumer that stopped early.
    await Promise.all(cursors.map((c) => c.it.return?.()));
  }
  yield* objectRecords(backend, metrics, false);
}

/** A committed artifact: its manifest entry and its bytes as a stream. */
export interface StoredArtifact {
  object: ManifestObject;
  key: string;
  chunks: AsyncIterable<Buffer>;
}

/**
 * A committed artifact of a finalized run, streamed (artifacts reach 1 GiB).
 * Orphaned artifacts are not readable here: they were never committed.
 * @throws StorageError `not_found` when the manifest lists no committed artifact with that id.
 */
export function readArtifact(backend: StorageBackend, manifest: RunManifest, artifactId: string): StoredArtifact {
  const object = manifest.objects.find((o) => o.kind === 'artifact' && o.artifact_id === artifactId);
  if (object === undefined) {
    throw new StorageError('not_found', 'read-artifact', `${runPrefix(manifest)}artifacts`, `run ${manifest.run_id} has no committed artifact ${JSON.stringify(artifactId)}`);
  }
  const key = `${runPrefix(manifest)}${object.path}`;
  return { object, key, chunks: backend.read(key) };
}
