/**
 * The embedded frontier under real concurrency (SPEC §10): one tree file
 * crawled at once by clients in worker threads and in separate processes,
 * each its own SQLite connection, on the wall clock. The synthetic tree
 * (each page enqueues three children and itself) is far larger than the cap,
 * so the cap, dedup, the parallel bound and the one finalization are all
 * contended.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteFrontier } from '../../src/scheduler/sqlite-frontier.js';
import { frontierPaths } from '../../src/scheduler/state-dir.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { page, treeOptions } from './frontier-conformance.js';

const CLIENT = fileURLToPath(new URL('./fixtures/frontier-client.mjs', import.meta.url));
const run = promisify(execFile);
const MAX_RUNS = 150;
const PARALLEL = 4;

interface ClientResult { owner: string; admitted: string[]; completions: number; claimed: boolean }

let dir: TempDir | undefined;
afterEach(async () => { await dir?.remove(); });

async function startTree(): Promise<{ path: string; rootKey: string }> {
  dir = await makeTempDir('frontier-conc');
  const opts = treeOptions({ max_runs: MAX_RUNS, max_depth: 6, parallel: PARALLEL, retries: 1, lease_ms: 60_000 });
  const path = frontierPaths(dir.path, opts.tree_id).db;
  const f = SqliteFrontier.create(path, opts);
  const root = page(0, 0);
  expect(await f.admit([root])).toEqual(['admitted']);
  await f.close();
  return { path, rootKey: root.key };
}

async function checkTree(path: string, rootKey: string, results: ClientResult[]): Promise<void> {
  const keys = [rootKey, ...results.flatMap((r) => r.admitted)];
  expect(new Set(keys).size).toBe(keys.length);
  expect(keys.length).toBe(MAX_RUNS);
  expect(results.filter((r) => r.claimed).length).toBe(1);
  const f = SqliteFrontier.open(path);
  try {
    const items = await f.items();
    expect(items.map((i) => i.key).sort()).toEqual([...keys].sort());
    expect(items.every((i) => i.state === 'succeeded')).toBe(true);
    const sevens = items.filter((i) => (i.params as { page: number }).page % 7 === 0);
    for (const i of sevens) expect(i.attempts.map((a) => a.outcome)).toEqual(['script_error', 'success']);
    expect(results.reduce((n, r) => n + r.completions, 0)).toBe(MAX_RUNS + sevens.length);
    const c = await f.counters();
    expect(c).toMatchObject({ admitted: MAX_RUNS, succeeded: MAX_RUNS, failed: 0, retried: sevens.length, running: 0, queued: 0 });
    expect(c.not_executed_cap).toBeGreaterThan(0);
    expect(c.deduplicated).toBeGreaterThanOrEqual(MAX_RUNS);
  } finally {
    await f.close();
  }
}

describe('sqlite frontier with concurrent clients', () => {
  it('worker threads: each key admitted once, the cap exact, parallel never exceeded, finalization claimed once', async () => {
    const { path, rootKey } = await startTree();
    const shared = new SharedArrayBuffer(8);
    const startAt = Date.now() + 500;
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => new Promise<ClientResult>((resolve, reject) => {
      const w = new Worker(CLIENT, { workerData: { path, owner: `thread-${i}`, startAt, shared } });
      w.once('message', (m: ClientResult) => resolve(m));
      w.once('error', reject);
      w.once('exit', (code) => { if (code !== 0) reject(new Error(`worker exited ${code}`)); });
    })));
    await checkTree(path, rootKey, results);
    const peak = new Int32Array(shared)[1]!;
    expect(peak).toBeLessThanOrEqual(PARALLEL);
    expect(peak).toBeGreaterThan(1);
  });

  it('separate processes on one file: each key admitted once, the cap exact, finalization claimed once', async () => {
    const { path, rootKey } = await startTree();
    const startAt = Date.now() + 1500;
    const results = await Promise.all(Array.from({ length: 3 }, async (_, i) => {
      const { stdout } = await run(process.execPath, [CLIENT, JSON.stringify({ path, owner: `process-${i}`, startAt })], { timeout: 60_000 });
      return JSON.parse(stdout) as ClientResult;
    }));
    await checkTree(path, rootKey, results);
  });
});
