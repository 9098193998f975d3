/**
 * Fuzz targets for what Quarry reads back from storage (SPEC §7, §8): the run
 * manifest and claim (parseManifest, parseClaim, the `list` row built from
 * them, then the validator's checkRun against the run's real objects), and
 * record lines (checkRun and the reader's streamRecords over mutated
 * segments, resealed or not). Storage is in memory, so each input costs
 * microseconds. Documented outcomes: ManifestError, ReaderError and the
 * validator's reason codes; anything thrown besides is a bug.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { checkRun } from '../../src/ledger/run-checks.js';
import { manifestKey, runClaimKey, type RunPartition } from '../../src/storage/layout.js';
import { ManifestError, parseManifest, serializeManifest, type RunManifest } from '../../src/storage/manifest.js';
import { parseClaim, ReaderError, streamRecords, summarize } from '../../src/storage/reader.js';
import { MemoryBackend } from '../_harness/memory-backend.js';
import { eventsOf, writeRun } from '../storage/run-fixture.js';
import type { FuzzTarget } from './harness.js';
import { applyByteMutation, applyValueMutation, byteMutation, oddValue, setPath, toJsonText, valueMutation, type ByteMutation, type Path, type ValueMutation } from './mutators.js';

const PARTITION: RunPartition = { dataset: 'quarry', source: 'fuzz', category: 'default', day: '2026-11-23', run_id: 'run-fuzz-1' };

interface BaseRun {
  objects: ReadonlyMap<string, Buffer>;
  /** Never mutated: inputs that change it work on a copy. */
  manifest: RunManifest;
  manifestBytes: Buffer;
  claim: Record<string, unknown>;
}

/** A valid finalized run: several segments per type, an artifact, metrics, the terminal event. */
async function baseRun(): Promise<BaseRun> {
  const backend = new MemoryBackend();
  const events = eventsOf(PARTITION.run_id, ['item', 'log', 'item', 'checkpoint', 'artifact', 'item', 'enqueue', 'item', 'run_complete']);
  const manifest = (await writeRun(backend, { partition: PARTITION, outcome: 'success', events, segmentSize: 2, artifacts: { a5: Buffer.from('PNG!') }, job_id: 'job-1' }))!;
  const claim = JSON.parse((await backend.get(runClaimKey(PARTITION.dataset, PARTITION.run_id))).toString()) as Record<string, unknown>;
  return { objects: new Map(backend.objects), manifest, manifestBytes: Buffer.from(serializeManifest(manifest)), claim };
}

let base: Promise<BaseRun> | undefined;
const getBase = (): Promise<BaseRun> => (base ??= baseRun());

const backendOf = (b: BaseRun, chunkBytes = 64 * 1024): MemoryBackend => {
  const backend = new MemoryBackend(chunkBytes);
  for (const [k, v] of b.objects) backend.objects.set(k, v);
  return backend;
};

const manifestErrorLabel = (err: ManifestError): string => {
  const m = err.message;
  if (m.includes('not valid JSON')) return 'ManifestError:json';
  if (m.includes('not a JSON object')) return 'ManifestError:not_object';
  if (m.includes('objects is not a list')) return 'ManifestError:objects';
  if (m.includes('unknown outcome')) return 'ManifestError:outcome';
  if (m.includes('missing or not')) return 'ManifestError:field';
  return 'ManifestError:other';
};

const readerErrorLabel = (err: ReaderError): string => {
  const m = err.message;
  if (m.includes('not valid JSON')) return 'ReaderError:json';
  if (m.includes('not a JSON object')) return 'ReaderError:not_object';
  if (m.includes('does not follow')) return 'ReaderError:seq';
  return 'ReaderError:other';
};

/** The validator's verdict on the run as stored, as labels (`valid` or one per reason code). */
async function validate(backend: MemoryBackend, manifestBytes: Buffer): Promise<string[]> {
  const { reasons } = await checkRun(backend, PARTITION, manifestBytes, 2);
  return reasons.length === 0 ? ['valid'] : [...new Set(reasons.map((r) => `reason:${r.code}`))];
}

