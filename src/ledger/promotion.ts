/**
 * The promotion rules of SPEC §8, as pure functions both ledger backends apply
 * inside their write transaction, with the partition row locked.
 *
 * Invariant: the authority of a partition is the maximum, by
 * (instant, id), over its candidates: valid standalone runs (instant: their
 * manifest's `finalized_at`) and passing trees with a readable member there
 * (instant: the tree manifest's `finalized_at`). Each step keeps
 * the larger of the current and the new candidate, so the result does not
 * depend on the order validators record runs in.
 */
import type { LogicalPartition } from '../storage/layout.js';
import { checkLogicalPartition, LedgerError, toRunId, type PartitionState, type RunHistoryInput, type RunId } from './types.js';

/**
 * How a run takes part in authority. A run is `standalone` (a tree of one)
 * when it is its own root at depth 0; anything else is a member of a fan-out
 * tree, recorded in the history but promoted only with its tree (SPEC §8 run
 * trees).
 */
export type RunRole = 'standalone' | 'tree_member';

/** What decides which of two valid runs is authoritative. */
export interface AuthorityKey {
  run_id: RunId | string;
  /** ISO 8601 UTC as `Date#toISOString` writes it, so string order is time order. */
  finalized_at: string;
}

/** The role of a run, from its lineage: a fan-out root (`fanout`) is a tree member too, never promoted alone. */
export function runRole(run: Pick<RunHistoryInput, 'run_id' | 'root_run_id' | 'depth'> & { fanout?: boolean | null }): RunRole {
  return run.depth === 0 && run.root_run_id === run.run_id && run.fanout !== true ? 'standalone' : 'tree_member';
}

/**
 * Orders candidates for authority: later `finalized_at` first wins, then the
 * larger `run_id` (plain code-unit order, the same in every locale and backend).
 * Returns a positive number when `a` beats `b`.
 */
export function compareAuthority(a: AuthorityKey, b: AuthorityKey): number {
  if (a.finalized_at !== b.finalized_at) return a.finalized_at > b.finalized_at ? 1 : -1;
  if (a.run_id === b.run_id) return 0;
  return a.run_id > b.run_id ? 1 : -1;
}

/** Longest `last_error` kept in the partition row; the history keeps every reason in full. */
export const MAX_LAST_ERROR_CHARS = 2000;

/** One line saying why a run failed validation, for `last_error`. */
export function summarizeFailure(run: Pick<RunHistoryInput, 'validation_reasons'>): string {
  const text = run.validation_reasons.map((r) => `${r.code}: ${r.message}`).join('; ');
  return text.length > MAX_LAST_ERROR_CHARS ? `${text.slice(0, MAX_LAST_ERROR_CHARS - 1)}…` : text;
}

/** The next partition row after recording `run`, and whether `run` became authoritative. */
export interface PartitionTransition {
  /** The row to store; undefined when the partition has no row and keeps none (it stays `pending`). */
  state: PartitionState | undefined;
  promoted: boolean;
}

/**
 * True for a run that §8 records but lets neither promote nor fail a
 * partition: a `prepare` skip, or an `interrupted` run.
 */
export function isNeutralRun(run: Pick<RunHistoryInput, 'skipped' | 'outcome'>): boolean {
  return run.skipped === true || run.outcome === 'interrupted';
}

/**
 * Applies §8's rules for a standalone run newly recorded in its partition.
 *
 * - valid: the partition is `success`; `run` becomes current unless the
 *   current authoritative run beats it ({@link compareAuthority});
 * - skipped or interrupted ({@link isNeutralRun}): never promoted and never
 *   marks the partition `failed`: a partition with no row keeps none (it stays
 *   `pending`; a skip shows as "pending, skipped"), a row keeps its status,
 *   authority and `last_error` and only counts the attempt;
 * - any other invalid run: the partition keeps a `success` it has (a failed
 *   retry never demotes good data), else it is `failed`.
 *
 * `current` is the authority key of `prev.current_run_id` (undefined when none).
 * `attempts` counts every recorded run of a partition that has a row;
 * `last_run_id` names `run`.
 */
export function nextPartitionState(
  prev: PartitionState | undefined,
  current: AuthorityKey | undefined,
  run: RunHistoryInput,
  now: string,
): PartitionTransition {
  const base = {
    dataset: run.dataset,
    source: run.source,
    category: run.category,
    day: run.day,
    attempts: (prev?.attempts ?? 0) + 1,
    last_run_id: run.run_id,
    updated_at: now,
  };
  if (run.validation_status === 'valid' && run.finalized_at !== null) {
    const candidate: AuthorityKey = { run_id: run.run_id, finalized_at: run.finalized_at };
    const incumbent = prev?.current_run_id ?? null;
    // An incumbent whose key is unknown cannot be compared; the newly validated run takes over.
    if (incumbent !== null && current !== undefined && compareAuthority(candidate, current) <= 0) {
      return { state: { ...base, status: 'success', current_run_id: incumbent, ...authorityOf(prev), last_error: null }, promoted: false };
    }
    return { state: { ...base, status: 'success', current_run_id: run.run_id, authority: 'run', tree_manifest_sha256: null, last_error: null }, promoted: true };
  }
  if (isNeutralRun(run)) {
    return { state: prev === undefined ? undefined : { ...prev, ...base, status: prev.status, current_run_id: prev.current_run_id, last_error: prev.last_error }, promoted: false };
  }
  const keep = prev?.status === 'success' && prev.current_run_id !== null;
  return {
    state: { ...base, status: keep ? 'success' : 'failed', current_run_id: keep ? prev.current_run_id : null, ...(keep ? authorityOf(prev) : NO_AUTHORITY), last_error: summarizeFailure(run) },
    promoted: false,
  };
}

