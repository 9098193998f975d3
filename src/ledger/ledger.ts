/**
 * The ledger port (SPEC §8): the partition-state table that says which run of
 * each logical partition is authoritative, and the append-only run history.
 * Two implementations, one conformance suite (test/ledger/conformance.ts):
 * `SqliteLedger` (embedded default, a file) and `PostgresLedger` (by URL).
 *
 * Authority separation: readers get {@link LedgerReader}; only the validator
 * (src/ledger/validator.ts) calls {@link Ledger.recordRuns}.
 */
import type { LogicalPartition } from '../storage/layout.js';
import type { RunBindingInput } from './binding.js';
import type { DeliveryLease, DeliveryResult, NotificationClaim, NotificationDraft, NotificationFilters, NotificationRow } from './outbox.js';
import type { RunRole, TreePartitionMembers, TreePartitionOutcome } from './promotion.js';
import {
  LedgerError,
  type TreeValidationRow,
  type PartitionFilters,
  type PendingSkip,
  type PartitionState,
  type RunFilters,
  type RunHistoryInput,
  type RunHistoryRow,
  type RunId,
} from './types.js';

/** Which backend a ledger is. */
export type LedgerKind = 'sqlite' | 'postgres';

/** The read side of the ledger: what consumers, `state inspect` and `retry` use. Never writes. */
export interface LedgerReader {
  readonly kind: LedgerKind;
  /** Where the ledger is, for messages: a file path or a URL without its password. */
  readonly location: string;
  /** The partition's row, or undefined when it is `pending` (no row). */
  getPartition(partition: LogicalPartition): Promise<PartitionState | undefined>;
  /**
   * Rows matching every given filter, ordered by (dataset, source, category, day).
   * Indexed: a filtered read over 100k partitions takes milliseconds.
   * @throws LedgerError `invalid_argument` quoting a bad filter value.
   */
  listPartitions(filters?: PartitionFilters): Promise<PartitionState[]>;
  /** A run's history row, or undefined when the validator never recorded it. */
  getRun(runId: string): Promise<RunHistoryRow | undefined>;
  /**
   * History rows matching every given filter, in recording order.
   * @throws LedgerError `invalid_argument` quoting a bad filter value.
   */
  listRuns(filters?: RunFilters): Promise<RunHistoryRow[]>;
  /** Every run recorded for one logical partition, in recording order. */
  runsOfPartition(partition: LogicalPartition): Promise<RunHistoryRow[]>;
  /**
   * The `pending` partitions (no state row) that hold a `prepare`-skipped run,
   * one entry per partition (its latest skip), ordered by (dataset, source,
   * category, day). Uses the key filters (`dataset`, `source`, `category`,
   * `day`, `from`, `to`); `status` and `limit` are refused. This is how
   * `state inspect`, `retry` and gap detection tell "skipped" from "never ran"
   * (SPEC §8 skip rule); a partition whose skip was followed by a failure or a
   * success has a row and is not listed.
   * @throws LedgerError `invalid_argument` quoting a bad filter value.
   */
  pendingSkips(filters?: Omit<PartitionFilters, 'status' | 'limit'>): Promise<PendingSkip[]>;
  /** Which of `runIds` already have a history row (so the validator can skip them). */
  recordedRunIds(runIds: readonly string[]): Promise<Set<RunId>>;
  /** A tree's validation (SPEC §8 run trees), or undefined when the tree was never validated. */
  getTree(treeId: string): Promise<TreeValidationRow | undefined>;
  /** Which of `treeIds` already have a tree validation (so `validate --pending` can skip them). */
  recordedTreeIds(treeIds: readonly string[]): Promise<Set<RunId>>;
  /** Outbox rows (SPEC §11) matching every given filter, oldest first. */
  listNotifications(filters?: NotificationFilters): Promise<NotificationRow[]>;
  /** Releases the connection(s). The ledger is unusable afterwards. */
  close(): Promise<void>;
}

