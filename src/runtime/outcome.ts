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
}

export interface Classified {
  outcome: RunOutcome;
  message: string;
  exitCode: number;
}

/** Classifies a run. The executor's exit code is authoritative over `run_result` (SPEC §3). */
export function classify(o: Observation): Classified {
  if (o.interrupted) {
    return { outcome: 'interrupted', message: `interrupted by ${o.interrupted}`, exitCode: interruptedExitCode(o.interrupted) };
  }
  if (o.policyFailure !== undefined) return done('policy_failure', o.policyFailure);
  if (o.versionMismatch !== undefined) return done('version_mismatch', o.versionMismatch);
  if (o.launchError !== undefined) return done('executor_crash', `executor could not start: ${o.launchError}`);
  if (o.streamError !== undefined) return done('executor_crash', o.streamError);
  if (o.exitSignal) return done('executor_crash', `executor killed by ${o.exitSignal}`);
  switch (o.exitCode) {
    case EXECUTOR_EXIT.completed:
      if (o.terminal?.type === 'run_complete') return done('success', 'run completed');
      if (o.terminal?.type === 'run_error') return done('script_error', scriptMessage(o));
      return done('executor_crash', 'executor exited 0 without a terminal event');
    case EXECUTOR_EXIT.scriptError:
      return done('script_error', scriptMessage(o));
    case EXECUTOR_EXIT.crash:
      return done('executor_crash', `executor crashed${detail(o.resultMessage ?? o.terminal?.message)}`);
    case EXECUTOR_EXIT.invalidInput:
      return done('executor_crash', `executor rejected its input${detail(o.resultMessage ?? o.terminal?.message)}`);
    default:
      return done('executor_crash', `executor exited with unexpected code ${String(o.exitCode)}`);
  }
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
