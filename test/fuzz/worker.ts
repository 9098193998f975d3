/**
 * Runs one fuzz target inside a worker thread (started by run-in-worker.ts):
 * posts a heartbeat every 500 inputs and the result at the end, so the parent
 * can stop a worker stuck in a synchronous loop and say where it stopped.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fuzz } from './harness.js';
import { TARGETS } from './targets.js';

interface Job {
  target: string;
  seed: number;
  numRuns: number;
  perInputMs: number;
}

const job = workerData as Job & { entry: string };
const target = TARGETS[job.target];
if (target === undefined) throw new Error(`unknown fuzz target ${job.target}`);
const result = await fuzz(target, {
  seed: job.seed,
  numRuns: job.numRuns,
  perInputMs: job.perInputMs,
  progressEvery: 500,
  onProgress: (inputs) => parentPort!.postMessage({ progress: inputs }),
});
parentPort!.postMessage({ result });