/** Reads every record of the run as `quarry read` does; every record it yields must be an object. */
async function read(backend: MemoryBackend, manifest: RunManifest): Promise<string> {
  try {
    for await (const rec of streamRecords(backend, manifest, { eventTypes: ['item', 'log', 'checkpoint', 'artifact', 'enqueue', 'run_complete', 'metrics'] })) {
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new Error(`the reader yielded a non-object record: ${JSON.stringify(rec)}`);
    }
    return 'read:ok';
  } catch (err) {
    if (err instanceof ReaderError) return readerErrorLabel(err);
    throw err;
  }
}

// ---------------------------------------------------------------- manifests

const MANIFEST_FIELDS: ReadonlyArray<readonly [Path, readonly unknown[]]> = [
  [['manifest_version'], [2, 0]], [['contract_version'], ['2.0.0', '1', '1.9.9']], [['run_id'], ['run-other']], [['dataset'], ['other']], [['source'], ['other']],
  [['category'], ['other']], [['day'], ['2026-11-24']], [['attempt'], [2]], [['root_run_id'], ['bad id!']], [['parent_run_id'], ['bad id!', 'run-0']], [['depth'], [-1, 1.5]],
  [['script'], [{}]], [['script', 'path'], [5]], [['started_at'], ['not-a-date']], [['finalized_at'], ['2026-13-45T00:00:00Z']],
  [['outcome'], ['interrupted', 'script_error', 'policy_failure', 'bogus']], [['message'], ['']], [['exit_code'], [1]], [['skipped'], [true]], [['policy'], [{}]],
  [['policy', 'events_persisted'], [8, 10]], [['policy', 'events_dropped'], [1]], [['objects'], [{}]], [['objects', 0], [null, 5]],
  [['objects', 0, 'path'], ['artifacts/none', '../x', '_manifest.json', 'event_type=item/part-000001.jsonl']], [['objects', 0, 'bytes'], [3, 5]], [['objects', 0, 'sha256'], ['c'.repeat(64), 'C'.repeat(64)]],
  [['objects', 1, 'records'], [1, 3]], [['objects', 1, 'first_seq'], [2, 0]], [['objects', 1, 'last_seq'], [9, 1]], [['objects', 1, 'kind'], ['file', 'bogus']],
  [['objects', 1, 'event_type'], ['log']], [['objects', 2, 'path'], ['event_type=item/part-000001.jsonl']],
  [['seq'], [null, {}]], [['seq', 'first'], [2, null]], [['seq', 'last'], [8, 20]], [['event_count'], [-1]], [['artifacts'], [[]]], [['orphaned_artifacts'], [{}]], [['metrics'], [null]],
  [['claim_version'], ['1']], [['script_path'], [1]], [['fanout'], [true, false, 1]], [['settings'], [{}, null, []]],
];
const MANIFEST_VALUES = ['interrupted', 'bogus', '2.0.0', '1.0.0', 'run-other', 'not-a-date', 'x', 'records', 3, 9];

export interface ManifestInput {
  claim: boolean;
  muts: ValueMutation[];
  bytes: ByteMutation[];
}

