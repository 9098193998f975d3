/**
 * Ledger vocabulary (SPEC §8): branded ids, status unions, the two row shapes
 * (partition state and run history) and the read filters. Pure types and
 * checks, shared by both ledger backends, the validator and the consumer.
 */
import { checkDay, checkKeyValue, RUN_ID_RE, type LogicalPartition } from '../storage/layout.js';
import { RUN_OUTCOMES, type RunOutcome } from '../storage/manifest.js';
import type { NotificationDraft } from './outbox.js';

declare const runIdBrand: unique symbol;

/** A run id checked against SPEC §5's syntax (`[A-Za-z0-9._-]{1,128}`). */
export type RunId = string & { readonly [runIdBrand]: 'RunId' };

/** A stored partition's status. No row means `pending` (SPEC §8). */
export type PartitionStatus = 'success' | 'failed';

/** What a consumer or `state inspect` may see for a logical partition, `pending` included. */
export type PartitionStatusOrPending = PartitionStatus | 'pending';

/** Result of the validator's checks on one run. */
export type ValidationStatus = 'valid' | 'invalid';

/** Every partition status a row may hold. */
export const PARTITION_STATUSES: readonly PartitionStatus[] = ['success', 'failed'];

/** Every validation status a history row may hold. */
export const VALIDATION_STATUSES: readonly ValidationStatus[] = ['valid', 'invalid'];

