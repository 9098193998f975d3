/**
 * Timers of a run slot's runs (SPEC §10: each run as if it had its own
 * process). A script's leftover `setInterval` or `setTimeout` (one it never
 * cleared) must not fire during the next run in the same process, so while
 * slots are on, every timer made through the global functions or `node:timers`
 * is recorded with where it was made, and {@link RunTimers.sweep} clears, at
 * the end of each run and before the next, those still pending, except:
 *
 * - timers this executor's own modules made (the frame writer's flush, the
 *   lifeline): they belong to the process, not to a run;
 * - timers made inside {@link asProcessWork} (the shared browser's connection);
 * - unref'd timers made inside `node_modules`: a library's process-wide clock
 *   (undici keeps one timer for all its connections and re-arms it; cleared,
 *   it would never fire again). They keep nothing alive and belong to no run.
 *
 * The creator is found from a stack captured at creation (V8 formats it only
 * when read, which the sweep does for pending timers alone).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { syncBuiltinESMExports } from 'node:module';
import { fileURLToPath } from 'node:url';
import timersModule from 'node:timers';

type AnyTimer = NodeJS.Timeout | NodeJS.Immediate;

interface Made {
  readonly timer: AnyTimer;
  readonly kind: 'timeout' | 'immediate';
  /** Holds a stack captured at creation, formatted lazily. */
  readonly origin: { stack?: string };
}

/** This package's compiled tree (`dist/`, or `src/` under a TypeScript test runner). */
const OWN_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Stack frames kept per timer: enough to pass our wrapper and name the caller. */
const ORIGIN_FRAMES = 3;

/** The first stack frame's file, from a V8 stack string (the line after the message). */
function creatorFile(stack: string | undefined): string {
  const line = stack?.split('\n').find((l) => l.startsWith('    at ')) ?? '';
  const m = /\((.*?):\d+:\d+\)$/.exec(line) ?? /at (.*?):\d+:\d+$/.exec(line);
  const where = m?.[1] ?? '';
  return where.startsWith('file://') ? fileURLToPath(where.replace(/\?.*$/, '')) : where;
}

/** Whether a timer pending at a run's end is the run's to clear. */
function belongsToRun(made: Made): boolean {
  const file = creatorFile(made.origin.stack);
  if (file.startsWith(OWN_ROOT) && !file.includes('/node_modules/')) return false;
  const refed = typeof (made.timer as { hasRef?: () => boolean }).hasRef === 'function' ? made.timer.hasRef() : true;
  if (!refed && file.includes('/node_modules/')) return false;
  return true;
}

/** Set inside {@link asProcessWork}: timers made there belong to the process. */
const processWork = new AsyncLocalStorage<true>();

/**
 * Runs `fn` as the process's own work, not a run's: timers it (and everything
 * it awaits, e.g. a browser connection or a context prepared for the next run)
 * makes are never swept. Library code called from here (puppeteer) would
 * otherwise count as the run's and lose its timers between runs.
 */
export function asProcessWork<T>(fn: () => T): T {
  return processWork.run(true, fn);
}

/** Node marks a timer that fired (and was not re-armed) or was cleared as destroyed. */
const isDone = (t: AnyTimer): boolean => (t as unknown as { _destroyed?: boolean })._destroyed === true;

export class RunTimers {
  #made = new Set<Made>();
  #installed = false;

  /** Starts recording: wraps the global timer functions and `node:timers`'s. Once per process. */
  install(): void {
    if (this.#installed) return;
    this.#installed = true;
    const made = this.#made;
    const { setTimeout: rawTimeout, setInterval: rawInterval, setImmediate: rawImmediate } = globalThis;
    const record = <T extends AnyTimer>(timer: T, kind: Made['kind'], wrapper: (...a: never[]) => unknown): T => {
      if (processWork.getStore() === true) return timer;
      const origin: { stack?: string } = {};
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = ORIGIN_FRAMES;
      Error.captureStackTrace(origin, wrapper);
      Error.stackTraceLimit = limit;
      made.add({ timer, kind, origin });
      return timer;
    };
    // Properties such as setTimeout[util.promisify.custom] are kept by copying them over.
    const wrapped = {
      setTimeout: Object.assign(function setTimeout(this: unknown, ...args: Parameters<typeof rawTimeout>) {
        return record(rawTimeout.apply(this, args), 'timeout', wrapped.setTimeout);
      }, rawTimeout) as typeof rawTimeout,
      setInterval: Object.assign(function setInterval(this: unknown, ...args: Parameters<typeof rawInterval>) {
        return record(rawInterval.apply(this, args), 'timeout', wrapped.setInterval);
      }, rawInterval) as typeof rawInterval,
      setImmediate: Object.assign(function setImmediate(this: unknown, ...args: Parameters<typeof rawImmediate>) {
        return record(rawImmediate.apply(this, args), 'immediate', wrapped.setImmediate);
      }, rawImmediate) as typeof rawImmediate,
    };
    Object.assign(globalThis, wrapped);
    Object.assign(timersModule, wrapped);
    syncBuiltinESMExports();
  }

  /**
   * Clears every recorded timer still pending that belongs to a run (see the
   * module comment) and forgets the rest. Returns how many were cleared.
   */
  sweep(): number {
    let cleared = 0;
    for (const m of this.#made) {
      if (isDone(m.timer) || !belongsToRun(m)) continue;
      if (m.kind === 'immediate') clearImmediate(m.timer as NodeJS.Immediate);
      else clearTimeout(m.timer as NodeJS.Timeout);
      cleared++;
    }
    this.#made.clear();
    return cleared;
  }
}
