/**
 * Shared trees (SPEC §12) over the Redis frontier: three workers, each its
 * own Redis connection, run one tree of no-browser scripts (one executor
 * process per run). The tree's --parallel holds across workers (measured from
 * the executors' own log), an owner that stops renewing loses its lease to a
 * live worker within seconds, finalization goes to exactly one worker, and a
 * worker whose script differs from the submitted one fails that run.
 */
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { TreeOptions } from '../../src/scheduler/frontier.js';
import { RedisFrontier } from '../../src/scheduler/redis-frontier.js';
import { submitSharedTree, workSharedTree, type SharedTreeWorker } from '../../src/scheduler/shared-tree.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { REPO_ROOT } from '../_harness/cli.js';
import { ensureRedis, removeKeys, uniquePrefix } from '../_harness/redis.js';
import { peakFromLog } from '../_harness/crawl-log.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/crawl');
const EXECUTOR = join(REPO_ROOT, 'test/fixtures/executors/no-browser.mjs');
const LEASE_MS = 3000;

let dir: TempDir | undefined;
let url = '';
const keyPrefix = uniquePrefix('shared-tree');
const open: RedisFrontier[] = [];
afterEach(async () => {
  for (const f of open.splice(0)) await f.close();
  if (url !== '') await removeKeys(url, keyPrefix);
  await dir?.remove();
});

function treeOptions(job: Record<string, unknown>, over: Partial<TreeOptions> = {}): TreeOptions {
  return {
    tree_id: `01SHARED${Math.random().toString(36).slice(2, 12).toUpperCase()}`,
    max_depth: 2, max_runs: 100, parallel: 3, retries: 1, lease_ms: LEASE_MS,
    run: { script: 'listing.mjs', job: job as never, partition: { dataset: 'shop', source: 'web', category: 'products', day: '2026-01-01' }, policy: { name: 'strict' } },
    ...over,
  };
}

async function clients(treeId: string, n: number): Promise<RedisFrontier[]> {
  const made = await Promise.all(Array.from({ length: n }, () => RedisFrontier.open(url, treeId, { keyPrefix })));
  open.push(...made);
  return made;
}