const NO_AUTHORITY = { authority: 'run', tree_manifest_sha256: null } as const;

/** A row's authority fields, kept as they are. */
function authorityOf(prev: PartitionState | undefined): Pick<PartitionState, 'authority' | 'tree_manifest_sha256'> {
  return prev === undefined ? NO_AUTHORITY : { authority: prev.authority, tree_manifest_sha256: prev.tree_manifest_sha256 };
}

/** A validated tree as one candidate for authority (SPEC §8 "Who wins"). */
export interface TreeCandidate {
  tree_id: RunId;
  /** The tree manifest's `finalized_at`: the tree's instant. */
  finalized_at: string;
  manifest_sha256: string;
  /** The tree passed: failures ≤ allowance. */
  valid: boolean;
  /** Why it did not pass (for `last_error`); null when valid. */
  reason: string | null;
}

/** What the tree left in one logical partition it touched. */
export interface TreePartitionMembers {
  /** Readable members here: final, valid, `success` attempts of items. */
  readable: number;
  /** Items here whose final attempt failed (or whose run is missing). */
  failed: number;
  /** One line on why the failed items here failed, for `last_error`. */
  failure: string | null;
}

/** What a tree did to one partition. */
export type TreePartitionOutcome =
  /** The tree became the partition's authority. */
  | 'promoted'
  /** The tree had readable members but a candidate with a later instant holds the partition. */
  | 'superseded'
  /** Not promoted: the partition keeps its authority (or stays pending: nothing but skips here). */
  | 'kept'
  /** Not promoted and nothing else held it: the partition is `failed`. */
  | 'failed';

/**
 * Applies §8's rules for a validated tree in one logical partition it touched.
 *
 * - a passing tree with ≥ 1 readable member here competes as one candidate
 *   (its manifest's `finalized_at`, then its id): if it beats the current
 *   authority, `current_run_id = tree_id`, `authority = 'tree'`, the manifest
 *   SHA-256 pinned; else the partition keeps its authority (`superseded`);
 * - a partition where the tree has neither a readable member nor a failure
 *   (only skips) is left as a skipped run leaves it;
 * - otherwise (a failing tree, or no readable member here) the partition keeps
 *   a `success` it has, or becomes `failed`.
 *
 * The tree counts as one attempt of the partition and is its `last_run_id`.
 */
export function nextTreePartitionState(
  partition: LogicalPartition,
  prev: PartitionState | undefined,
  current: AuthorityKey | undefined,
  tree: TreeCandidate,
  members: TreePartitionMembers,
  now: string,
): { state: PartitionState | undefined; outcome: TreePartitionOutcome } {
  const base = {
    dataset: partition.dataset, source: partition.source, category: partition.category, day: partition.day,
    attempts: (prev?.attempts ?? 0) + 1,
    last_run_id: tree.tree_id,
    updated_at: now,
  };
  if (tree.valid && members.readable > 0) {
    const candidate: AuthorityKey = { run_id: tree.tree_id, finalized_at: tree.finalized_at };
    const incumbent = prev?.current_run_id ?? null;
    if (incumbent !== null && current !== undefined && compareAuthority(candidate, current) <= 0) {
      return { state: { ...base, status: 'success', current_run_id: incumbent, ...authorityOf(prev), last_error: null }, outcome: 'superseded' };
    }
    return {
      state: { ...base, status: 'success', current_run_id: tree.tree_id, authority: 'tree', tree_manifest_sha256: tree.manifest_sha256, last_error: null },
      outcome: 'promoted',
    };
  }
  if (members.readable === 0 && members.failed === 0) {
    return { state: prev === undefined ? undefined : { ...prev, ...base }, outcome: 'kept' };
  }
  const keep = prev?.status === 'success' && prev.current_run_id !== null;
  const why = tree.valid ? (members.failure ?? 'no readable member') : (tree.reason ?? 'the tree did not pass validation');
  const text = `tree ${tree.tree_id}: ${why}`;
  const lastError = text.length > MAX_LAST_ERROR_CHARS ? `${text.slice(0, MAX_LAST_ERROR_CHARS - 1)}…` : text;
  return {
    state: { ...base, status: keep ? 'success' : 'failed', current_run_id: keep ? prev.current_run_id : null, ...(keep ? authorityOf(prev) : NO_AUTHORITY), last_error: lastError },
    outcome: keep ? 'kept' : 'failed',
  };
}

/**
 * What a tree validated before did to a partition, read from the row as it
 * is now (a repeated validation writes nothing and reports this).
 */
export function treePartitionOutcomeNow(treeId: string, valid: boolean, members: TreePartitionMembers, state: PartitionState | undefined): TreePartitionOutcome {
  if (state?.current_run_id === treeId && state.authority === 'tree') return 'promoted';
  if (valid && members.readable > 0) return 'superseded';
  return state?.status === 'failed' ? 'failed' : 'kept';
}

/**
 * Checks what a ledger is asked to record for a tree, before its transaction:
 * the tree id, every member's and partition's keys, and that no member would
 * be promoted alone (its own root without fanout). Returns the tree id.
 * @throws LedgerError `invalid_argument` naming the bad value.
 */
export function checkTreeRecord(treeId: string, members: readonly RunHistoryInput[], partitions: ReadonlyArray<{ partition: LogicalPartition }>): RunId {
  const id = toRunId(treeId);
  for (const m of members) {
    checkLogicalPartition(m);
    if (runRole(m) === 'standalone') throw new LedgerError('invalid_argument', `run ${m.run_id} is not a member of tree ${id}: it is its own root without fanout`);
  }
  for (const p of partitions) checkLogicalPartition(p.partition);
  return id;
}
