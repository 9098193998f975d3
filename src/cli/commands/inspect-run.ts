/**
 * The `inspect run <run-id>` view (SPEC §7, §9): everything the claim and the
 * manifest say about one run, laid out for people and scripts alike. A run
 * without a manifest is shown from its claim and says plainly that it is not
 * finalized.
 */
import type { StorageBackend } from '../../storage/backend.js';
import { runPrefix } from '../../storage/layout.js';
import type { ManifestObject, OrphanedArtifact, PolicyCounters, RunManifest, RunOutcome } from '../../storage/manifest.js';
import { readManifest, readRunClaim } from '../../storage/reader.js';
import { ReadCommandError, runState, type RunState } from './read-common.js';

/** A sidecar file written with `storage.put` (SPEC §2), from its manifest objects. */
export interface SidecarFileView {
  filename: string;
  path: string;
  bytes: number;
  sha256: string;
  /** Its `.meta.json` (content type, size, hash), when published. */
  meta_path: string | null;
}

/** JSON shape of `quarry inspect run`. Fields a manifest would give are null for an unfinalized run. */
export interface RunView {
  run_id: string;
  state: RunState;
  finalized: boolean;
  /** Only for an unfinalized run: what that means. */
  note?: string;
  partition: { dataset: string; source: string; category: string; day: string; key: string };
  location: string;
  lineage: { job_id: string | null; attempt: number; parent_run_id: string | null; root_run_id: string; depth: number; fanout: boolean };
  outcome: RunOutcome | null;
  message: string | null;
  exit_code: number | null;
  skipped: boolean | null;
  timestamps: { started_at: string; finalized_at: string | null; duration_ms: number | null };
  script: { path: string; sha256: string | null };
  contract_version: string | null;
  job: unknown;
  policy: PolicyCounters | null;
  events: { count: number; first_seq: number | null; last_seq: number | null; records_by_type: Record<string, number> } | null;
  artifacts: RunManifest['artifacts'] | null;
  terminal_summary?: Record<string, unknown>;
  /** Every object the manifest lists as published, in publication order. */
  objects: ManifestObject[];
  sidecar_files: SidecarFileView[];
  orphaned_artifacts: OrphanedArtifact[];
  /** Objects a failed flush published before its retry rewrote them: not the run's data, kept for audit. */
  superseded_objects: ManifestObject[];
  /** Only for an unfinalized run: objects already in its partition folder, none of them committed. */
  published_so_far?: { objects: number; bytes: number };
}

/** What `inspect run` says of a run without a manifest (in the data and on stderr). */
export const UNFINALIZED_NOTE =
  'not finalized: the run has no _manifest.json. It is still running or stopped before finalizing; no consumer reads it and it is never promoted.';

/**
 * Reads one run's claim and manifest and builds its view.
 * @throws ReadCommandError when no run with that id was ever claimed in the dataset.
 */
export async function inspectRunView(backend: StorageBackend, dataset: string, runId: string): Promise<RunView> {
  const claim = await readRunClaim(backend, dataset, runId);
  if (claim === undefined) throw new ReadCommandError(`run ${JSON.stringify(runId)} not found in dataset ${JSON.stringify(dataset)} at ${backend.location}; see quarry list runs`);
  const manifest = await readManifest(backend, claim);
  const key = runPrefix(claim);
  const view: RunView = {
    run_id: claim.run_id,
    state: runState(manifest?.outcome, manifest !== undefined),
    finalized: manifest !== undefined,
    // Present (undefined, never printed) so an unfinalized run's note comes right after `finalized`.
    note: undefined,
    partition: { dataset: claim.dataset, source: claim.source, category: claim.category, day: claim.day, key },
    location: backend.location,
    lineage: {
      job_id: claim.job_id ?? null,
      attempt: claim.attempt,
      parent_run_id: claim.parent_run_id ?? null,
      root_run_id: claim.root_run_id,
      depth: claim.depth,
      fanout: claim.fanout === true,
    },
    outcome: null,
    message: null,
    exit_code: null,
    skipped: null,
    timestamps: { started_at: claim.started_at, finalized_at: null, duration_ms: null },
    script: { path: claim.script_path, sha256: null },
    contract_version: null,
    job: null,
    policy: null,
    events: null,
    artifacts: null,
    terminal_summary: undefined, // as `note`: keeps its place in the key order
    objects: [],
    sidecar_files: [],
    orphaned_artifacts: [],
    superseded_objects: [],
  };
  if (manifest === undefined) {
    view.note = UNFINALIZED_NOTE;
    let objects = 0;
    let bytes = 0;
    for await (const o of backend.list(key)) {
      objects++;
      bytes += o.bytes;
    }
    view.published_so_far = { objects, bytes };
    return view;
  }
  return {
    ...view,
    outcome: manifest.outcome,
    message: manifest.message,
    exit_code: manifest.exit_code,
    skipped: manifest.skipped,
    timestamps: {
      started_at: manifest.started_at,
      finalized_at: manifest.finalized_at,
      duration_ms: Date.parse(manifest.finalized_at) - Date.parse(manifest.started_at),
    },
    script: { path: manifest.script.path, sha256: manifest.script.sha256 },
    contract_version: manifest.contract_version,
    job: manifest.job,
    policy: manifest.policy,
    events: { count: manifest.event_count, first_seq: manifest.seq.first, last_seq: manifest.seq.last, records_by_type: recordsByType(manifest.objects) },
    artifacts: manifest.artifacts,
    terminal_summary: manifest.terminal_summary,
    objects: manifest.objects,
    sidecar_files: sidecarFiles(manifest.objects),
    orphaned_artifacts: manifest.orphaned_artifacts,
    superseded_objects: manifest.superseded_objects ?? [],
  };
}

/** Records per event type, summed over the record objects the manifest lists. */
export function recordsByType(objects: readonly ManifestObject[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of objects) {
    if (o.kind !== 'records' || o.event_type === undefined) continue;
    out[o.event_type] = (out[o.event_type] ?? 0) + (o.records ?? 0);
  }
  return out;
}

function sidecarFiles(objects: readonly ManifestObject[]): SidecarFileView[] {
  const metas = new Set(objects.filter((o) => o.kind === 'file_meta').map((o) => o.path));
  return objects
    .filter((o) => o.kind === 'file')
    .map((o) => ({
      filename: o.path.startsWith('files/') ? o.path.slice('files/'.length) : o.path,
      path: o.path,
      bytes: o.bytes,
      sha256: o.sha256,
      meta_path: metas.has(`${o.path}.meta.json`) ? `${o.path}.meta.json` : null,
    }));
}