describe('shared trees on the Redis frontier', { timeout: 240_000 }, () => {
  it('three workers crawl one tree: parallel held across them, a silent owner\'s lease re-run, one finalization', async () => {
    url = await ensureRedis();
    dir = await makeTempDir('shared-tree');
    const log = join(dir.path, 'crawl.log');
    const backend = await FsBackend.create(join(dir.path, 'data'));
    try {
      const opts = treeOptions({ pages: 6, hold: 3 });
      const submitter = await RedisFrontier.create(url, opts, { keyPrefix });
      open.push(submitter);
      await submitSharedTree(submitter, SCRIPTS);
      // A worker that leased the root and died: it never renews, so the lease expires and another worker re-runs it.
      const [ghost] = await submitter.lease('dead-worker', 1);
      expect(ghost!.run_id).toBe(opts.tree_id);
      const stderr: string[] = [];
      const worker = (i: number): SharedTreeWorker => ({
        owner: `worker-${i}`, scriptsRoot: SCRIPTS, backend, parallel: 2, executorPath: EXECUTOR, pollMs: 200,
        env: { ...process.env, CRAWL_LOG: log }, retryBackoffMs: () => 50, onStderr: (c) => stderr.push(c.toString()),
      });
      const frontiers = await clients(opts.tree_id, 3);
      const reports = await Promise.all(frontiers.map((f, i) => workSharedTree(worker(i), f)));

      // root + 6 details + 5 assets (page 4 always throws, so it enqueues none); page 3 passes on its retry.
      const c = await submitter.counters();
      expect(c).toMatchObject({ admitted: 12, succeeded: 11, failed: 1, retried: 2, deduplicated: 6, running: 0, queued: 0, requeued: 1 });
      expect(reports.filter((r) => r.finalization_claimed).length).toBe(1);
      expect(reports.every((r) => !r.interrupted)).toBe(true);
      // Three slots in the tree, six among the workers: the frontier's bound is what held.
      expect(peakFromLog(log)).toBe(3);
      const runIds = reports.flatMap((r) => r.runs.map((x) => x.run_id));
      expect(new Set(runIds).size).toBe(runIds.length);
      expect(runIds.length).toBe(14);
      expect(reports.filter((r) => r.runs.length > 0).length).toBeGreaterThan(1);
      const items = await submitter.items();
      const root = items.find((i) => i.depth === 0)!;
      expect(root.attempts.map((a) => [a.owner, a.outcome])).toEqual([['dead-worker', 'expired'], [expect.stringMatching(/^worker-/), 'success']]);
      expect(root.final_run_id).toBe(root.attempts[1]!.run_id);
      expect(stderr.join('')).not.toMatch(/SHA-256/);
    } finally {
      await backend.close();
    }
  });

  it('re-runs a SIGKILLed worker process\'s runs on a live worker within seconds, and the tree completes', async () => {
    url = await ensureRedis();
    dir = await makeTempDir('shared-tree');
    const log = join(dir.path, 'crawl.log');
    writeFileSync(log, '');
    const storage = join(dir.path, 'data');
    const backend = await FsBackend.create(storage);
    try {
      // Each detail page holds its run for 5 s (99 never run at once), so the kill lands mid-run.
      // Tree parallel 6: the survivor's slots are free for the lost items as soon as their leases expire.
      const opts = treeOptions({ pages: 8, hold: 99 }, { parallel: 6 });
      const submitter = await RedisFrontier.create(url, opts, { keyPrefix });
      open.push(submitter);
      await submitSharedTree(submitter, SCRIPTS);
      const args = { url, keyPrefix, treeId: opts.tree_id, scriptsRoot: SCRIPTS, storage, owner: 'doomed', slots: 3, executor: EXECUTOR, log };
      const doomed = spawn(process.execPath, [join(REPO_ROOT, 'test/scheduler/fixtures/shared-worker.mjs'), JSON.stringify(args)], { detached: true, stdio: 'ignore' });
      const exited = new Promise<void>((r) => doomed.once('exit', () => r()));
      // Kill once the doomed worker has the root and two detail pages started (read from the executors' log).
      const until = Date.now() + 120_000;
      while ((readFileSync(log, 'utf8').match(/ start /g) ?? []).length < 3) {
        if (Date.now() > until || doomed.exitCode !== null) throw new Error(`the doomed worker never started 3 runs:\n${readFileSync(log, 'utf8')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      process.kill(-doomed.pid!, 'SIGKILL');
      const killedAt = Date.now();
      await exited;
      const [f] = await clients(opts.tree_id, 1);
      const r = await workSharedTree({ owner: 'survivor', scriptsRoot: SCRIPTS, backend, parallel: 6, executorPath: EXECUTOR, pollMs: 200, retryBackoffMs: () => 50, env: { ...process.env, CRAWL_LOG: log } }, f!);

      // root + 8 details + 7 assets (page 4 always fails and enqueues none).
      expect(r.counters).toMatchObject({ admitted: 16, succeeded: 15, failed: 1, running: 0, queued: 0 });
      expect(r.finalization_claimed).toBe(true);
      const lost = r.items.filter((i) => i.attempts.some((a) => a.owner === 'doomed' && a.outcome === 'expired'));
      expect(lost.length).toBeGreaterThanOrEqual(1);
      for (const item of lost) {
        const i = item.attempts.findIndex((a) => a.owner === 'doomed' && a.outcome === 'expired');
        const next = item.attempts[i + 1]!;
        // Re-run as a new run (attempt + 1) by the live worker, within 10 s of the kill (lease_ms is 3 s).
        expect(next).toMatchObject({ owner: 'survivor', attempt: item.attempts[i]!.attempt + 1 });
        expect(next.run_id).not.toBe(item.attempts[i]!.run_id);
        expect(next.leased_at - killedAt).toBeLessThan(10_000);
      }
      // Nothing the dead worker left in flight decides an item.
      const deadRuns = new Set(r.items.flatMap((i) => i.attempts.filter((a) => a.owner === 'doomed' && a.outcome === 'expired').map((a) => a.run_id)));
      expect(r.items.filter((i) => i.final_run_id !== null && deadRuns.has(i.final_run_id))).toEqual([]);
    } finally {
      await backend.close();
    }
  });

  it('fails, with one line, a run whose script on the worker differs from the one submitted', async () => {
    url = await ensureRedis();
    dir = await makeTempDir('shared-tree');
    const backend = await FsBackend.create(join(dir.path, 'data'));
    try {
      const opts = treeOptions({ pages: 1 }, { retries: 0 });
      const submitter = await RedisFrontier.create(url, opts, { keyPrefix });
      open.push(submitter);
      await submitSharedTree(submitter, SCRIPTS);
      // The worker's copy of the scripts has an edited root script.
      const theirs = join(dir.path, 'scripts');
      cpSync(SCRIPTS, theirs, { recursive: true });
      writeFileSync(join(theirs, 'listing.mjs'), `${readFileSync(join(theirs, 'listing.mjs'), 'utf8')}\n// edited\n`);
      const stderr: string[] = [];
      const [f] = await clients(opts.tree_id, 1);
      const r = await workSharedTree({ scriptsRoot: theirs, backend, parallel: 1, executorPath: EXECUTOR, onStderr: (c) => stderr.push(c.toString()) }, f!);
      expect(r.runs).toEqual([]);
      expect(r.counters).toMatchObject({ admitted: 1, failed: 1, succeeded: 0 });
      expect(r.items[0]).toMatchObject({ state: 'failed', reason: 'script_error' });
      const lines = stderr.join('').trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^quarry: run ${opts.tree_id} of listing\\.mjs failed: its script .*listing\\.mjs has SHA-256 [0-9a-f]{64}, not the [0-9a-f]{64} submitted; deploy the same scripts to every worker$`));
    } finally {
      await backend.close();
    }
  });
});
