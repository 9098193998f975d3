/**
 * `quarry worker` processes for the queue tests (SPEC §12): spawned from the
 * built CLI with stderr captured, stopped with SIGTERM (SIGKILL after 60 s: a
 * test failure, never a hang). Each test file builds the flags of its own
 * queue, storage and ledger and keeps the workers it started to stop them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { CLI } from './cli.js';

/** One `quarry worker` process. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** Its `quarry worker: run …` lines (one per run that ended). */
  runLines(): string[];
  /** Resolves with its exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<number | null>;
}

/** Spawns `quarry worker <args>` with `env` over this process's environment. */
export function spawnWorker(args: readonly string[], env: NodeJS.ProcessEnv): WorkerProcess {
  const child = spawn(process.execPath, [CLI, 'worker', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return {
    child, exited, stderr: () => err,
    runLines: () => err.split('\n').filter((l) => l.startsWith('quarry worker: run ')),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
}

/** Waits until `cond` holds, looking every `stepMs`. @throws Error naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean, ms: number, stepMs = 100): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
