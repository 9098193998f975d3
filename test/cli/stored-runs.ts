/**
 * Writes runs for the read-command tests DIRECTLY through the storage API
 * (RunWriter: claim, segments, sidecar files, artifacts, metrics record,
 * manifest), building the manifest and metrics the way the runtime does, so
 * the CLI reads exactly what a real run leaves behind. No browser, no executor.
 */
import { createHash } from 'node:crypto';
import type { AnyEventEnvelope, EventType } from '../../src/protocol/envelope.js';
import { buildMetrics } from '../../src/runtime/metrics.js';
import { OUTCOME_EXIT_CODES } from '../../src/runtime/outcome.js';
import type { StorageBackend } from '../../src/storage/backend.js';
import { MANIFEST_VERSION, type ManifestProxy, type OrphanedArtifact, type PolicyCounters, type PolicyName, type RunManifest, type RunOutcome } from '../../src/storage/manifest.js';
import { metricsRecordLine } from '../../src/storage/records.js';
import { RunWriter } from '../../src/storage/run-writer.js';

export interface StoredRunSpec {
  run_id: string;
  dataset?: string;
  source?: string;
  category?: string;
  day?: string;
  started_at: string;
  /** Absent: the run stops before finalizing (claim and segments, no manifest). */
  outcome?: RunOutcome;
  message?: string;
  job_id?: string;
  attempt?: number;
  parent_run_id?: string;
  /** Event types, seq 1..n. */
  events?: readonly EventType[];
  policy?: PolicyName;
  /** Dropped events by type (counted, never stored). */
  dropped?: Record<string, number>;
  files?: Record<string, string>;
  /** Committed artifacts (bytes), each with an `artifact` event appended after the other events. */
  artifacts?: Record<string, string>;
  /** Artifact bytes that arrive but are never committed. */
  orphans?: Record<string, string>;
  job?: unknown;
  /** The proxy the run went through, as the manifest records it. */
  proxy?: ManifestProxy;
}

/** Envelopes with seq 1..n of the given types. */
export function envelopes(runId: string, types: readonly EventType[], attempt = 1): AnyEventEnvelope[] {
  return types.map((type, i): AnyEventEnvelope => {
    const seq = i + 1;
    const base = { contract_version: '1.0.0', event_id: `e${seq}`, run_id: runId, seq, ts: new Date(Date.UTC(2024, 0, 1, 0, 0, seq)).toISOString(), attempt };
    switch (type) {
      case 'item':
        return { ...base, type, payload: { item_type: 'book', data: { n: seq } } };
      case 'log':
        return { ...base, type, payload: { level: 'info', message: `log ${seq}` } };
      case 'artifact':
        return { ...base, type, payload: { artifact_id: `a${seq}`, name: `a${seq}.bin`, content_type: 'application/octet-stream', size_bytes: 0 } };
      case 'checkpoint':
        return { ...base, type, payload: { checkpoint_id: `c${seq}` } };
      case 'enqueue':
        return { ...base, type, payload: { target: 'next.ts', params: { seq } } };
      case 'rotate_proxy':
        return { ...base, type, payload: {} };
      case 'run_error':
        return { ...base, type, payload: { error_type: 'script_error', message: 'boom' } };
      case 'run_complete':
        return { ...base, type, payload: { summary: { pages: 2 } } };
    }
  });
}

