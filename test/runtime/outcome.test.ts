import { describe, expect, it } from 'vitest';
import { classify } from '../../src/runtime/outcome.js';

const base = { exitCode: 0 as number | null, exitSignal: null };

describe('outcome classification (the exit code is authoritative)', () => {
  it('exit 0 with run_complete is success', () => {
    expect(classify({ ...base, terminal: { type: 'run_complete' } })).toMatchObject({ outcome: 'success', exitCode: 0 });
  });
  it('exit 0 without a terminal event is an executor crash', () => {
    expect(classify(base)).toMatchObject({ outcome: 'executor_crash', exitCode: 2, message: expect.stringMatching(/without a terminal event/) });
  });
  it('exit 1 is a script error even if run_result said completed', () => {
    expect(classify({ ...base, exitCode: 1, terminal: { type: 'run_error', message: 'boom', errorType: 'script_error' }, resultMessage: 'completed' }))
      .toMatchObject({ outcome: 'script_error', exitCode: 1, message: 'script_error: boom' });
  });
  it('a run on a shared browser that died is a crash unless it completed', () => {
    const lost = 'the shared browser died during the run';
    expect(classify({ ...base, exitCode: 1, terminal: { type: 'run_error', message: 'Target closed', errorType: 'script_error' }, browserLost: lost }))
      .toMatchObject({ outcome: 'executor_crash', exitCode: 2, message: lost });
    expect(classify({ ...base, terminal: { type: 'run_complete' }, browserLost: lost }).outcome).toBe('success');
  });
  it('exit 2, exit 3, a kill signal and an unknown code are crashes', () => {
    expect(classify({ ...base, exitCode: 2 }).outcome).toBe('executor_crash');
    expect(classify({ ...base, exitCode: 3 }).outcome).toBe('executor_crash');
    expect(classify({ exitCode: null, exitSignal: 'SIGKILL' }).message).toMatch(/SIGKILL/);
    expect(classify({ ...base, exitCode: 9 }).exitCode).toBe(2);
  });
  it('policy failures and version mismatches exit 3; stream errors exit 2', () => {
    expect(classify({ ...base, policyFailure: 'disk full', terminal: { type: 'run_complete' } })).toMatchObject({ outcome: 'policy_failure', exitCode: 3 });
    expect(classify({ ...base, versionMismatch: 'v2' })).toMatchObject({ outcome: 'version_mismatch', exitCode: 3 });
    expect(classify({ ...base, streamError: 'seq gap' })).toMatchObject({ outcome: 'executor_crash', exitCode: 2, message: 'seq gap' });
  });
  it('an interruption wins and exits 130 or 143', () => {
    expect(classify({ ...base, interrupted: 'SIGINT', policyFailure: 'x' })).toMatchObject({ outcome: 'interrupted', exitCode: 130 });
    expect(classify({ ...base, interrupted: 'SIGTERM' })).toMatchObject({ outcome: 'interrupted', exitCode: 143 });
  });
  it('a run past --run-timeout is a script_error with error_type timeout, even if it completed and was then killed', () => {
    const c = classify({ ...base, exitCode: null, exitSignal: 'SIGTERM', terminal: { type: 'run_complete' }, timedOutMs: 90_000 });
    expect(c).toMatchObject({ outcome: 'script_error', exitCode: 1, errorType: 'timeout' });
    expect(c.message).toMatch(/^timeout: .*--run-timeout 1m30s/);
    // A policy failure still says what happened to the data.
    expect(classify({ ...base, timedOutMs: 1000, policyFailure: 'disk full' }).outcome).toBe('policy_failure');
  });
  it('a script error carries the run_error error_type', () => {
    expect(classify({ ...base, exitCode: 1, terminal: { type: 'run_error', message: 'm', errorType: 'blocked' } }).errorType).toBe('blocked');
  });
});
