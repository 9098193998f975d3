/**
 * The validator's checks on one finalized run partition (SPEC §8): read-only,
 * no ledger. Every listed object is streamed once, hashed and (for records)
 * parsed line by line; nothing is loaded whole, so a 1 GiB artifact costs a
 * hash, not a gigabyte of memory.
 *
 * The checks report every problem they find, each with a stable code
 * ({@link ValidationReasonCode}). Per object, the first failing level wins:
 * missing, then size, then SHA-256, then content — a line that fails to parse
 * in an object whose hash is wrong is the hash's fault, not a second reason.
 */
import { createHash } from 'node:crypto';
import { contractMajor, SUPPORTED_CONTRACT_MAJORS } from '../protocol/envelope.js';
import { assertValidKey, type StorageBackend } from '../storage/backend.js';
import { LineSplitter } from '../storage/lines.js';
import { RUN_ID_RE, runPrefix, type RunPartition } from '../storage/layout.js';
import { ManifestError, MANIFEST_VERSION, parseManifest, type ManifestObject, type RunManifest } from '../storage/manifest.js';
import type { ValidationReason } from './types.js';

/** Objects checked at once: enough to overlap latency (S3), few enough to bound open streams. */
export const CHECK_CONCURRENCY = 4;

/** Largest seq range checked for duplicates with a bitset (32 MiB); wider ranges skip only that check. */
const MAX_BITSET_SEQS = 2 ** 28;

const SHA256_RE = /^[0-9a-f]{64}$/;
const OBJECT_KINDS = new Set(['records', 'artifact', 'file', 'file_meta', 'metrics']);

/** What the checks found. */
export interface RunCheckResult {
  /** The parsed manifest, when it parsed (even if other checks failed). */
  manifest: RunManifest | undefined;
  /** Empty when the run is valid. */
  reasons: ValidationReason[];
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
/** A stored value for a message: JSON, or a placeholder when it is too deep to serialize (a hostile line must not crash the check). */
const show = (v: unknown): string => {
  try {
    return String(JSON.stringify(v)).slice(0, 200);
  } catch {
    return '(a value too deeply nested to show)';
  }
};
const isInstant = (v: string): boolean => !Number.isNaN(Date.parse(v)) && /^\d{4}-\d{2}-\d{2}T/.test(v);

/**
 * Shape problems past what {@link parseManifest} checks: the fields the other checks rely on.
 * Values are quoted with `show`, never JSON.stringify: a field nested 20,000 deep would
 * overflow the stack and crash the validator instead of making the run `manifest_malformed`.
 */
function shapeProblems(m: RunManifest): string[] {
  const p: string[] = [];
  if (!isInstant(m.finalized_at)) p.push(`finalized_at ${show(m.finalized_at)} is not an ISO 8601 instant`);
  if (!isInstant(m.started_at)) p.push(`started_at ${show(m.started_at)} is not an ISO 8601 instant`);
  if (!RUN_ID_RE.test(m.root_run_id)) p.push(`root_run_id ${show(m.root_run_id)} is not a run id`);
  if (m.parent_run_id !== undefined && m.parent_run_id !== null && (typeof m.parent_run_id !== 'string' || !RUN_ID_RE.test(m.parent_run_id))) p.push(`parent_run_id ${show(m.parent_run_id)} is not a run id`);
  if (!isCount(m.depth)) p.push(`depth ${show(m.depth)} is not a non-negative integer`);
  if (m.seq === null || (m.seq.first !== null && !isSeq(m.seq.first)) || (m.seq.last !== null && !isSeq(m.seq.last)) || (m.seq.first === null) !== (m.seq.last === null)) {
    p.push(`seq ${show(m.seq)} must be {first, last} integers ≥ 1, or both null`);
  }
  if (!isCount(m.policy.events_persisted) || !isCount(m.policy.events_dropped)) p.push('policy.events_persisted and policy.events_dropped must be non-negative integers');
  if (typeof m.script.path !== 'string' || typeof m.script.sha256 !== 'string') p.push('script must have path and sha256 strings');
  m.objects.forEach((o: Partial<ManifestObject> | null, i) => {
    const where = `objects[${i}]`;
    if (typeof o !== 'object' || o === null) return void p.push(`${where} is not an object`);
    if (typeof o.path !== 'string') return void p.push(`${where}.path is not a string`);
    try {
      assertValidKey(o.path, 'validate');
    } catch {
      return void p.push(`${where}.path ${show(o.path)} is not a relative path inside the run folder`);
    }
    if (o.path === '_manifest.json') p.push(`${where} lists the manifest itself`);
    if (typeof o.kind !== 'string' || !OBJECT_KINDS.has(o.kind)) p.push(`${where}.kind ${show(o.kind)} is not one of ${[...OBJECT_KINDS].join('|')}`);
    if (!isCount(o.bytes)) p.push(`${where}.bytes is not a non-negative integer`);
    if (typeof o.sha256 !== 'string' || !SHA256_RE.test(o.sha256)) p.push(`${where}.sha256 is not a lowercase hex SHA-256`);
    if ((o.kind === 'records' || o.kind === 'metrics') && !isCount(o.records)) p.push(`${where}.records is not a non-negative integer`);
    if (o.kind === 'records') {
      if (typeof o.event_type !== 'string') p.push(`${where}.event_type is missing`);
      if (!isSeq(o.first_seq) || !isSeq(o.last_seq) || o.first_seq > o.last_seq) p.push(`${where}.first_seq/last_seq must be integers with 1 ≤ first ≤ last`);
    }
  });
  const paths = new Set<string>();
  for (const o of m.objects as Array<Partial<ManifestObject> | null>) {
    if (typeof o?.path !== 'string') continue;
    if (paths.has(o.path)) p.push(`object ${o.path} is listed twice`);
    paths.add(o.path);
  }
  return p;
}

/**
 * Run-wide state the per-object checks feed: the seqs seen, as a bitset from
 * `first`. Sized by the manifest's seq span when a finalized run is checked;
 * growing (up to {@link MAX_BITSET_SEQS} seqs) when a run's segments are
 * checked as they are published, before the span is known.
 */
export class SeqLedger {
  duplicates = 0;
  outOfRange = 0;
  persisted = 0;
  terminalSeq: number | undefined;
  /** The highest seq noted (0: none). */
  maxSeq = 0;

