/**
 * The promotion rules of SPEC §8, as pure functions both ledger backends apply
 * inside their write transaction, with the partition row locked.
 *
 * Invariant: the authoritative run of a partition is the maximum, by
 * (`finalized_at`, `run_id`), over its valid standalone runs. Each step keeps
 * the larger of the current and the new candidate, so the result does not
 * depend on the order validators record runs in.
 */
import type { PartitionState, RunHistoryInput, RunId } from './types.js';

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

/** The role of a run, from its lineage. */
export function runRole(run: Pick<RunHistoryInput, 'run_id' | 'root_run_id' | 'depth'>): RunRole {
  return run.depth === 0 && run.root_run_id === run.run_id ? 'standalone' : 'tree_member';
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
      return { state: { ...base, status: 'success', current_run_id: incumbent, last_error: null }, promoted: false };
    }
    return { state: { ...base, status: 'success', current_run_id: run.run_id, last_error: null }, promoted: true };
  }
  if (isNeutralRun(run)) {
    return { state: prev === undefined ? undefined : { ...prev, ...base, status: prev.status, current_run_id: prev.current_run_id, last_error: prev.last_error }, promoted: false };
  }
  const keep = prev?.status === 'success' && prev.current_run_id !== null;
  return {
    state: { ...base, status: keep ? 'success' : 'failed', current_run_id: keep ? prev.current_run_id : null, last_error: summarizeFailure(run) },
    promoted: false,
  };
}
