/**
 * The executor's lifeline to its runtime (SPEC §5: a runtime that dies without
 * a word takes its executor and browser with it within a second).
 *
 * A runtime killed by SIGKILL or the OOM killer sends nothing; what the
 * executor sees is one of: its parent pid changes (it was reparented), stdin
 * reaches end of stream while the runtime promised to hold it open, or the
 * frame output or stderr breaks (EPIPE: nobody reads any more). Any of them
 * calls `onGone` once; the caller then kills its browser and exits at once,
 * since there is nobody left to report to.
 */
import type { Readable, Writable } from 'node:stream';

/** How often the parent pid is checked (the "within a second" budget). */
export const PARENT_POLL_MS = 100;

export interface LifelineOptions {
  /** The executor's stdin. */
  readonly stdin: Readable;
  /**
   * True when the runtime holds stdin open until the executor exits (ours sets
   * `QUARRY_RUNTIME_PID`), so end of stdin means it died. A caller that may
   * close stdin early (a test harness, `echo … |`) leaves this false.
   */
  readonly stdinHeldOpen: boolean;
  /** Streams whose breaking (error or close) means nobody reads us: frames, stderr. */
  readonly outputs: readonly Writable[];
  /** Called once, with why the runtime is considered gone. */
  readonly onGone: (why: string) => void;
}

/** Watches for the runtime's death until `stop()`; timers never keep the process alive. */
export function watchRuntime(opts: LifelineOptions): { stop(): void } {
  let done = false;
  const gone = (why: string): void => {
    if (done) return;
    done = true;
    clearInterval(timer);
    opts.onGone(why);
  };
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) gone(`parent process ${parent} is gone (reparented to ${process.ppid})`);
  }, PARENT_POLL_MS);
  timer.unref();
  if (opts.stdinHeldOpen) {
    opts.stdin.once('end', () => gone('stdin closed: the runtime is gone'));
  }
  for (const out of opts.outputs) {
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET' || err.code === 'ERR_STREAM_DESTROYED') gone(`output broke (${err.code}): the runtime is gone`);
    });
  }
  return {
    stop() {
      done = true;
      clearInterval(timer);
    },
  };
}