/** Writes one run through a RunWriter; returns its manifest (undefined when left unfinalized). */
export async function writeStoredRun(backend: StorageBackend, spec: StoredRunSpec): Promise<RunManifest | undefined> {
  const partition = { dataset: spec.dataset ?? 'quarry', source: spec.source ?? 'books', category: spec.category ?? 'default', day: spec.day ?? spec.started_at.slice(0, 10), run_id: spec.run_id };
  const attempt = spec.attempt ?? 1;
  const writer = await RunWriter.claim(backend, {
    ...partition,
    claim_version: 1,
    started_at: spec.started_at,
    ...(spec.job_id !== undefined ? { job_id: spec.job_id } : {}),
    attempt,
    ...(spec.parent_run_id !== undefined ? { parent_run_id: spec.parent_run_id } : {}),
    root_run_id: spec.run_id,
    depth: 0,
    script_path: '/scripts/books.ts',
  });
  const events = envelopes(spec.run_id, spec.events ?? [], attempt);
  for (const e of events) await writer.append(e.type, writer.recordLine(e), 1, e.seq, e.seq);
  await writer.sealSegments();
  for (const [name, body] of Object.entries(spec.files ?? {})) await writer.putFile(name, 'text/plain', Buffer.from(body));
  for (const [id, body] of Object.entries({ ...spec.artifacts, ...spec.orphans })) await writer.artifactChunk(id, 1, true, Buffer.from(body));
  for (const id of Object.keys(spec.artifacts ?? {})) writer.listArtifact(id);
  if (spec.outcome === undefined) return undefined;

  const dropped = spec.dropped ?? {};
  const droppedTotal = Object.values(dropped).reduce((n, x) => n + x, 0);
  const counters: PolicyCounters = {
    name: spec.policy ?? 'strict',
    events_received: events.length + droppedTotal,
    events_persisted: events.length,
    events_dropped: droppedTotal,
    dropped_by_type: dropped,
    ...(spec.policy === 'streaming' ? { flush_triggers: { count: 2, termination: 1 } } : {}),
  };
  const metrics = () =>
    buildMetrics({ outcome: spec.outcome!, counters, launched: true, ipcDecodeErrors: 0, writes: writer.writes, executor: 'node', storageBackend: backend.kind });
  await writer.putMetrics(metricsRecordLine(partition, metrics()));
  const orphans: OrphanedArtifact[] = Object.entries(spec.orphans ?? {}).map(([id, body]) => ({
    artifact_id: id,
    path: `artifacts/${id}`,
    bytes: Buffer.byteLength(body),
    chunks: 1,
    reason: 'bytes arrived but no artifact event committed them',
  }));
  const artifactBytes = Object.values({ ...spec.artifacts, ...spec.orphans }).reduce((n, b) => n + Buffer.byteLength(b), 0);
  const manifest: RunManifest = {
    manifest_version: MANIFEST_VERSION,
    contract_version: '1.0.0',
    ...partition,
    ...(spec.job_id !== undefined ? { job_id: spec.job_id } : {}),
    attempt,
    ...(spec.parent_run_id !== undefined ? { parent_run_id: spec.parent_run_id } : {}),
    root_run_id: spec.run_id,
    depth: 0,
    script: { path: '/scripts/books.ts', sha256: createHash('sha256').update('script').digest('hex') },
    job: spec.job ?? { url: 'http://example.test/' },
    started_at: spec.started_at,
    finalized_at: new Date(Date.parse(spec.started_at) + 1500).toISOString(),
    outcome: spec.outcome,
    message: spec.message ?? (spec.outcome === 'success' ? 'run completed' : `run ended: ${spec.outcome}`),
    exit_code: spec.outcome === 'interrupted' ? 130 : OUTCOME_EXIT_CODES[spec.outcome],
    skipped: false,
    policy: counters,
    objects: [...writer.objects],
    seq: { first: events[0]?.seq ?? null, last: events[events.length - 1]?.seq ?? null },
    event_count: events.length,
    artifacts: {
      total: Object.keys({ ...spec.artifacts, ...spec.orphans }).length,
      committed: Object.keys(spec.artifacts ?? {}).length,
      orphaned: orphans.length,
      chunks: Object.keys({ ...spec.artifacts, ...spec.orphans }).length,
      bytes: artifactBytes,
    },
    orphaned_artifacts: orphans,
    ...(events.at(-1)?.type === 'run_complete' ? { terminal_summary: { pages: 2 } } : {}),
    metrics: metrics(),
    storage_backend: backend.kind,
    ...(spec.proxy ? { proxy: spec.proxy } : {}),
  };
  await writer.finalize(manifest);
  return manifest;
}
