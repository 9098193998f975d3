/**
 * Outcomes and exit codes (SPEC §5). Pure: the classification of a finished run
 * from what the supervisor observed.
 */
import type { RunOutcome } from '../storage/manifest.js';

export type { RunOutcome };

/** Exit code of `quarry run` for each outcome; `interrupted` depends on the signal. */
export const OUTCOME_EXIT_CODES: Readonly<Record<Exclude<RunOutcome, 'interrupted'>, number>> = {
  success: 0,
  script_error: 1,
  executor_crash: 2,
  policy_failure: 3,
  version_mismatch: 3,
};

/** Exit code for an interruption by `signal` (128 + signal number). */
export function interruptedExitCode(signal: 'SIGINT' | 'SIGTERM'): number {
  return signal === 'SIGINT' ? 130 : 143;
}

/** Executor exit codes (SPEC §3). */
export const EXECUTOR_EXIT = { completed: 0, scriptError: 1, crash: 2, invalidInput: 3 } as const;

/** What the supervisor saw, in order of precedence. */
export interface Observation {
  /** The runtime was interrupted by a signal. */
  interrupted?: 'SIGINT' | 'SIGTERM';
  /** A policy or storage failure (message). */
  policyFailure?: string;
  /** An envelope with a contract major this runtime does not speak. */
  versionMismatch?: string;
  /** `--run-timeout` (ms) passed and the executor was stopped. */
  timedOutMs?: number;
  /** A fatal stream or protocol error (bad frame, seq gap, wrong run_id …). */
  streamError?: string;
  /** The executor could not be spawned. */
  launchError?: string;
  /** Executor exit: code, or the signal that killed it. */
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  /** Terminal event seen: its type and (for run_error) its message. */
  terminal?: { type: 'run_complete' | 'run_error'; message?: string; errorType?: string };
  /** run_result frame's outcome, context only (the exit code wins). */
  resultMessage?: string;
  /** run_result frame's status; stands in for the exit code only when {@link killedAfterResultMs} is set. */
  resultStatus?: 'completed' | 'error' | 'crash';
  /**
   * The executor ended its frame stream cleanly after its terminal event and run_result, then had
   * not exited this many ms later and was killed: its exit code is lost, its result is not.
   */
  killedAfterResultMs?: number;
  /** The invocation's shared browser, which this run used, died before the run ended (SPEC §10). */
  browserLost?: string;
}

export interface Classified {
  outcome: RunOutcome;
  message: string;
  exitCode: number;
  /** For `script_error`: the run_error's `error_type`, or `timeout`. */
  errorType?: string;
}

/** Classifies a run. The executor's exit code is authoritative over `run_result` (SPEC §3). */
export function classify(o: Observation): Classified {
  if (o.interrupted) {
    return { outcome: 'interrupted', message: `interrupted by ${o.interrupted}`, exitCode: interruptedExitCode(o.interrupted) };
  }
  if (o.policyFailure !== undefined) return done('policy_failure', o.policyFailure);
  if (o.versionMismatch !== undefined) return done('version_mismatch', o.versionMismatch);
  if (o.timedOutMs !== undefined) {
    return { ...done('script_error', `timeout: the run took longer than --run-timeout ${formatMs(o.timedOutMs)} (hooks included) and was stopped`), errorType: 'timeout' };
  }
  if (o.launchError !== undefined) return done('executor_crash', `executor could not start: ${o.launchError}`);
  if (o.streamError !== undefined) return done('executor_crash', o.streamError);
  // A run that did not complete on a browser that died is a crash of the browser, not of the script.
  if (o.browserLost !== undefined && !(o.exitCode === EXECUTOR_EXIT.completed && o.terminal?.type === 'run_complete')) return done('executor_crash', o.browserLost);
  if (o.exitSignal && o.killedAfterResultMs !== undefined) {
    // Killed by us while slow to exit after a complete result (docs/contracts/run.md): the result and the
    // terminal event, when they agree, say what the exit code would have; otherwise it stays a crash.
    const slow = `the executor was still exiting ${formatMs(o.killedAfterResultMs)} after its result and was stopped`;
    if (o.resultStatus === 'completed' && o.terminal?.type === 'run_complete') return done('success', `run completed (${slow})`);
    if (o.resultStatus === 'error' && o.terminal?.type === 'run_error') return { ...scriptError(o), message: `${scriptMessage(o)} (${slow})` };
  }
  if (o.exitSignal) return done('executor_crash', `executor killed by ${o.exitSignal}`);
  switch (o.exitCode) {
    case EXECUTOR_EXIT.completed:
      if (o.terminal?.type === 'run_complete') return done('success', 'run completed');
      if (o.terminal?.type === 'run_error') return scriptError(o);
      return done('executor_crash', 'executor exited 0 without a terminal event');
    case EXECUTOR_EXIT.scriptError:
      return scriptError(o);
    case EXECUTOR_EXIT.crash:
      return done('executor_crash', `executor crashed${detail(o.resultMessage ?? o.terminal?.message)}`);
    case EXECUTOR_EXIT.invalidInput:
      return done('executor_crash', `executor rejected its input${detail(o.resultMessage ?? o.terminal?.message)}`);
    default:
      return done('executor_crash', `executor exited with unexpected code ${String(o.exitCode)}`);
  }
}

function scriptError(o: Observation): Classified {
  const c = done('script_error', scriptMessage(o));
  return o.terminal?.type === 'run_error' ? { ...c, errorType: o.terminal.errorType ?? 'script_error' } : c;
}

/** 90000 → "1m30s", 500 → "500ms": the way the flag is written. */
function formatMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  const rest = Math.round(s - m * 60);
  return rest ? `${m}m${rest}s` : `${m}m`;
}

function scriptMessage(o: Observation): string {
  const t = o.terminal;
  if (t?.type === 'run_error') return `${t.errorType ?? 'script_error'}: ${t.message ?? ''}`.trim();
  return `script error${detail(o.resultMessage)}`;
}

function detail(msg: string | undefined): string {
  return msg ? `: ${msg}` : '';
}

function done(outcome: Exclude<RunOutcome, 'interrupted'>, message: string): Classified {
  return { outcome, message, exitCode: OUTCOME_EXIT_CODES[outcome] };
}
