/**
 * One run as `quarry run` makes it, for a program (SPEC §8, §12: an
 * orchestrator task or a Temporal activity embeds a run): bind the dataset to
 * its storage and reserve the run id in the ledger, run, validate the
 * finalized run into the ledger, and decide its authority and exit code.
 * {@link runOnce} alone only writes the run partition: nothing becomes
 * authoritative until the validator records it, which this does.
 */
import { ulid } from 'ulid';
import { storageIdentity } from '../ledger/binding.js';
import type { Ledger } from '../ledger/ledger.js';
import { segmentCheckFor } from '../ledger/published-check.js';
import { validateRun } from '../ledger/validator.js';
import { parseRunPrefix, type RunPartition } from '../storage/layout.js';
import type { ManifestObject } from '../storage/manifest.js';
import { decideAuthority, type ValidationResult } from './authority.js';
import type { RunReport } from './report.js';
import { runOnce, type RunConfig } from './run.js';

/** {@link RunConfig} with the ledger to record into; the run id is generated (a ULID) when absent. */
export interface ValidatedRunConfig extends Omit<RunConfig, 'runId'> {
  runId?: string;
  /** The ledger, opened as a writer (`openLedger`). */
  ledger: Ledger;
  /** S3 only: the endpoint the backend was opened with, part of the dataset's binding (SPEC §8). */
  storageEndpoint?: string;
}

/**
 * Runs `cfg` once and records it: the returned report carries `ledger`,
 * `authority` and the `exit_code` `quarry run` would exit with (0 only when
 * the run's data became authoritative, was superseded by a later valid run,
 * or was a `prepare` skip; 3 for a success the validator rejected or could
 * not record; the outcome's own code otherwise).
 * @throws LedgerError `binding_conflict` or `run_id_conflict` before anything runs (the dataset is
 *   bound to other storage, or the id is taken); what {@link runOnce} throws.
 */
export async function runValidated(cfg: ValidatedRunConfig): Promise<RunReport> {
  const { ledger, storageEndpoint, runId: given, ...run } = cfg;
  const runId = given ?? ulid();
  const storage = cfg.backend.kind === 's3'
    ? storageIdentity({ backend: 's3', path: cfg.backend.location.replace(/^s3:\/\//, ''), ...(storageEndpoint !== undefined ? { endpoint: storageEndpoint } : {}) })
    : storageIdentity({ backend: 'fs', path: cfg.backend.location });
  await ledger.bindRun({ dataset: cfg.partition.dataset, storage, run_id: runId }, (cfg.now ?? (() => new Date()))());
  // Each segment a flush publishes is read back and checked while the run goes on; the validation reads the rest.
  const published = segmentCheckFor(cfg.backend);
  const listed = run.onSegmentsListed;
  const report = await runOnce({
    ...run,
    runId,
    ...(published ? { onSegmentsListed: (r: RunPartition, objects: readonly ManifestObject[]) => { listed?.(r, objects); published.add(r, objects); } } : {}),
  });

  let result: ValidationResult = { kind: 'not_finalized' };
  report.ledger = { location: ledger.location, validation: 'not_run', reasons: ['the run has no manifest, so it was not validated'], partition_status: 'unchanged', authoritative: false };
  const partition = report.storage.finalized ? parseRunPrefix(report.storage.partition) : undefined;
  if (partition) {
    try {
      const v = await validateRun(cfg.backend, ledger, partition, published ? { preverified: await published.result() } : {});
      const state = v.partition_state;
      report.ledger = {
        location: ledger.location,
        validation: v.status,
        reasons: v.reasons.map((r) => `${r.code}: ${r.message}`),
        partition_status: state?.status ?? 'pending',
        ...(state?.current_run_id ? { authoritative_run_id: state.current_run_id } : {}),
        authoritative: state?.current_run_id === runId,
      };
      result = { kind: 'recorded', valid: v.status === 'valid', skipped: v.reasons.some((r) => r.code === 'skipped'), current_run_id: state?.current_run_id ?? null };
    } catch (err) {
      // The run stays finalized; validateRun (or `quarry validate --pending`) can record it later.
      report.ledger = { ...report.ledger, reasons: [`validation failed to run: ${(err as Error).message.split('\n')[0]}`] };
      result = { kind: 'unreachable' };
    }
  }
  const decided = decideAuthority(report, result, { validate: `validateRun(storage, ledger, <run ${runId}>)`, inspect: `quarry inspect run ${runId}` });
  report.authority = decided.authority;
  report.exit_code = decided.exit_code;
  return report;
}
