/**
 * Starting the executor process (SPEC §3, §5). Kept apart from the supervisor
 * so `quarry run` can start the executor before it loads the rest of the
 * runtime, opens the ledger, binds and claims the run: node's start and the
 * executor's module loading then overlap that work. A started executor only
 * waits for its request line; the script is loaded and run after the request,
 * which is written after the claim, so nothing of a run happens before it is
 * claimed. An executor whose run never starts is ended with {@link StartedExecutor.dispose}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FRAME_FD, FRAME_FD_ENV } from '../protocol/frame-fd-offer.js';
import { executorCaEnv } from './extra-ca-certs.js';
import { Reaper, startReaper } from './reaper.js';

/**
 * Every executor this runtime starts, SIGKILLed by the reaper (reaper.ts) the moment the
 * runtime dies, with the process group of each of its children (a one-run executor's own
 * Chromium): an executor's own lifeline cannot act while Node loads its modules, and waits
 * for CPU on a loaded machine (SPEC §5).
 */
const executors = new Reaper();

/** The bundled executor entry, next to this file once compiled. */
export function defaultExecutorPath(): string {
  return fileURLToPath(new URL('../executor/main.js', import.meta.url));
}

/** How an executor process ended, filled in as it happens. */
export interface ExecutorState {
  /** The process was spawned (node's `spawn` event). */
  launched: boolean;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  /** A spawn error (no such binary, no memory). */
  error?: string;
}

/** An executor process, started and waiting for its request line on stdin. */
export interface StartedExecutor {
  /** Undefined when spawning threw; `launchError` says why. */
  readonly child: ChildProcess | undefined;
  readonly launchError?: string;
  readonly state: ExecutorState;
  /** Resolves when the process exited or failed to start. */
  readonly ended: Promise<void>;
  /** Set by the supervisor that runs it; a taken executor is the supervisor's to stop. */
  taken: boolean;
  /** Ends an executor whose run never started (closes stdin, then SIGKILL); resolves once it is gone. */
  dispose(): Promise<void>;
}

/**
 * Spawns `command args` with the runtime's environment (QUARRY_RUNTIME_PID:
 * stdin stays open until it exits, so its end means we died; the frame fd
 * offer, see frame-fd.ts) and pipes for stdin, stdout, stderr and frames.
 * Its output waits in the pipes until the supervisor reads it. A node
 * executor (`command` is this node) gets NODE_EXTRA_CA_CERTS without the
 * roots node bundles when that file is cached (extra-ca-certs.ts).
 */
export function startExecutor(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): StartedExecutor {
  const state: ExecutorState = { launched: false, exitCode: null, exitSignal: null };
  let child: ChildProcess;
  // The reaper first: a runtime killed just after this spawn (before the executor's `+` line) still
  // has the executor among its children when the reaper sees the SIGKILL (reaper.ts).
  startReaper();
  try {
    const base = command === process.execPath ? executorCaEnv(env) : env;
    child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], env: { ...base, QUARRY_RUNTIME_PID: String(process.pid), [FRAME_FD_ENV]: String(FRAME_FD) } });
  } catch (err) {
    return { child: undefined, launchError: (err as Error).message, state, ended: Promise.resolve(), taken: false, dispose: () => Promise.resolve() };
  }
  const pid = child.pid;
  if (pid !== undefined) executors.add({ pid });
  const ended = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      if (pid !== undefined) executors.remove({ pid });
      state.exitCode = code;
      state.exitSignal = signal;
      resolve();
    });
    child.once('error', (err) => {
      state.error = err.message;
      resolve();
    });
  });
  child.once('spawn', () => {
    state.launched = true;
  });
  child.stdin!.on('error', () => undefined); // EPIPE after the executor exits: acks are then moot.
  return {
    child,
    state,
    ended,
    taken: false,
    async dispose() {
      child.stdin!.destroy();
      child.kill('SIGKILL');
      await ended;
    },
  };
}

/**
 * The bundled executor for `script`, started ahead of its run, or undefined
 * when its entry is missing (the supervisor then reports that).
 */
export function startExecutorEarly(scriptPath: string): StartedExecutor | undefined {
  const entry = defaultExecutorPath();
  if (!existsSync(entry)) return undefined;
  return startExecutor(process.execPath, [entry, scriptPath]);
}

/**
 * The executor `quarry` started for a run before it parsed the run's flags (see {@link speculateExecutor}).
 * Kept on a global: the CLI's entry (`cli/main.ts`) starts it and the bundled program
 * (`cli/program.ts`, loaded after it) takes it, each with its own copy of this module.
 */
const SPECULATIVE = Symbol.for('quarry.speculativeExecutor');
const held = globalThis as { [SPECULATIVE]?: { scriptPath: string; started: StartedExecutor } | undefined };

/**
 * Starts the bundled executor for `scriptPath` as the very first thing a
 * `quarry run` does, before the run command's modules load: node's start
 * and the executor's loading then overlap all of the runtime's. The run
 * takes it with {@link takeSpeculativeExecutor} when its plan names the same
 * script and the default executor; any other outcome (a usage error, a dry
 * run, a tree) leaves it to {@link disposeSpeculativeExecutor}. It only
 * waits for its request line, so nothing of a run happens in it before the claim.
 */
export function speculateExecutor(scriptPath: string): void {
  if (held[SPECULATIVE]) return;
  const started = startExecutorEarly(scriptPath);
  if (started) held[SPECULATIVE] = { scriptPath, started };
}

/** The speculative executor when it was started for exactly `scriptPath`; it is then the caller's. */
export function takeSpeculativeExecutor(scriptPath: string): StartedExecutor | undefined {
  const s = held[SPECULATIVE];
  if (!s || s.scriptPath !== scriptPath) return undefined;
  held[SPECULATIVE] = undefined;
  return s.started;
}

/** Ends a speculative executor no run took; resolves once it is gone. */
export async function disposeSpeculativeExecutor(): Promise<void> {
  const s = held[SPECULATIVE];
  held[SPECULATIVE] = undefined;
  if (s && !s.started.taken) await s.started.dispose();
}
