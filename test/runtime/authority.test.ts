/** SPEC §8 "Authority and the exit code": the decision table, case by case. */
import { describe, expect, it } from 'vitest';
import { decideAuthority, type ValidationResult } from '../../src/runtime/authority.js';

const next = { validate: 'quarry validate --run r', inspect: 'quarry inspect run r' };
const ok = { run_id: 'r', outcome: 'success' as const, exit_code: 0 };
const recorded = (over: Partial<Extract<ValidationResult, { kind: 'recorded' }>>): ValidationResult => ({ kind: 'recorded', valid: true, skipped: false, current_run_id: 'r', ...over });

describe('decideAuthority', () => {
  it('exit 0: promoted, superseded by a later valid run, or skipped', () => {
    expect(decideAuthority(ok, recorded({}), next)).toEqual({ authority: { authoritative: true, reason: 'promoted', next: null }, exit_code: 0 });
    expect(decideAuthority(ok, recorded({ current_run_id: 'later' }), next)).toEqual({ authority: { authoritative: false, reason: 'superseded', next: null }, exit_code: 0 });
    expect(decideAuthority(ok, recorded({ valid: false, skipped: true, current_run_id: null }), next)).toEqual({ authority: { authoritative: false, reason: 'skipped', next: null }, exit_code: 0 });
  });

  it('exit 3, outcome kept: rejected by validation (next: inspect) or the ledger unreachable (next: validate)', () => {
    expect(decideAuthority(ok, recorded({ valid: false, current_run_id: 'other' }), next)).toEqual({ authority: { authoritative: false, reason: 'rejected', next: next.inspect }, exit_code: 3 });
    expect(decideAuthority(ok, { kind: 'unreachable' }, next)).toEqual({ authority: { authoritative: false, reason: 'ledger_unreachable', next: next.validate }, exit_code: 3 });
  });

  it('a valid tree member (a fan-out root included) awaits its tree: not authoritative, exit 0; a rejected one is still rejected', () => {
    expect(decideAuthority(ok, recorded({ current_run_id: null, role: 'tree_member' }), next)).toEqual({ authority: { authoritative: false, reason: 'awaits_tree', next: null }, exit_code: 0 });
    expect(decideAuthority(ok, recorded({ valid: false, current_run_id: null, role: 'tree_member' }), next)).toEqual({ authority: { authoritative: false, reason: 'rejected', next: next.inspect }, exit_code: 3 });
  });

  it('a failed outcome keeps its own exit code', () => {
    for (const [outcome, code] of [['script_error', 1], ['executor_crash', 2], ['policy_failure', 3], ['interrupted', 143]] as const) {
      expect(decideAuthority({ run_id: 'r', outcome, exit_code: code }, recorded({ valid: false, current_run_id: null }), next)).toEqual({ authority: { authoritative: false, reason: 'not_success', next: null }, exit_code: code });
    }
  });
});