export const manifestTarget: FuzzTarget<ManifestInput> = {
  name: 'manifest',
  arbitrary: fc.record({
    claim: fc.boolean(),
    // The named fields are where the parser and the validator branch, so most mutations aim there; random
    // paths keep the rest covered, and a few replace the whole document (at 0 is the root).
    muts: fc.array(
      fc.oneof(
        { weight: 2, arbitrary: valueMutation(oddValue(MANIFEST_VALUES)) },
        { weight: 5, arbitrary: setPath(MANIFEST_FIELDS, oddValue(MANIFEST_VALUES)) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.constant(0), value: oddValue(MANIFEST_VALUES) }) },
      ),
      { maxLength: 3 },
    ),
    bytes: fc.oneof({ weight: 3, arbitrary: fc.constant<ByteMutation[]>([]) }, { weight: 1, arbitrary: fc.array(byteMutation(), { minLength: 1, maxLength: 2 }) }),
  }),
  async run(input) {
    const b = await getBase();
    let tree: unknown = structuredClone(input.claim ? b.claim : b.manifest);
    for (const m of input.muts) tree = applyValueMutation(tree, m);
    let bytes: Buffer = Buffer.from(toJsonText(tree));
    for (const m of input.bytes) bytes = applyByteMutation(bytes, m);
    if (input.claim) {
      try {
        parseClaim(bytes, 'runs/run-fuzz-1.json');
        return ['accepted:claim'];
      } catch (err) {
        if (err instanceof ManifestError) return ['ManifestError:claim'];
        throw err;
      }
    }
    let manifest: RunManifest;
    try {
      manifest = parseManifest(bytes);
    } catch (err) {
      if (!(err instanceof ManifestError)) throw err;
      // The validator records the same run as manifest_malformed.
      return [manifestErrorLabel(err), ...(await validate(backendOf(b), bytes))];
    }
    // `quarry list` shows every finalized run, vetted or not, from its claim and manifest.
    summarize(parseClaim(serializeManifest(b.claim as never), 'claim'), manifest);
    return ['accepted:manifest', ...(await validate(backendOf(b), bytes))];
  },
  required: [
    'ManifestError:json', 'ManifestError:not_object', 'ManifestError:field', 'ManifestError:objects', 'ManifestError:outcome', 'ManifestError:claim', 'accepted:claim', 'accepted:manifest', 'valid',
    'reason:manifest_malformed', 'reason:manifest_identity_mismatch', 'reason:manifest_version_unknown', 'reason:contract_version_unknown', 'reason:object_missing',
    'reason:object_size_mismatch', 'reason:object_sha256_mismatch', 'reason:record_count_mismatch', 'reason:seq_inconsistent', 'reason:terminal_event_missing',
    'reason:outcome_not_success', 'reason:skipped',
  ],
};

// ---------------------------------------------------------------- record lines

export type LineMutation =
  | { line: number; kind: 'value'; muts: ValueMutation[] }
  | { line: number; kind: 'bytes'; muts: ByteMutation[] }
  | { line: number; kind: 'delete' | 'duplicate' | 'swap' }
  | { line: number; kind: 'insert'; text: string };

export interface RecordsInput {
  object: number;
  lines: LineMutation[];
  /** Recompute the object's size and SHA-256 in the manifest, so the validator parses the lines. */
  reseal: boolean;
  chunkBytes: number;
}

const RECORD_FIELDS: ReadonlyArray<readonly [Path, readonly unknown[]]> = [
  [['seq'], [0, 1, 2, 5, 9, 10, '1', 1.5]], [['run_id'], ['run-other']], [['event_type'], ['log', 'run_complete']], [['record_kind'], ['metrics']], [['payload'], [null]], [['payload', 'data'], [[]]],
];
const RECORD_VALUES = [0, 1, 2, 5, 9, 10, 'run-other', 'item', 'log', 'run_complete', 'metrics'];

/** The lines of a JSON Lines object, without their `\n` (a trailing `\n` starts no line). */
function splitBytes(data: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let from = 0;
  let nl: number;
  while ((nl = data.indexOf(0x0a, from)) !== -1) {
    lines.push(data.subarray(from, nl));
    from = nl + 1;
  }
  if (from < data.length) lines.push(data.subarray(from));
  return lines;
}

const NEWLINE = Buffer.from('\n');

