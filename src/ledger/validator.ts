/**
 * The validator (SPEC §8): the ONLY code that writes the ledger. It checks a
 * finalized run partition ({@link checkRun}), then records the run and applies
 * the promotion rules in one ledger transaction ({@link Ledger.recordRuns}).
 *
 * Invariants: a run without a manifest is not finalized and is never recorded;
 * a run is recorded at most once (history is append-only, keyed by run id);
 * only a valid standalone run can become authoritative, and among those the
 * latest `finalized_at` (then the larger run id) wins whatever the order.
 */
import type { StorageBackend } from '../storage/backend.js';
import { DEFAULT_DATASET, type RunPartition } from '../storage/layout.js';
import type { RunClaim } from '../storage/manifest.js';
import { listRunClaims, readRunClaim } from '../storage/reader.js';
import type { Ledger, RecordedRun } from './ledger.js';
import { runRole, type RunRole } from './promotion.js';
import { CHECK_CONCURRENCY, mapLimit, type Preverified } from './run-checks.js';
import { inspectRun } from './run-record.js';
import { validatePendingTrees, type PendingTrees } from './tree-validator.js';
import {
  checkLogicalPartition,
  LedgerError,
  toRunId,
  type PartitionState,
  type RunHistoryInput,
  type RunId,
  type ValidationReason,
  type ValidationStatus,
} from './types.js';

/** A run to validate: its partition, or its id (looked up through its claim) in a dataset (default `quarry`). */
export type RunRef = RunPartition | { dataset?: string; run_id: string } | string;

/** Options of {@link validateRun} and {@link validatePending}. */
export interface ValidateOptions {
  /** The validator's clock, for `validated_at` and `updated_at`. Default: `new Date()`. */
  now?: () => Date;
  /** Objects of one run checked at once. Default {@link CHECK_CONCURRENCY}. */
  concurrency?: number;
  /**
   * {@link validateRun} only: the run's segments already read back and checked
   * as they were published (`PublishedCheck`, kept by `quarry run`); those the
   * manifest lists exactly as checked are read back and hashed again, their
   * lines not parsed again. Ignored unless it matches the manifest.
   */
  preverified?: Preverified;
}

/** What validating one run did. */
export interface RunValidation {
  run_id: RunId;
  partition: RunPartition;
  status: ValidationStatus;
  /** Why the run is invalid; empty when valid. */
  reasons: ValidationReason[];
  /** False when the run was already in the history: nothing was checked or written this time. */
  recorded: boolean;
  role: RunRole;
  /** The run became the partition's authoritative run now. */
  promoted: boolean;
  /** The partition's row after this validation (undefined: still pending, e.g. a tree member). */
  partition_state: PartitionState | undefined;
  /** The outbox row inserted with this validation (SPEC §11), for `quarry run` to send; null: none. */
  notification_id: string | null;
}

/** A run that cannot be validated because it has no manifest: it is still running, or it died. Nothing was written. */
export class RunNotFinalizedError extends Error {
  override readonly name = 'RunNotFinalizedError';
  constructor(readonly run: RunPartition) {
    super(`run ${run.run_id} (${run.dataset}/${run.source}/${run.category}/${run.day}) has no _manifest.json: it is not finalized, so it is not validated; wait for it to finish, or retry it as a new run`);
  }
}

/** A run id with no claim in the dataset: there is no such run to validate. */
export class RunNotFoundError extends Error {
  override readonly name = 'RunNotFoundError';
  constructor(readonly dataset: string, readonly runId: string) {
    super(`run ${JSON.stringify(runId)} has no claim in dataset ${JSON.stringify(dataset)}: check the run id and --storage-dataset`);
  }
}

/** Result of {@link validatePending}. */
export interface PendingValidation {
  /** Runs validated and recorded now (or found recorded by a concurrent validator meanwhile). */
  validated: RunValidation[];
  /** Claimed runs with no manifest: running, or dead. Ignored; nothing recorded. */
  unfinalized: RunId[];
  /** Runs already in the history before this call. */
  already_recorded: number;
  /** Published trees validated by this call (SPEC §10), after the runs. */
  trees: PendingTrees;
}

/** Runs recorded per ledger transaction by {@link validatePending}. */
export const PENDING_BATCH_SIZE = 50;

/** Runs {@link validatePending} checks at once. */
export const PENDING_RUN_CONCURRENCY = 4;

async function resolveRun(storage: StorageBackend, ref: RunRef): Promise<{ run: RunPartition; claim: RunClaim | undefined }> {
  if (typeof ref !== 'string' && 'source' in ref) {
    checkLogicalPartition(ref);
    toRunId(ref.run_id);
    return { run: ref, claim: undefined };
  }
  const dataset = typeof ref === 'string' ? DEFAULT_DATASET : (ref.dataset ?? DEFAULT_DATASET);
  const runId = toRunId(typeof ref === 'string' ? ref : ref.run_id);
  const claim = await readRunClaim(storage, dataset, runId);
  if (claim === undefined) throw new RunNotFoundError(dataset, runId);
  const run = { dataset: claim.dataset, source: claim.source, category: claim.category, day: claim.day, run_id: claim.run_id };
  return { run, claim };
}