/** What recording one run did. */
export interface RecordedRun {
  /** The stored history row: the new one, or the existing one when the run was recorded before. */
  run: RunHistoryRow;
  /** False when a history row for the run already existed: nothing was written for it. */
  recorded: boolean;
  role: RunRole;
  /** The run became the partition's current run in this call. */
  promoted: boolean;
  /** The partition row after this run (undefined when the partition is still pending, e.g. for a tree member). */
  partition: PartitionState | undefined;
  /** The outbox row inserted with this run (SPEC §11); null when none (no adapter, a tree member, or recorded before). */
  notification_id: string | null;
}

/** One logical partition a tree touched, with what the tree left there. */
export interface TreePartitionInput extends TreePartitionMembers {
  partition: LogicalPartition;
}

/** What the validator gives {@link Ledger.recordTree}. */
export interface TreeRecordInput {
  tree: TreeValidationRow;
  /** The tree's member runs, checked (every attempt with a manifest); all must be tree members. */
  members: readonly RunHistoryInput[];
  /** Every logical partition an attempt of the tree wrote in. */
  partitions: readonly TreePartitionInput[];
  /** The tree's notification (its root's adapter), inserted with the validation; absent: none. */
  notify?: NotificationDraft;
}

/** What a tree did to one partition. */
export interface RecordedTreePartition {
  partition: LogicalPartition;
  outcome: TreePartitionOutcome;
  /** The row afterwards (undefined: still pending). */
  state: PartitionState | undefined;
}

/** What recording a tree did. */
export interface RecordedTree {
  /** The stored validation: the new one, or the one recorded before. */
  tree: TreeValidationRow;
  /** False when the tree was validated before: nothing was written this time. */
  recorded: boolean;
  members: RecordedRun[];
  /** Per touched partition; for a repeat, read from the rows as they are now. */
  partitions: RecordedTreePartition[];
  /** The outbox row inserted with the tree (SPEC §11); null when none or recorded before. */
  notification_id: string | null;
}

/** The full ledger: the reads plus the validator's write. */
export interface Ledger extends LedgerReader {
  /**
   * Appends history rows and applies the promotion rules of §8
   * ({@link nextPartitionState}) in ONE transaction: all of `runs` or none.
   * Idempotent per run: a run already in the history is neither duplicated nor
   * re-applied. Tree members (not their own root at depth 0) are recorded
   * without touching partition state. Safe under concurrent callers, in one
   * process or many, on one machine or many: every row lands once and the
   * authoritative run is the same whatever the order.
   *
   * Only the validator calls this; nothing else writes the ledger (§8).
   * @throws LedgerError `run_id_conflict` when a run id is already recorded for another partition.
   */
  recordRuns(runs: readonly RunHistoryInput[], now: Date): Promise<RecordedRun[]>;

  /**
   * Records a validated tree (SPEC §8 run trees) in ONE transaction: its
   * member runs (as {@link recordRuns} records tree members: history only),
   * its validation row, and the promotion rules of
   * {@link nextTreePartitionState} in each partition it touched. Idempotent
   * per tree: a tree already validated writes nothing and returns the stored
   * validation. Safe under concurrent callers: the authority is the same
   * whatever the order trees and runs are recorded in.
   * @throws LedgerError `invalid_argument` when a member is not a tree member (its own root, no fanout);
   *   `run_id_conflict` as {@link recordRuns}.
   */
  recordTree(input: TreeRecordInput, now: Date): Promise<RecordedTree>;

  /**
   * Before a run claims storage (SPEC §8 "Binding and writers"), in ONE
   * transaction: binds `dataset` to `storage` on its first use, and reserves
   * `run_id` for the dataset. Nothing is written when it throws. Reserving an
   * id again for the same dataset is allowed (the storage claim fences runs
   * of one dataset). This and the validator's write are the only ledger writes.
   * @throws LedgerError `binding_conflict` when the dataset is bound to another location (naming both);
   *   `run_id_conflict` when the run id is recorded, or reserved for another dataset.
   */
  bindRun(input: RunBindingInput, now: Date): Promise<RunBinding>;

