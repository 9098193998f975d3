/**
 * Builds finalized (or unfinalized) run partitions through the storage port,
 * as the runtime would leave them (SPEC §7): a run claim, item/log/artifact/
 * terminal record segments in the real record format, artifact bytes, the
 * metrics record, and `_manifest.json` with true sizes and SHA-256 — so the
 * validator's checks run against real objects. Plus the tampering a test
 * needs, done on the filesystem directly (the port forbids it on purpose).
 */
import { createHash } from 'node:crypto';
import { appendFile, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AnyEventEnvelope } from '../../src/protocol/envelope.js';
import { CONTRACT_VERSION } from '../../src/protocol/envelope.js';
import type { StorageBackend } from '../../src/storage/backend.js';
import { artifactName, manifestKey, runClaimKey, runPrefix, segmentName, type RunPartition } from '../../src/storage/layout.js';
import { MANIFEST_VERSION, serializeManifest, type ManifestObject, type RunClaim, type RunManifest, type RunMetrics, type RunOutcome } from '../../src/storage/manifest.js';
import { eventRecordLine, metricsRecordLine } from '../../src/storage/records.js';

/** What run to build. Everything but `run_id` has a default. */
export interface RunFixtureOptions {
  run_id: string;
  dataset?: string;
  source?: string;
  category?: string;
  day?: string;
  outcome?: RunOutcome;
  message?: string;
  skipped?: boolean;
  started_at?: string;
  finalized_at?: string;
  job_id?: string;
  attempt?: number;
  parent_run_id?: string;
  root_run_id?: string;
  depth?: number;
  /** A fan-out root: `fanout: true` in its claim and manifest. */
  fanout?: boolean;
  job?: unknown;
  contract_version?: string;
  /** Item events (default 3), written `itemsPerSegment` (default 2) to a segment. */
  items?: number;
  itemsPerSegment?: number;
  /** Log events persisted (default 1). */
  logs?: number;
  /** Log events the policy dropped: they take a seq, leave a gap and are counted (default 0). */
  droppedLogs?: number;
  /** Artifact bytes to commit (default a small PNG-ish blob); null for none. */
  artifact?: Buffer | null;
  /** The terminal event; default run_complete for success, run_error for script_error, none otherwise. */
  terminal?: 'run_complete' | 'run_error' | 'none';
  /** Write the run claim (default true). */
  claim?: boolean;
  /** Write the manifest (default true); false leaves the run unfinalized, as a run that died. */
  finalize?: boolean;
}

