/**
 * Hand-built run partitions for reader tests, written through a StorageBackend
 * with the real record-line and manifest serializers (records.ts, manifest.ts),
 * laid out by layout.ts: the same bytes a run writer produces.
 */
import { createHash } from 'node:crypto';
import type { AnyEventEnvelope, EventType } from '../../src/protocol/envelope.js';
import type { StorageBackend } from '../../src/storage/backend.js';
import { artifactName, manifestKey, METRICS_EVENT_TYPE, runClaimKey, runPrefix, segmentName, type RunPartition } from '../../src/storage/layout.js';
import { serializeManifest, type ManifestObject, type RunClaim, type RunManifest, type RunMetrics, type RunOutcome } from '../../src/storage/manifest.js';
import { eventRecordLine, metricsRecordLine } from '../../src/storage/records.js';

export interface RunSpec {
  partition: RunPartition;
  started_at?: string;
  /** Absent: the run is not finalized (no manifest). */
  outcome?: RunOutcome;
  events?: AnyEventEnvelope[];
  /** Records per segment object (default 3), so types span several segments. */
  segmentSize?: number;
  /** Artifact bytes by artifact id (an `artifact` event should commit each). */
  artifacts?: Record<string, Buffer>;
  job_id?: string;
}

export function metricsFixture(): RunMetrics {
  return {
    runs_started_total: 1, runs_completed_total: 1, runs_failed_total: 0, runs_crashed_total: 0,
    events_received_total: 0, events_persisted_total: 0, events_dropped_total: 0, events_dropped_by_type: {},
    flush_triggers: {}, executor_launch_success_total: 1, executor_launch_failure_total: 0, executor_crash_total: 0,
    ipc_decode_errors_total: 0, lode_write_success_total: 0, lode_write_failure_total: 0, lode_write_retry_total: 0,
    dimensions: { policy: 'strict', executor: 'node', storage_backend: 'fs' },
  };
}

/** Envelopes with seq 1..n of the given types, for one run. */
export function eventsOf(runId: string, types: readonly EventType[]): AnyEventEnvelope[] {
  return types.map((type, i): AnyEventEnvelope => {
    const seq = i + 1;
    const base = { contract_version: '1.0.0', event_id: `e${seq}`, run_id: runId, seq, ts: new Date(Date.UTC(2024, 0, 1, 0, 0, seq)).toISOString(), attempt: 1 };
    switch (type) {
      case 'item':
        return { ...base, type, payload: { item_type: 'product', data: { n: seq } } };
      case 'log':
        return { ...base, type, payload: { level: 'info', message: `log ${seq}` } };
      case 'artifact':
        return { ...base, type, payload: { artifact_id: `a${seq}`, name: `shot-${seq}.png`, content_type: 'image/png', size_bytes: 4 } };
      case 'checkpoint':
        return { ...base, type, payload: { checkpoint_id: `c${seq}` } };
      case 'enqueue':
        return { ...base, type, payload: { target: 'next.ts', params: { seq } } };
      case 'rotate_proxy':
        return { ...base, type, payload: {} };
      case 'run_error':
        return { ...base, type, payload: { error_type: 'script_error', message: 'boom' } };
      case 'run_complete':
        return { ...base, type, payload: {} };
    }
  });
}

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** Writes claim, segments, artifacts, metrics and (when finalized) the manifest. Returns the manifest or undefined. */
export async function writeRun(backend: StorageBackend, spec: RunSpec): Promise<RunManifest | undefined> {
  const p = spec.partition;
  const started = spec.started_at ?? '2024-01-01T00:00:00.000Z';
  const events = spec.events ?? [];
  const claim: RunClaim = {
    claim_version: 1, dataset: p.dataset, source: p.source, category: p.category, day: p.day, run_id: p.run_id,
    started_at: started, attempt: 1, root_run_id: p.run_id, depth: 0, script_path: 'script.ts',
    ...(spec.job_id !== undefined ? { job_id: spec.job_id } : {}),
  };
  await backend.putNew(runClaimKey(p.dataset, p.run_id), serializeManifest(claim));

  const base = runPrefix(p);
  const objects: ManifestObject[] = [];
  for (const [id, bytes] of Object.entries(spec.artifacts ?? {})) {
    const path = artifactName(id);
    await backend.putNew(`${base}${path}`, bytes);
    objects.push({ path, kind: 'artifact', bytes: bytes.byteLength, sha256: sha(bytes), artifact_id: id });
  }
  const byType = new Map<string, AnyEventEnvelope[]>();
  for (const e of events) {
    const list = byType.get(e.type) ?? [];
    list.push(e);
    byType.set(e.type, list);
  }
  const size = spec.segmentSize ?? 3;
  for (const [type, list] of byType) {
    for (let i = 0, n = 1; i < list.length; i += size, n++) {
      const chunk = list.slice(i, i + size);
      const body = chunk.map((e) => eventRecordLine(p, e, e.type === 'artifact' ? artifactName(e.payload.artifact_id) : undefined)).join('');
      const path = segmentName(type, n);
      await backend.putNew(`${base}${path}`, body);
      objects.push({ path, kind: 'records', event_type: type, bytes: Buffer.byteLength(body), records: chunk.length, sha256: sha(body), first_seq: chunk[0]!.seq, last_seq: chunk[chunk.length - 1]!.seq });
    }
  }
  const metrics = metricsFixture();
  const mline = metricsRecordLine(p, metrics);
  // The path run-writer.ts uses; readers find it through the manifest, never by name.
  const mpath = `event_type=${METRICS_EVENT_TYPE}/metrics.jsonl`;
  await backend.putNew(`${base}${mpath}`, mline);
  objects.push({ path: mpath, kind: 'metrics', event_type: METRICS_EVENT_TYPE, bytes: Buffer.byteLength(mline), records: 1, sha256: sha(mline) });

  if (spec.outcome === undefined) return undefined;
  const manifest: RunManifest = {
    ...p,
    manifest_version: 1,
    contract_version: '1.0.0',
    ...(spec.job_id !== undefined ? { job_id: spec.job_id } : {}),
    attempt: 1,
    root_run_id: p.run_id,
    depth: 0,
    script: { path: 'script.ts', sha256: sha('script') },
    job: {},
    started_at: started,
    finalized_at: started.replace('00.000Z', '30.000Z'),
    outcome: spec.outcome,
    message: spec.outcome === 'success' ? 'run completed' : 'run failed',
    exit_code: spec.outcome === 'success' ? 0 : 1,
    skipped: false,
    policy: { name: 'strict', events_received: events.length, events_persisted: events.length, events_dropped: 0, dropped_by_type: {} },
    objects,
    seq: { first: events[0]?.seq ?? null, last: events[events.length - 1]?.seq ?? null },
    event_count: events.length,
    artifacts: { total: 0, committed: 0, orphaned: 0, chunks: 0, bytes: 0 },
    orphaned_artifacts: [],
    metrics,
    storage_backend: backend.kind,
  };
  await backend.putNew(manifestKey(p), serializeManifest(manifest));
  return manifest;
}