  /**
   * Leases pending outbox rows (SPEC §11) to one sender until `lease.until`:
   * a row leased by another sender whose lease has not expired is skipped, so
   * two drains (or a run and a drain) never send one row at once. Writes only
   * delivery columns.
   */
  claimNotifications(claim: NotificationClaim, lease: DeliveryLease, now: Date): Promise<NotificationRow[]>;

  /**
   * Writes what a delivery did to the row's delivery columns and releases the
   * lease; a delivered row is never sent again. Does nothing (returns false)
   * when the row is no longer leased to `owner` or is not pending.
   */
  recordDelivery(notificationId: string, owner: string, result: DeliveryResult, now: Date): Promise<boolean>;

  /**
   * Marks pending rows `superseded` by `by` (a later attempt of one `--retries`
   * invocation, whose row is sent instead: one notification per invocation).
   */
  supersedeNotifications(ids: readonly string[], by: string, now: Date): Promise<void>;
}

/** What {@link Ledger.bindRun} found. */
export interface RunBinding {
  /** The dataset was bound to the storage by this call (its first use in this ledger). */
  bound_now: boolean;
}

/** Options for {@link openLedger}. */
export interface OpenLedgerOptions {
  /** SQLite: how long a writer waits for another's lock before retrying (ms). Default 10 000. */
  busyTimeoutMs?: number;
  /** PostgreSQL: pool size. Default 4. */
  poolSize?: number;
}

/** True when `target` names a PostgreSQL server rather than a SQLite file. */
export function isPostgresUrl(target: string): boolean {
  return /^postgres(ql)?:\/\//i.test(target);
}

/**
 * Opens (creating and migrating as needed) the ledger at `target`: a
 * `postgres://` or `postgresql://` URL opens a {@link PostgresLedger}, anything
 * else is a SQLite file path. Drivers load lazily, so the embedded default
 * never loads `pg`.
 * @throws LedgerError `invalid_argument` for an empty target, `unavailable` when the database cannot be reached, `schema` when it was migrated by a newer Quarry.
 */
export async function openLedger(target: string, options: OpenLedgerOptions = {}): Promise<Ledger> {
  if (target.trim() === '') throw new LedgerError('invalid_argument', 'ledger target is empty: give a SQLite file path or a postgres:// URL');
  if (isPostgresUrl(target)) {
    const { PostgresLedger } = await import('./postgres-ledger.js');
    return PostgresLedger.create(target, options.poolSize === undefined ? {} : { poolSize: options.poolSize });
  }
  const { SqliteLedger } = await import('./sqlite-ledger.js');
  return SqliteLedger.create(target, options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs });
}

/**
 * Opens the ledger at `target` for reading only (SPEC §8 "readers are
 * read-only"): never creates, migrates or changes it, so read commands need
 * no write rights and are not blocked by writers.
 * @throws LedgerError `invalid_argument` for an empty target, `unavailable` when it cannot be read (one line naming what to do), `schema` when its schema is older or newer than this Quarry's.
 */
export async function openLedgerReader(target: string, options: OpenLedgerOptions = {}): Promise<LedgerReader> {
  if (target.trim() === '') throw new LedgerError('invalid_argument', 'ledger target is empty: give a SQLite file path or a postgres:// URL');
  if (isPostgresUrl(target)) {
    const { PostgresLedger } = await import('./postgres-ledger.js');
    return PostgresLedger.openReader(target, options.poolSize === undefined ? {} : { poolSize: options.poolSize });
  }
  const { SqliteLedger } = await import('./sqlite-ledger.js');
  return SqliteLedger.openReader(target, options.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: options.busyTimeoutMs });
}