  constructor(
    readonly first: number,
    public seen: Uint8Array | undefined,
    private readonly growable = false,
  ) {}

  /** A record with this seq was read (its event type `run_complete` when `terminal`). */
  note(seq: number, terminal: boolean): void {
    this.persisted++;
    if (terminal) this.terminalSeq = Math.max(this.terminalSeq ?? 0, seq);
    if (seq > this.maxSeq) this.maxSeq = seq;
    if (this.seen === undefined) return;
    const i = seq - this.first;
    if (i >= this.seen.length * 8 && this.growable && i < MAX_BITSET_SEQS) {
      const grown = new Uint8Array(Math.min(Math.max(this.seen.length * 2, (i >> 3) + 1), MAX_BITSET_SEQS / 8));
      grown.set(this.seen);
      this.seen = grown;
    }
    if (i < 0 || i >= this.seen.length * 8) {
      this.outOfRange++;
      return;
    }
    const bit = 1 << (i & 7);
    if ((this.seen[i >> 3]! & bit) !== 0) this.duplicates++;
    this.seen[i >> 3]! |= bit;
  }
}

/**
 * Checks one listed object of the run `runId` (the first failing level wins:
 * missing, size, SHA-256, content), feeding its records' seqs to `seqs`.
 * Every byte is read back from storage. @throws StorageError when storage fails.
 */
export async function checkObject(storage: StorageBackend, base: string, runId: string, o: ManifestObject, seqs: SeqLedger): Promise<ValidationReason[]> {
  const key = `${base}${o.path}`;
  const at = { object: o.path };
  const st = await storage.stat(key);
  if (st === undefined) return [{ code: 'object_missing', message: `${o.path} is listed in the manifest but absent from storage`, ...at }];
  if (st.bytes !== o.bytes) return [{ code: 'object_size_mismatch', message: `${o.path} has ${st.bytes} bytes, the manifest says ${o.bytes}`, ...at }];

  const hash = createHash('sha256');
  const content: ValidationReason[] = [];
  const parseLines = o.kind === 'records' || o.kind === 'metrics';
  let count = 0;
  let prevSeq = 0;
  let firstSeq: number | undefined;
  const malformed = (line: number, why: string): void => {
    if (!content.some((r) => r.code === 'record_malformed')) content.push({ code: 'record_malformed', message: `${o.path} line ${line}: ${why}`, ...at });
  };
  const seqProblem = (message: string): void => {
    if (!content.some((r) => r.code === 'seq_inconsistent')) content.push({ code: 'seq_inconsistent', message, ...at });
  };
  if (!parseLines) {
    for await (const chunk of storage.read(key)) hash.update(chunk);
  } else {
    const onLine = (raw: Buffer): void => {
      count++;
      let rec: unknown;
      try {
        rec = JSON.parse(raw.toString('utf8'));
      } catch (err) {
        return malformed(count, `not valid JSON (${(err as Error).message})`);
      }
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return malformed(count, 'not a JSON object');
      const r = rec as Record<string, unknown>;
      if (r.run_id !== runId) malformed(count, `run_id ${show(r.run_id)} is not the run's (${runId})`);
      if (o.kind === 'metrics') return;
      if (r.event_type !== o.event_type) malformed(count, `event_type ${show(r.event_type)} in the folder of ${o.event_type ?? '?'}`);
      const seq = r.seq;
      if (!isSeq(seq)) return malformed(count, `seq ${show(seq)} is not an integer ≥ 1`);
      firstSeq ??= seq;
      if (seq <= prevSeq) seqProblem(`${o.path} line ${count}: seq ${seq} does not follow ${prevSeq}`);
      if (seq < (o.first_seq ?? 0) || seq > (o.last_seq ?? 0)) seqProblem(`${o.path} line ${count}: seq ${seq} outside the object's range ${o.first_seq}..${o.last_seq}`);
      prevSeq = seq;
      seqs.note(seq, r.event_type === 'run_complete');
    };
    // Lines are checked synchronously within each chunk: an awaited step per line cost more than its parse.
    const lines = new LineSplitter();
    for await (const chunk of storage.read(key)) {
      hash.update(chunk);
      lines.push(chunk, onLine);
    }
    lines.end(onLine);
  }
  const digest = hash.digest('hex');
  if (digest !== o.sha256) return [{ code: 'object_sha256_mismatch', message: `${o.path} has SHA-256 ${digest}, the manifest says ${o.sha256}`, ...at }];
  if (parseLines && count !== o.records) content.push({ code: 'record_count_mismatch', message: `${o.path} holds ${count} records, the manifest says ${o.records ?? '?'}`, ...at });
  if (o.kind === 'records' && count > 0 && (firstSeq !== o.first_seq || prevSeq !== o.last_seq)) {
    seqProblem(`${o.path} spans seq ${firstSeq ?? '?'}..${prevSeq}, the manifest says ${o.first_seq}..${o.last_seq}`);
  }
  return content;
}

/**
 * An object checked as it was published: present, its size, and its bytes
 * read back and hashed again (the first levels of {@link checkObject}); its
 * lines are not parsed again, since they were parsed from bytes with the same SHA-256.
 */
async function checkBytes(storage: StorageBackend, base: string, o: ManifestObject): Promise<ValidationReason[]> {
  const key = `${base}${o.path}`;
  const st = await storage.stat(key);
  if (st === undefined) return [{ code: 'object_missing', message: `${o.path} is listed in the manifest but absent from storage`, object: o.path }];
  if (st.bytes !== o.bytes) return [{ code: 'object_size_mismatch', message: `${o.path} has ${st.bytes} bytes, the manifest says ${o.bytes}`, object: o.path }];
  const hash = createHash('sha256');
  for await (const chunk of storage.read(key)) hash.update(chunk);
  const digest = hash.digest('hex');
  if (digest !== o.sha256) return [{ code: 'object_sha256_mismatch', message: `${o.path} has SHA-256 ${digest}, the manifest says ${o.sha256}`, object: o.path }];
  return [];
}

/**
 * Records objects of one run that were read back from storage and checked
 * ({@link checkObject}: size, SHA-256, every line parsed, seqs) as they were
 * published, before the run was finalized (`src/ledger/published-check.ts`).
 * Holds only objects that passed every check, and is `clean` only when every
 * object handed over for checking did.
 */
export interface Preverified {
  /** Each checked object as it was listed, by path. */
  readonly objects: ReadonlyMap<string, ManifestObject>;
  /** The seqs of their records, a growing bitset from seq 1. */
  readonly seqs: SeqLedger;
  /** False when any object failed a check or could not be read: then nothing of it is used. */
  readonly clean: boolean;
}

const sameObject = (a: ManifestObject, b: ManifestObject): boolean =>
  a.path === b.path && a.kind === b.kind && a.event_type === b.event_type && a.bytes === b.bytes && a.records === b.records && a.sha256 === b.sha256 && a.first_seq === b.first_seq && a.last_seq === b.last_seq;

/**
 * The run-wide seq state to continue from when `pre` can stand in for reading
 * its objects again: it is clean, each of its objects is listed in the
 * manifest exactly as it was checked, and its seqs fit the manifest's range
 * from its first seq. Otherwise undefined, and every object is read back.
 */
function usablePreverified(pre: Preverified, m: RunManifest, seen: Uint8Array | undefined): SeqLedger | undefined {
  if (!pre.clean || pre.objects.size === 0 || seen === undefined || m.seq.first !== pre.seqs.first) return undefined;
  if (pre.seqs.duplicates > 0 || pre.seqs.outOfRange > 0 || pre.seqs.maxSeq > m.seq.last!) return undefined;
  const listed = new Map(m.objects.map((o) => [o.path, o]));
  for (const o of pre.objects.values()) {
    const l = listed.get(o.path);
    if (l === undefined || !sameObject(o, l)) return undefined;
  }
  const bits = pre.seqs.seen!;
  seen.set(bits.length > seen.length ? bits.subarray(0, seen.length) : bits);
  const seqs = new SeqLedger(pre.seqs.first, seen);
  seqs.persisted = pre.seqs.persisted;
  seqs.terminalSeq = pre.seqs.terminalSeq;
  seqs.maxSeq = pre.seqs.maxSeq;
  return seqs;
}

/** Runs `fn` over `items`, at most `limit` at a time, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Checks a finalized run partition whose manifest bytes are `manifestBytes`
 * (SPEC §8): manifest well-formed and naming this partition; manifest and
 * contract versions known; every listed object present with its size and
 * SHA-256; record counts; seq consistency (`seq.last - seq.first + 1` equals
 * events persisted plus dropped, every record inside the range, no seq twice,
 * each object's first/last seq right); for a success, a `run_complete` record
 * holding the last seq; outcome `success` and not skipped.
 * `preverified`: records objects of this run already read back and checked
 * as they were published ({@link Preverified}); used only when it matches the
 * manifest exactly, and then those objects are read back and hashed again,
 * their lines not parsed again. Never writes.
 * @throws StorageError when storage fails (not when an object is missing).
 */
export async function checkRun(storage: StorageBackend, run: RunPartition, manifestBytes: Uint8Array, concurrency = CHECK_CONCURRENCY, preverified?: Preverified): Promise<RunCheckResult> {
  let m: RunManifest;
  try {
    m = parseManifest(manifestBytes, `${storage.location}/${runPrefix(run)}_manifest.json`);
  } catch (err) {
    if (!(err instanceof ManifestError)) throw err;
    return { manifest: undefined, reasons: [{ code: 'manifest_malformed', message: err.message }] };
  }
  const reasons: ValidationReason[] = [];
  const mismatched = (['dataset', 'source', 'category', 'day', 'run_id'] as const).filter((k) => m[k] !== run[k]);
  if (mismatched.length > 0) {
    reasons.push({ code: 'manifest_identity_mismatch', message: `the manifest names ${mismatched.map((k) => `${k}=${m[k]}`).join(', ')} but sits at ${mismatched.map((k) => `${k}=${run[k]}`).join(', ')}` });
  }
  if (m.manifest_version !== MANIFEST_VERSION) {
    reasons.push({ code: 'manifest_version_unknown', message: `manifest_version ${m.manifest_version} is not one this Quarry reads (${MANIFEST_VERSION})` });
    return { manifest: m, reasons };
  }
  const shape = shapeProblems(m);
  if (shape.length > 0) {
    reasons.push(...shape.map((message) => ({ code: 'manifest_malformed' as const, message })));
    return { manifest: m, reasons };
  }
  const major = contractMajor(m.contract_version);
  if (major === undefined || !SUPPORTED_CONTRACT_MAJORS.includes(major)) {
    reasons.push({ code: 'contract_version_unknown', message: `contract_version ${show(m.contract_version)} has no major this Quarry knows (${SUPPORTED_CONTRACT_MAJORS.join(', ')})` });
  }
  if (m.outcome !== 'success') reasons.push({ code: 'outcome_not_success', message: `outcome is ${m.outcome}${m.outcome === 'interrupted' ? ' (never promotable)' : ''}${m.message === '' ? '' : `: ${m.message}`}` });
  if (m.skipped) reasons.push({ code: 'skipped', message: 'the run was skipped by prepare (recorded, never promoted)' });

  const { first, last } = m.seq;
  const expected = m.policy.events_persisted + m.policy.events_dropped;
  const span = first === null || last === null ? 0 : last - first + 1;
  if (span !== expected) {
    reasons.push({ code: 'seq_inconsistent', message: `seq ${first ?? '-'}..${last ?? '-'} spans ${span} events, but ${m.policy.events_persisted} persisted + ${m.policy.events_dropped} dropped = ${expected}` });
  }
  for (const o of m.objects) {
    if (o.kind !== 'records') continue;
    if (first === null || last === null || o.first_seq! < first || o.last_seq! > last) {
      reasons.push({ code: 'seq_inconsistent', message: `${o.path} covers seq ${o.first_seq}..${o.last_seq}, outside the run's ${first ?? '-'}..${last ?? '-'}`, object: o.path });
    }
  }
  const seen = first !== null && span > 0 && span <= MAX_BITSET_SEQS ? new Uint8Array(Math.ceil(span / 8)) : undefined;
  const pre = preverified === undefined ? undefined : usablePreverified(preverified, m, seen);
  const seqs = pre ?? new SeqLedger(first ?? 1, seen);
  const base = runPrefix(run);
  // An object checked as it was published is read back and hashed again, not parsed again:
  // its lines were parsed from bytes with this very SHA-256.
  const check = (o: ManifestObject): Promise<ValidationReason[]> => (pre !== undefined && preverified!.objects.has(o.path) ? checkBytes(storage, base, o) : checkObject(storage, base, m.run_id, o, seqs));
  for (const r of await mapLimit(m.objects, concurrency, check)) reasons.push(...r);
  const objectsFailed = reasons.some((r) => r.object !== undefined && r.code !== 'seq_inconsistent' && r.code !== 'record_malformed');
  if (!objectsFailed) {
    if (seqs.persisted !== m.policy.events_persisted) {
      reasons.push({ code: 'record_count_mismatch', message: `the run's records hold ${seqs.persisted} events, policy.events_persisted says ${m.policy.events_persisted}` });
    }
    if (seqs.duplicates > 0) reasons.push({ code: 'seq_inconsistent', message: `${seqs.duplicates} seq value(s) occur in more than one record` });
    if (seqs.outOfRange > 0) reasons.push({ code: 'seq_inconsistent', message: `${seqs.outOfRange} record(s) carry a seq outside ${first ?? '-'}..${last ?? '-'}` });
    if (m.outcome === 'success' && !m.skipped && (seqs.terminalSeq === undefined || seqs.terminalSeq !== last)) {
      reasons.push({
        code: 'terminal_event_missing',
        message: seqs.terminalSeq === undefined ? 'no run_complete record: a success must end with its terminal event' : `run_complete has seq ${seqs.terminalSeq}, not the run's last seq ${last ?? '-'}`,
      });
    }
  }
  return { manifest: m, reasons };
}