/** Raised for misuse of the ledger (bad filter, bad id) and for storage conflicts it cannot resolve. */
export class LedgerError extends Error {
  override readonly name = 'LedgerError';
  constructor(
    readonly code: 'invalid_argument' | 'run_id_conflict' | 'binding_conflict' | 'unavailable' | 'schema' | 'read_only',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Brands `value` as a {@link RunId}.
 * @throws LedgerError `invalid_argument` quoting the value when it is not a valid run id.
 */
export function toRunId(value: string): RunId {
  if (!RUN_ID_RE.test(value)) {
    throw new LedgerError('invalid_argument', `run id ${JSON.stringify(value)} must be 1-128 characters of A-Z a-z 0-9 . _ -`);
  }
  return value as RunId;
}

/** Why a run failed validation: a stable code a program can switch on, and a message for people. */
export interface ValidationReason {
  code: ValidationReasonCode;
  message: string;
  /** The object (path relative to the run folder) the reason is about, when it is about one. */
  object?: string;
}

/** Every reason the validator can give (SPEC §8 checks). */
export type ValidationReasonCode =
  | 'manifest_malformed'
  | 'manifest_identity_mismatch'
  | 'manifest_version_unknown'
  | 'contract_version_unknown'
  | 'object_missing'
  | 'object_size_mismatch'
  | 'object_sha256_mismatch'
  | 'record_count_mismatch'
  | 'record_malformed'
  | 'seq_inconsistent'
  | 'terminal_event_missing'
  | 'outcome_not_success'
  | 'skipped';

/**
 * What `current_run_id` names (SPEC §8 run trees): a run (`run`, a tree of
 * one), or a fan-out tree (`tree`: current_run_id is the tree id and the tree
 * manifest's SHA-256 is pinned).
 */
export type PartitionAuthority = 'run' | 'tree';

/** Every authority a partition row may hold. */
export const PARTITION_AUTHORITIES: readonly PartitionAuthority[] = ['run', 'tree'];

/** The ledger's row for one logical partition (SPEC §8 `PartitionState`). */
export interface PartitionState extends LogicalPartition {
  status: PartitionStatus;
  /** The authoritative run, or tree id when `authority` is `tree`. Set exactly when `status` is `success`. */
  current_run_id: RunId | null;
  /** What `current_run_id` names; `run` for a row without a current run. */
  authority: PartitionAuthority;
  /** SHA-256 of the authoritative tree's manifest; set exactly when `authority` is `tree`. */
  tree_manifest_sha256: string | null;
  /** Runs recorded for this partition, valid or not. */
  attempts: number;
  /** The run recorded most recently. */
  last_run_id: RunId;
  /** Why the most recently recorded run failed validation; null when it passed. */
  last_error: string | null;
  /** ISO 8601 UTC, the validator's clock. */
  updated_at: string;
}

/** One append-only history row: a run as the validator recorded it. */
export interface RunHistoryRow extends LogicalPartition {
  /** Append order, unique and increasing in one ledger. */
  history_id: number;
  run_id: RunId;
  job_id: string | null;
  attempt: number | null;
  parent_run_id: RunId | null;
  /** The root of the run's tree; the run itself for a tree of one. */
  root_run_id: RunId;
  depth: number;
  /** The run is a fan-out tree's root (its manifest or claim says `fanout`): never promoted alone. */
  fanout: boolean;
  job: unknown;
  script_path: string | null;
  script_sha256: string | null;
  /** SHA-256 of the manifest bytes validated; consumers check it before reading. */
  manifest_sha256: string | null;
  /** Null only when the manifest could not be read. */
  outcome: RunOutcome | null;
  message: string | null;
  skipped: boolean | null;
  started_at: string | null;
  finalized_at: string | null;
  validation_status: ValidationStatus;
  validation_reasons: ValidationReason[];
  validated_at: string;
}

/**
 * A `pending` partition (no state row) whose recorded runs include a
 * `prepare` skip (SPEC §8 skip rule): `state inspect` shows it as
 * "pending, skipped: <reason>", `retry` leaves it alone and gap detection
 * (`--require-complete`, `--stale-after`) counts it complete, unless
 * `--include-skipped`.
 */
export interface PendingSkip extends LogicalPartition {
  /** The latest skipped run of the partition (by recording order). */
  run_id: RunId;
  /** The reason `prepare` gave, or null when it gave none. */
  reason: string | null;
  /** When the skipped run finalized (ISO 8601 UTC), or null when unknown. */
  finalized_at: string | null;
}

/** The skip reason in a skipped run's message (`skipped: <reason>`), or null when it gave none. */
export function skipReason(message: string | null): string | null {
  if (message === null) return null;
  const m = /^skipped(?::\s*(.*))?$/s.exec(message);
  if (m === null) return message === '' ? null : message;
  return m[1] === undefined || m[1] === '' ? null : m[1];
}

/**
 * One tree validation (SPEC §8 run trees): the validator's verdict on a
 * published tree manifest, recorded once per tree (append-only).
 */
export interface TreeValidationRow {
  tree_id: RunId;
  dataset: string;
  job_id: string | null;
  /** SHA-256 of the tree manifest bytes validated; pinned in the partitions the tree promoted. */
  manifest_sha256: string;
  started_at: string;
  /** The tree's instant in "who wins" (ISO 8601 UTC). */
  finalized_at: string;
  /** Failures ≤ allowed (and the manifest was sound). */
  valid: boolean;
  /** Work items whose final attempt failed (target_not_found included). */
  failures: number;
  /** `--allow-failed-children` the tree was judged with. */
  allowed: number;
  /** Admitted work items. */
  items: number;
  /** One line saying why the tree is invalid; null when valid. */
  reason: string | null;
  /** Each failed item: its key, its final run (null when it had none) and why. */
  failed_items: TreeItemFailure[];
  validated_at: string;
}

/** A failed work item as the tree validation records it. */
export interface TreeItemFailure {
  key: string;
  run_id: string | null;
  reason: string;
}

/**
 * A history row before the ledger numbers it. `notify` (never stored in the
 * history) is the run's notification, inserted in the outbox with the row
 * when the run is standalone (SPEC §11).
 */
export type RunHistoryInput = Omit<RunHistoryRow, 'history_id'> & { notify?: NotificationDraft };

/** Filters of {@link Ledger.listPartitions}. Every field narrows; `from`/`to` are inclusive days. */
export interface PartitionFilters {
  dataset?: string;
  source?: string;
  category?: string;
  day?: string;
  from?: string;
  to?: string;
  status?: PartitionStatus;
  /** At most this many rows (a positive integer). */
  limit?: number;
}

/** Filters of {@link Ledger.listRuns}. */
export interface RunFilters {
  dataset?: string;
  source?: string;
  category?: string;
  day?: string;
  from?: string;
  to?: string;
  job_id?: string;
  root_run_id?: string;
  outcome?: RunOutcome;
  validation_status?: ValidationStatus;
  limit?: number;
}

/** One column condition of a compiled filter, for either SQL dialect. */
export interface FilterClause {
  column: string;
  op: '=' | '>=' | '<=';
  value: string | number;
}

/** A validated filter: its WHERE conditions and its limit. */
export interface CompiledFilter {
  clauses: FilterClause[];
  limit: number | undefined;
}

const KEY_FIELDS = ['dataset', 'source', 'category'] as const;

function compileCommon(f: PartitionFilters | RunFilters): CompiledFilter {
  const clauses: FilterClause[] = [];
  for (const k of KEY_FIELDS) {
    const v = f[k];
    if (v === undefined) continue;
    const why = checkKeyValue(k, v);
    if (why !== undefined) throw new LedgerError('invalid_argument', `filter ${why}`);
    clauses.push({ column: k, op: '=', value: v });
  }
  for (const [k, op] of [['day', '='], ['from', '>='], ['to', '<=']] as const) {
    const v = f[k];
    if (v === undefined) continue;
    const why = checkDay(v);
    if (why !== undefined) throw new LedgerError('invalid_argument', `filter ${k}: ${why}`);
    clauses.push({ column: 'day', op, value: v });
  }
  const limit = f.limit;
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new LedgerError('invalid_argument', `filter limit ${JSON.stringify(limit)} must be a positive integer`);
  }
  return { clauses, limit };
}

/**
 * Checks and compiles partition filters into column conditions.
 * @throws LedgerError `invalid_argument` quoting the bad value.
 */
export function compilePartitionFilters(f: PartitionFilters): CompiledFilter {
  const c = compileCommon(f);
  if (f.status !== undefined) {
    if (!PARTITION_STATUSES.includes(f.status)) {
      throw new LedgerError('invalid_argument', `filter status ${JSON.stringify(f.status)} must be one of ${PARTITION_STATUSES.join('|')} (pending partitions have no row)`);
    }
    c.clauses.push({ column: 'status', op: '=', value: f.status });
  }
  return c;
}

/**
 * Checks and compiles run filters into column conditions.
 * @throws LedgerError `invalid_argument` quoting the bad value.
 */
export function compileRunFilters(f: RunFilters): CompiledFilter {
  const c = compileCommon(f);
  if (f.job_id !== undefined) c.clauses.push({ column: 'job_id', op: '=', value: f.job_id });
  if (f.root_run_id !== undefined) c.clauses.push({ column: 'root_run_id', op: '=', value: toRunId(f.root_run_id) });
  if (f.outcome !== undefined) {
    if (!RUN_OUTCOMES.includes(f.outcome)) throw new LedgerError('invalid_argument', `filter outcome ${JSON.stringify(f.outcome)} must be one of ${RUN_OUTCOMES.join('|')}`);
    c.clauses.push({ column: 'outcome', op: '=', value: f.outcome });
  }
  if (f.validation_status !== undefined) {
    if (!VALIDATION_STATUSES.includes(f.validation_status)) {
      throw new LedgerError('invalid_argument', `filter validation_status ${JSON.stringify(f.validation_status)} must be one of ${VALIDATION_STATUSES.join('|')}`);
    }
    c.clauses.push({ column: 'validation_status', op: '=', value: f.validation_status });
  }
  return c;
}

/** Checks a logical partition's keys. @throws LedgerError `invalid_argument` quoting the bad value. */
export function checkLogicalPartition(p: LogicalPartition): void {
  for (const k of KEY_FIELDS) {
    const why = checkKeyValue(k, p[k]);
    if (why !== undefined) throw new LedgerError('invalid_argument', why);
  }
  const why = checkDay(p.day);
  if (why !== undefined) throw new LedgerError('invalid_argument', why);
}