/** A built run. */
export interface RunFixture {
  partition: RunPartition;
  manifest: RunManifest;
  /** Storage key of the run folder (ends in `/`). */
  prefix: string;
  /** The `data` of each item event, in seq order. */
  items: Array<Record<string, unknown>>;
  /** Storage keys of the objects, by path relative to the run folder. */
  keys: Record<string, string>;
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

function metrics(received: number, persisted: number, dropped: number, outcome: RunOutcome): RunMetrics {
  return {
    runs_started_total: 1,
    runs_completed_total: outcome === 'success' ? 1 : 0,
    runs_failed_total: outcome === 'script_error' || outcome === 'policy_failure' ? 1 : 0,
    runs_crashed_total: outcome === 'executor_crash' ? 1 : 0,
    events_received_total: received,
    events_persisted_total: persisted,
    events_dropped_total: dropped,
    events_dropped_by_type: dropped > 0 ? { log: dropped } : {},
    flush_triggers: {},
    executor_launch_success_total: 1,
    executor_launch_failure_total: 0,
    executor_crash_total: 0,
    ipc_decode_errors_total: 0,
    lode_write_success_total: 0,
    lode_write_failure_total: 0,
    lode_write_retry_total: 0,
    dimensions: { policy: 'strict', executor: 'fixture', storage_backend: 'fs' },
  };
}

/** Writes a run partition through `storage` and returns what it wrote. */
export async function writeRunFixture(storage: StorageBackend, o: RunFixtureOptions): Promise<RunFixture> {
  const p: RunPartition = { dataset: o.dataset ?? 'quarry', source: o.source ?? 'shop', category: o.category ?? 'default', day: o.day ?? '2024-06-10', run_id: o.run_id };
  const outcome = o.outcome ?? 'success';
  const started = o.started_at ?? '2024-06-10T00:00:00.000Z';
  const attempt = o.attempt ?? 1;
  const contract = o.contract_version ?? CONTRACT_VERSION;
  const prefix = runPrefix(p);
  const keys: Record<string, string> = {};

  if (o.claim !== false) {
    const claim: RunClaim = {
      claim_version: 1, ...p, started_at: started, attempt, root_run_id: o.root_run_id ?? p.run_id, depth: o.depth ?? 0, script_path: 'scripts/fixture.ts',
      ...(o.fanout === true ? { fanout: true as const } : {}),
      ...(o.job_id === undefined ? {} : { job_id: o.job_id }), ...(o.parent_run_id === undefined ? {} : { parent_run_id: o.parent_run_id }),
    };
    await storage.putNew(runClaimKey(p.dataset, p.run_id), serializeManifest(claim));
  }

  // The event stream, seq 1..n; dropped logs take a seq but are never stored.
  let seq = 0;
  const ts = (n: number): string => new Date(Date.parse(started) + n * 1000).toISOString();
  const env = <T extends AnyEventEnvelope['type']>(type: T, payload: Extract<AnyEventEnvelope, { type: T }>['payload']): AnyEventEnvelope => {
    seq++;
    const e = { contract_version: contract, event_id: `${p.run_id}-e${seq}`, run_id: p.run_id, seq, type, ts: ts(seq), payload, attempt } as AnyEventEnvelope;
    if (o.job_id !== undefined) e.job_id = o.job_id;
    if (o.parent_run_id !== undefined) e.parent_run_id = o.parent_run_id;
    return e;
  };
  const stored: AnyEventEnvelope[] = [];
  const items: Array<Record<string, unknown>> = [];
  let dropped = o.droppedLogs ?? 0;
  const logs = o.logs ?? 1;
  for (let i = 0; i < (o.items ?? 3); i++) {
    const data = { run: p.run_id, n: i, title: `item ${i} of ${p.run_id}` };
    items.push(data);
    stored.push(env('item', { item_type: 'product', data }));
    if (i < logs) stored.push(env('log', { level: 'info', message: `after item ${i}` }));
    if (dropped > 0) {
      dropped--;
      env('log', { level: 'debug', message: 'dropped' });
    }
  }
  for (let i = o.items ?? 3; i < logs; i++) stored.push(env('log', { level: 'info', message: `log ${i}` }));
  while (dropped-- > 0) env('log', { level: 'debug', message: 'dropped' });

  const objects: ManifestObject[] = [];
  const publish = async (path: string, data: Uint8Array | string, extra: Omit<ManifestObject, 'path' | 'bytes' | 'sha256'>): Promise<void> => {
    const key = `${prefix}${path}`;
    const info = await storage.putNew(key, data);
    keys[path] = key;
    objects.push({ path, bytes: info.bytes, sha256: info.sha256, ...extra });
  };

  if (o.artifact !== null) {
    const bytes = o.artifact ?? Buffer.from(`\x89PNG fixture bytes of ${p.run_id}`, 'latin1');
    const id = `shot-${p.run_id}`;
    await publish(artifactName(id), bytes, { kind: 'artifact', artifact_id: id });
    stored.push(env('artifact', { artifact_id: id, name: 'shot.png', content_type: 'image/png', size_bytes: bytes.byteLength }));
  }
  const terminal = o.terminal ?? (outcome === 'success' ? 'run_complete' : outcome === 'script_error' ? 'run_error' : 'none');
  if (terminal === 'run_complete') stored.push(env('run_complete', o.skipped === true ? { summary: { skipped: true, reason: 'fixture' } } : { summary: { items: items.length } }));
  if (terminal === 'run_error') stored.push(env('run_error', { error_type: 'script_error', message: 'boom' }));

  const byType = new Map<string, AnyEventEnvelope[]>();
  for (const e of stored) {
    const list = byType.get(e.type);
    if (list) list.push(e);
    else byType.set(e.type, [e]);
  }
  for (const [type, events] of byType) {
    const per = type === 'item' ? Math.max(1, o.itemsPerSegment ?? 2) : events.length;
    for (let i = 0, n = 1; i < events.length; i += per, n++) {
      const seg = events.slice(i, i + per);
      const text = seg.map((e) => eventRecordLine(p, e, e.type === 'artifact' ? artifactName(e.payload.artifact_id) : undefined)).join('');
      await publish(segmentName(type, n), text, { kind: 'records', event_type: type, records: seg.length, first_seq: seg[0]!.seq, last_seq: seg[seg.length - 1]!.seq });
    }
  }
  const droppedCount = o.droppedLogs ?? 0;
  const m = metrics(seq, stored.length, droppedCount, outcome);
  await publish('event_type=metrics/metrics.jsonl', metricsRecordLine(p, m), { kind: 'metrics', event_type: 'metrics', records: 1 });

  const manifest: RunManifest = {
    manifest_version: MANIFEST_VERSION,
    contract_version: contract,
    ...p,
    attempt,
    root_run_id: o.root_run_id ?? p.run_id,
    depth: o.depth ?? 0,
    ...(o.fanout === true ? { fanout: true as const } : {}),
    script: { path: 'scripts/fixture.ts', sha256: sha256('export default async () => {}') },
    job: o.job ?? { url: `https://example.test/${p.run_id}` },
    started_at: started,
    finalized_at: o.finalized_at ?? '2024-06-10T01:00:00.000Z',
    outcome,
    message: o.message ?? (outcome === 'success' ? '' : `run ended: ${outcome}`),
    exit_code: outcome === 'success' ? 0 : outcome === 'script_error' ? 1 : outcome === 'interrupted' ? 130 : outcome === 'executor_crash' ? 2 : 3,
    skipped: o.skipped ?? false,
    policy: { name: 'strict', events_received: seq, events_persisted: stored.length, events_dropped: droppedCount, dropped_by_type: droppedCount > 0 ? { log: droppedCount } : {} },
    objects,
    seq: { first: seq > 0 ? 1 : null, last: seq > 0 ? seq : null },
    event_count: seq,
    artifacts: { total: o.artifact === null ? 0 : 1, committed: o.artifact === null ? 0 : 1, orphaned: 0, chunks: o.artifact === null ? 0 : 1, bytes: objects.find((x) => x.kind === 'artifact')?.bytes ?? 0 },
    orphaned_artifacts: [],
    metrics: m,
    storage_backend: storage.kind,
  };
  if (o.job_id !== undefined) manifest.job_id = o.job_id;
  if (o.parent_run_id !== undefined) manifest.parent_run_id = o.parent_run_id;
  if (o.finalize !== false) await storage.putNew(manifestKey(p), serializeManifest(manifest));
  return { partition: p, manifest, prefix, items, keys };
}

/** Absolute path of a key under an fs storage root. */
export function fsPath(root: string, key: string): string {
  return join(root, ...key.split('/'));
}

/** Flips one byte of a stored object in place (same size, different hash). */
export async function flipByte(root: string, key: string, at = 0): Promise<void> {
  const path = fsPath(root, key);
  const bytes = await readFile(path);
  bytes[at] = bytes[at]! ^ 0x01;
  await writeFile(path, bytes);
}

/** Deletes a stored object. */
export async function deleteObject(root: string, key: string): Promise<void> {
  await rm(fsPath(root, key));
}

/** Cuts a run's manifest to `keep` bytes (default half): it no longer parses. */
export async function truncateManifest(root: string, p: RunPartition, keep?: number): Promise<void> {
  const path = fsPath(root, manifestKey(p));
  const size = (await readFile(path)).byteLength;
  await truncate(path, keep ?? Math.floor(size / 2));
}

/** Appends bytes to a stored object (size changes). */
export async function appendBytes(root: string, key: string, text: string): Promise<void> {
  await appendFile(fsPath(root, key), text);
}

/** Replaces a run's manifest with `m` re-serialized (as an attacker or a bad tool would). */
export async function rewriteManifest(root: string, p: RunPartition, m: RunManifest): Promise<void> {
  await writeFile(fsPath(root, manifestKey(p)), serializeManifest(m));
}