/** Applies line mutations to the bytes of an object; lines stay bytes (UTF-8 where re-serialized), so multi-byte text survives. */
function mutateLines(data: Buffer, muts: readonly LineMutation[]): Buffer {
  const lines = splitBytes(data);
  for (const m of muts) {
    const i = lines.length === 0 ? 0 : m.line % lines.length;
    switch (m.kind) {
      case 'value': {
        if (lines.length === 0) break;
        let v: unknown;
        try {
          v = JSON.parse(lines[i]!.toString('utf8'));
        } catch {
          break;
        }
        for (const vm of m.muts) v = applyValueMutation(v, vm);
        try {
          lines[i] = Buffer.from(toJsonText(v));
        } catch {
          // A line made deep by an earlier mutation is too deep to re-serialize here: keep it as it is.
        }
        break;
      }
      case 'bytes': {
        let b: Buffer = lines[i] ?? Buffer.alloc(0);
        for (const bm of m.muts) b = applyByteMutation(b, bm);
        if (lines.length === 0) lines.push(b);
        else lines[i] = b;
        break;
      }
      case 'delete':
        lines.splice(i, 1);
        break;
      case 'duplicate':
        if (lines.length > 0) lines.splice(i, 0, lines[i]!);
        break;
      case 'swap':
        if (lines.length > 1) [lines[i], lines[(i + 1) % lines.length]] = [lines[(i + 1) % lines.length]!, lines[i]!];
        break;
      case 'insert':
        lines.splice(i, 0, Buffer.from(m.text));
        break;
    }
  }
  if (lines.length === 0) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for (const l of lines) parts.push(l, NEWLINE);
  return Buffer.concat(parts);
}

const lineMutation: fc.Arbitrary<LineMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ line: fc.nat(), kind: fc.constant('value' as const), muts: fc.array(fc.oneof(valueMutation(oddValue(RECORD_VALUES)), setPath(RECORD_FIELDS, oddValue(RECORD_VALUES))), { minLength: 1, maxLength: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ line: fc.nat(), kind: fc.constant('bytes' as const), muts: fc.array(byteMutation(), { minLength: 1, maxLength: 2 }) }) },
  { weight: 2, arbitrary: fc.record({ line: fc.nat(), kind: fc.constantFrom('delete' as const, 'duplicate' as const, 'swap' as const) }) },
  { weight: 1, arbitrary: fc.record({ line: fc.nat(), kind: fc.constant('insert' as const), text: fc.constantFrom('', 'null', '[]', '5', '"x"', '{', '{}', '{"seq":1}', '{"seq":"1"}', '\r', '\u0000') }) },
);

export const recordsTarget: FuzzTarget<RecordsInput> = {
  name: 'records',
  arbitrary: fc.record({
    object: fc.nat(),
    lines: fc.array(lineMutation, { minLength: 1, maxLength: 3 }),
    reseal: fc.boolean(),
    chunkBytes: fc.oneof({ weight: 4, arbitrary: fc.constant(64 * 1024) }, { weight: 1, arbitrary: fc.integer({ min: 7, max: 200 }) }),
  }),
  async run(input) {
    const b = await getBase();
    const segments = b.manifest.objects.filter((o) => o.kind === 'records' || o.kind === 'metrics');
    const target = segments[input.object % segments.length]!;
    const key = `${manifestKey(PARTITION).slice(0, -'_manifest.json'.length)}${target.path}`;
    const backend = backendOf(b, input.chunkBytes);
    backend.plant(key, mutateLines(b.objects.get(key)!, input.lines));
    let manifest = b.manifest;
    let manifestBytes = b.manifestBytes;
    if (input.reseal) {
      manifest = structuredClone(b.manifest);
      const o = manifest.objects.find((x) => x.path === target.path)!;
      const stored = backend.objects.get(key)!;
      o.bytes = stored.byteLength;
      o.sha256 = createHash('sha256').update(stored).digest('hex');
      manifestBytes = Buffer.from(serializeManifest(manifest));
    }
    return [...(await validate(backend, manifestBytes)), await read(backend, manifest)];
  },
  required: [
    'valid', 'reason:record_malformed', 'reason:seq_inconsistent', 'reason:record_count_mismatch', 'reason:object_sha256_mismatch', 'reason:object_size_mismatch', 'reason:terminal_event_missing',
    'read:ok', 'ReaderError:json', 'ReaderError:not_object', 'ReaderError:seq',
  ],
};
