/**
 * Runs a fuzz target in a worker thread under a watchdog: a synchronous hang
 * cannot be interrupted in-process, so the parent terminates a worker that
 * sends no heartbeat for `stallMs` and reports it as a hang, with the seed and
 * the last input count, instead of hanging itself.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FuzzResult } from './harness.js';

export interface WorkerRunOptions {
  target: string;
  seed: number;
  numRuns: number;
  /** An input slower than this fails the property (default 1000 ms). */
  perInputMs?: number;
  /** No heartbeat for this long: the worker is stopped as hung (default 20 s). */
  stallMs?: number;
}

const BOOT = fileURLToPath(new URL('./boot.mjs', import.meta.url));
const ENTRY = new URL('./worker.ts', import.meta.url).href;

/**
 * Bounds for the CI samples, which share a 2-core machine with the rest of the
 * suite: a hang is still caught (no progress for a minute, one input past 15 s),
 * but a scheduling stall of a loaded machine is not taken for one. The
 * campaign (`npm run fuzz`) keeps the tight defaults.
 */
export const LOADED_MACHINE = { perInputMs: 15_000, stallMs: 60_000, testTimeoutMs: 600_000 } as const;

export function fuzzInWorker(o: WorkerRunOptions): Promise<FuzzResult> {
  const stallMs = o.stallMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const w = new Worker(BOOT, { workerData: { entry: ENTRY, target: o.target, seed: o.seed, numRuns: o.numRuns, perInputMs: o.perInputMs ?? 1_000 } });
    let inputs = 0;
    let done = false;
    let timer: NodeJS.Timeout;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        done = true;
        void w.terminate();
        reject(new Error(`fuzz target ${o.target} (seed ${o.seed}) hung: no progress for ${stallMs} ms after ${inputs} inputs`));
      }, stallMs);
    };
    arm();
    w.on('message', (m: { progress?: number; result?: FuzzResult }) => {
      if (m.progress !== undefined) {
        inputs = m.progress;
        arm();
      } else if (m.result !== undefined) {
        done = true;
        clearTimeout(timer);
        resolve(m.result);
        void w.terminate();
      }
    });
    w.on('error', (err) => {
      clearTimeout(timer);
      if (!done) reject(err);
      done = true;
    });
    w.on('exit', (code) => {
      clearTimeout(timer);
      if (!done) reject(new Error(`fuzz worker for ${o.target} exited with code ${code} before reporting`));
      done = true;
    });
  });
}
