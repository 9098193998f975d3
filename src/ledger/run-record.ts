/**
 * A finalized run, checked and turned into its run history row (SPEC §8):
 * shared by the validator of single runs and the tree validator. Read-only:
 * nothing here writes the ledger.
 */
import { createHash } from 'node:crypto';
import { StorageError, type StorageBackend } from '../storage/backend.js';
import { manifestKey, RUN_ID_RE, type RunPartition } from '../storage/layout.js';
import type { RunClaim, RunManifest } from '../storage/manifest.js';
import { runNotificationDraft } from './outbox.js';
import { checkRun, type Preverified } from './run-checks.js';
import { toRunId, type RunHistoryInput, type RunId, type ValidationReason } from './types.js';

const normalizeInstant = (v: unknown): string | null => (typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v).toISOString() : null);
const runIdOrNull = (v: unknown): RunId | null => (typeof v === 'string' && RUN_ID_RE.test(v) ? (v as RunId) : null);

/** The manifest's bytes, or undefined when the run is not finalized. */
async function manifestBytes(storage: StorageBackend, run: RunPartition): Promise<Buffer | undefined> {
  try {
    return await storage.get(manifestKey(run));
  } catch (err) {
    if (err instanceof StorageError && err.code === 'not_found') return undefined;
    throw err;
  }
}

/**
 * The history row for a checked run. Lineage comes from the manifest, or from
 * the claim when the manifest is unreadable, or else the run is its own root.
 */
export function historyRow(run: RunPartition, m: RunManifest | undefined, claim: RunClaim | undefined, bytes: Uint8Array, reasons: ValidationReason[], now: Date): RunHistoryInput {
  const runId = toRunId(run.run_id);
  const root = runIdOrNull(m?.root_run_id) ?? runIdOrNull(claim?.root_run_id) ?? runId;
  const depth = [m?.depth, claim?.depth].find((d): d is number => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0) ?? 0;
  return {
    run_id: runId,
    dataset: run.dataset, source: run.source, category: run.category, day: run.day,
    job_id: typeof m?.job_id === 'string' ? m.job_id : (claim?.job_id ?? null),
    attempt: typeof m?.attempt === 'number' ? m.attempt : (claim?.attempt ?? null),
    parent_run_id: runIdOrNull(m?.parent_run_id) ?? runIdOrNull(claim?.parent_run_id),
    root_run_id: root,
    depth,
    fanout: m?.fanout === true || claim?.fanout === true,
    job: m?.job ?? null,
    script_path: typeof m?.script?.path === 'string' ? m.script.path : (claim?.script_path ?? null),
    script_sha256: typeof m?.script?.sha256 === 'string' ? m.script.sha256 : null,
    manifest_sha256: createHash('sha256').update(bytes).digest('hex'),
    outcome: m?.outcome ?? null,
    message: m?.message ?? null,
    skipped: m?.skipped ?? null,
    started_at: normalizeInstant(m?.started_at ?? claim?.started_at),
    finalized_at: normalizeInstant(m?.finalized_at),
    validation_status: reasons.length === 0 ? 'valid' : 'invalid',
    validation_reasons: reasons,
    validated_at: now.toISOString(),
  };
}

/**
 * Checks one finalized run and builds its history row; undefined when it has no manifest.
 * `preverified`: its segments checked as they were published (see {@link checkRun}).
 */
export async function inspectRun(storage: StorageBackend, run: RunPartition, claim: RunClaim | undefined, now: Date, concurrency: number, preverified?: Preverified): Promise<RunHistoryInput | undefined> {
  const bytes = await manifestBytes(storage, run);
  if (bytes === undefined) return undefined;
  const { manifest, reasons } = await checkRun(storage, run, bytes, concurrency, preverified);
  const row = historyRow(run, manifest, claim, bytes, reasons, now);
  // The notification travels with the row; the ledger inserts it only for a standalone run (SPEC §11).
  const notify = runNotificationDraft(run, manifest, storage.location);
  return notify === undefined ? row : { ...row, notify };
}

