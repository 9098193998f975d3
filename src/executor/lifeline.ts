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
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { pidIsDead } from '../runtime/owner-tag.js';

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
  /** Streams whose breaking (error or close) means nobody reads us: frames, stderr. More with `watchOutput`. */
  readonly outputs: readonly Writable[];
  /**
   * The runtime's pid (ours passes `QUARRY_RUNTIME_PID`). Given, the runtime
   * is also gone when that pid names no process, a zombie, or one exiting or
   * with a SIGKILL pending ({@link runtimeIsDying}), checked from the
   * first instant: a runtime that died while this process was still loading
   * (already reparented when the watch begins, so the parent pid no longer
   * changes) is seen at once. A wrapper between the runtime and us is fine.
   */
  readonly runtimePid?: number;
  /** Called once, with why the runtime is considered gone. */
  readonly onGone: (why: string) => void;
}

/**
 * Whether `pid` is gone or can run no more of its own code: no process, a
 * zombie, exiting (PF_EXITING in its flags) or a SIGKILL pending in its main
 * thread (field 31 of /proc/<pid>/stat). A SIGKILLed runtime shows the last
 * the moment it is sent, long before the kernel closes its pipes on a loaded
 * machine. Without /proc, only whether it is gone.
 */
export function runtimeIsDying(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return pidIsDead(pid);
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return f[0] === 'Z' || f[0] === 'X' || (Number(f[6]) & 0x4) !== 0 || (Number(f[28]) & 0x100) !== 0;
}

/** A running watch. */
export interface Lifeline {
  /** Also treats `out` breaking as the runtime's death (an output opened after the watch began). */
  watchOutput(out: Writable): void;
  stop(): void;
}

/**
 * Watches for the runtime's death until `stop()`; timers never keep the
 * process alive. A runtime already gone when the watch begins is reported on the
 * next turn of the event loop (never inside this call).
 */
export function watchRuntime(opts: LifelineOptions): Lifeline {
  let done = false;
  const gone = (why: string): void => {
    if (done) return;
    done = true;
    clearInterval(timer);
    opts.onGone(why);
  };
  const parent = process.ppid;
  const check = (): void => {
    if (process.ppid !== parent) gone(`parent process ${parent} is gone (reparented to ${process.ppid})`);
    else if (opts.runtimePid !== undefined && runtimeIsDying(opts.runtimePid)) gone(`runtime process ${opts.runtimePid} is gone`);
  };
  const timer = setInterval(check, PARENT_POLL_MS);
  timer.unref();
  setImmediate(check).unref();
  if (opts.stdinHeldOpen) {
    opts.stdin.once('end', () => gone('stdin closed: the runtime is gone'));
  }
  const watchOutput = (out: Writable): void => {
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET' || err.code === 'ERR_STREAM_DESTROYED') gone(`output broke (${err.code}): the runtime is gone`);
    });
  };
  for (const out of opts.outputs) watchOutput(out);
  return {
    watchOutput,
    stop() {
      done = true;
      clearInterval(timer);
    },
  };
}
