/**
 * The part of a finalizing command (`run`, `retry`, `export`) that has not
 * started anything yet — opening storage and the ledger — has nothing to
 * flush or finalize, so a signal there stops it at once, as it stops a read
 * command (SPEC §5, §9), instead of waiting on an endpoint that may never answer.
 */

/** A signal arrived before the command started anything: exit 130 / 143 with one line. */
export class InterruptedBeforeStart extends Error {
  override readonly name = 'InterruptedBeforeStart';
  constructor(readonly signalName: 'SIGINT' | 'SIGTERM') {
    super(`interrupted by ${signalName}`);
  }

  /** 130 for SIGINT, 143 for SIGTERM. */
  get exitCode(): number {
    return this.signalName === 'SIGTERM' ? 143 : 130;
  }
}

/** The exit code of the signal that aborted `signal` (130 unless it was SIGTERM). */
export function signalExitCode(signal: AbortSignal): number {
  return signal.reason === 'SIGTERM' ? 143 : 130;
}

/**
 * Resolves as `work` does, or rejects with {@link InterruptedBeforeStart} as
 * soon as `signal` aborts. The abandoned work is left to the process's exit
 * (its late result or rejection is swallowed, never reported).
 */
export function beforeStart<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  const reason = (): InterruptedBeforeStart => new InterruptedBeforeStart(signal.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT');
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => undefined);
      reject(reason());
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