function toValidation(run: RunPartition, r: RecordedRun): RunValidation {
  return {
    run_id: r.run.run_id,
    partition: run,
    status: r.run.validation_status,
    reasons: r.run.validation_reasons,
    recorded: r.recorded,
    role: r.role,
    promoted: r.promoted,
    partition_state: r.partition,
    notification_id: r.notification_id,
  };
}

/**
 * Validates one run and records it in the ledger (SPEC §8): checks the run
 * partition, then in ONE transaction appends its history row and applies the
 * promotion rules. A run already in the history is returned as recorded,
 * without reading storage or writing anything.
 * @throws RunNotFinalizedError when the run has no manifest (nothing is written);
 *   RunNotFoundError when a run id has no claim; LedgerError `run_id_conflict` when the id is
 *   recorded for another partition (run ids are unique across one ledger); StorageError.
 */
export async function validateRun(storage: StorageBackend, ledger: Ledger, ref: RunRef, options: ValidateOptions = {}): Promise<RunValidation> {
  const now = options.now ?? (() => new Date());
  const { run, claim } = await resolveRun(storage, ref);
  const known = await ledger.getRun(run.run_id);
  if (known !== undefined) {
    if (known.dataset !== run.dataset || known.source !== run.source || known.category !== run.category || known.day !== run.day) {
      throw new LedgerError('run_id_conflict', `run ${run.run_id} is already recorded for ${known.dataset}/${known.source}/${known.category}/${known.day}: run ids must be unique across the datasets of one ledger`);
    }
    return toValidation(run, { run: known, recorded: false, role: runRole(known), promoted: false, partition: await ledger.getPartition(run), notification_id: null });
  }
  const row = await inspectRun(storage, run, claim ?? (await readRunClaim(storage, run.dataset, run.run_id).catch(() => undefined)), now(), options.concurrency ?? CHECK_CONCURRENCY, options.preverified);
  if (row === undefined) throw new RunNotFinalizedError(run);
  const [recorded] = await ledger.recordRuns([row], now());
  return toValidation(run, recorded!);
}

/**
 * Validates every finalized run of `dataset` that the ledger has never
 * recorded (e.g. after a crash between finalize and validate), and records
 * them in batches of {@link PENDING_BATCH_SIZE}, one transaction per batch;
 * then every published tree the ledger has not validated
 * ({@link validatePendingTrees}). A fan-out root is recorded, never promoted
 * alone: only its tree can promote it.
 * Runs are found through their claims; a claimed run without a manifest is
 * reported as unfinalized and left alone (it is running, or it died).
 * @throws LedgerError; StorageError; ManifestError for a claim that does not parse.
 */
export async function validatePending(storage: StorageBackend, ledger: Ledger, dataset: string = DEFAULT_DATASET, options: ValidateOptions = {}): Promise<PendingValidation> {
  const now = options.now ?? (() => new Date());
  const claims = await listRunClaims(storage, dataset);
  const recorded = await ledger.recordedRunIds(claims.map((c) => c.run_id));
  const todo = claims.filter((c) => !recorded.has(c.run_id as RunId));
  const result: PendingValidation = { validated: [], unfinalized: [], already_recorded: claims.length - todo.length, trees: { validated: [], errors: [], already_recorded: 0 } };
  for (let i = 0; i < todo.length; i += PENDING_BATCH_SIZE) {
    const batch = todo.slice(i, i + PENDING_BATCH_SIZE);
    const rows: Array<{ run: RunPartition; row: RunHistoryInput }> = [];
    // Runs of a batch are checked a few at a time (each already overlaps its own objects).
    const checked = await mapLimit(batch, PENDING_RUN_CONCURRENCY, async (claim) => {
      const run: RunPartition = { dataset: claim.dataset, source: claim.source, category: claim.category, day: claim.day, run_id: claim.run_id };
      return { claim, run, row: await inspectRun(storage, run, claim, now(), options.concurrency ?? CHECK_CONCURRENCY) };
    });
    for (const { claim, run, row } of checked) {
      if (row === undefined) result.unfinalized.push(toRunId(claim.run_id));
      else rows.push({ run, row });
    }
    if (rows.length === 0) continue;
    const done = await ledger.recordRuns(rows.map((r) => r.row), now());
    done.forEach((d, j) => result.validated.push(toValidation(rows[j]!.run, d)));
  }
  // Trees after runs: their members are recorded by now (as tree members, never promoted alone).
  result.trees = await validatePendingTrees(storage, ledger, dataset, options);
  return result;
}
