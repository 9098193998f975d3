/**
 * What a run's exit code says about its data (SPEC §8 "Authority and the exit
 * code"), decided once, at the run's own validation. Pure: the caller gives
 * the run's outcome and what the validator did; this returns the report's
 * `authority` and the exit code.
 *
 * Exit 0 when the run became authoritative, was valid and lost only to a
 * valid run with a later instant (`superseded`), or was a `prepare` skip.
 * Exit 3, the outcome kept `success`, when validation rejected it or the
 * ledger could not be reached. Other outcomes keep their own code (§5).
 */
import type { RunOutcome } from '../storage/manifest.js';

/** Why a run is or is not authoritative. */
export type AuthorityReason =
  | 'promoted'
  | 'superseded'
  | 'skipped'
  | 'rejected'
  | 'ledger_unreachable'
  | 'not_success'
  /** A valid member of a fan-out tree (its root included): only its tree can promote it (SPEC §8 run trees). */
  | 'awaits_tree';

/** The report's `authority` block. */
export interface RunAuthority {
  /** The run is its partition's `current_run_id` now. */
  authoritative: boolean;
  reason: AuthorityReason;
  /** The command to run next, when something is left to do; null otherwise. */
  next: string | null;
}

/** What validation at the end of the run found. */
export type ValidationResult =
  | { kind: 'recorded'; valid: boolean; skipped: boolean; current_run_id: string | null; role?: 'standalone' | 'tree_member' }
  | { kind: 'unreachable' }
  | { kind: 'not_finalized' };

/** Exit code of a `success` run whose data did not become authoritative (SPEC §5, §8). */
export const EXIT_NOT_AUTHORITATIVE = 3;

/**
 * The authority of a finished run and its exit code.
 * `next` gives the commands to suggest: `validate` (record it later) and
 * `inspect` (see why it was rejected).
 */
export function decideAuthority(
  run: { run_id: string; outcome: RunOutcome; exit_code: number },
  v: ValidationResult,
  next: { validate: string; inspect: string },
): { authority: RunAuthority; exit_code: number } {
  if (run.outcome !== 'success') {
    return { authority: { authoritative: false, reason: 'not_success', next: null }, exit_code: run.exit_code };
  }
  if (v.kind === 'unreachable') {
    return { authority: { authoritative: false, reason: 'ledger_unreachable', next: next.validate }, exit_code: EXIT_NOT_AUTHORITATIVE };
  }
  if (v.kind === 'not_finalized') {
    return { authority: { authoritative: false, reason: 'rejected', next: next.inspect }, exit_code: EXIT_NOT_AUTHORITATIVE };
  }
  if (v.skipped) return { authority: { authoritative: false, reason: 'skipped', next: null }, exit_code: 0 };
  if (!v.valid) return { authority: { authoritative: false, reason: 'rejected', next: next.inspect }, exit_code: EXIT_NOT_AUTHORITATIVE };
  // A tree member's data is judged with its tree: its own report says so; the tree's exit code decides.
  if (v.role === 'tree_member') return { authority: { authoritative: false, reason: 'awaits_tree', next: null }, exit_code: 0 };
  if (v.current_run_id === run.run_id) return { authority: { authoritative: true, reason: 'promoted', next: null }, exit_code: 0 };
  return { authority: { authoritative: false, reason: 'superseded', next: null }, exit_code: 0 };
}
