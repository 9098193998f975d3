/**
 * runTree (SPEC §10) over a three-level crawl of small scripts run by a
 * no-browser stand-in executor, one process per run: fan-out, dedup, depth,
 * the cap, --parallel measured from the executors' own log, children
 * starting while their parent runs, retries, missing targets, per-enqueue
 * category overrides, lineage, and an interrupted tree leaving its items
 * queued for resume.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FrontierLock } from '../../src/scheduler/frontier-lock.js';
import { SqliteFrontier } from '../../src/scheduler/sqlite-frontier.js';
import { frontierPaths } from '../../src/scheduler/state-dir.js';
import { runTree, type TreeConfig } from '../../src/scheduler/tree.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { REPO_ROOT } from '../_harness/cli.js';
import { peakFromLog } from '../_harness/crawl-log.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/crawl');
const EXECUTOR = join(REPO_ROOT, 'test/fixtures/executors/no-browser.mjs');

let dir: TempDir | undefined;
afterEach(async () => { await dir?.remove(); });

async function config(over: Partial<TreeConfig> & { job: TreeConfig['job'] }): Promise<{ cfg: TreeConfig; log: string; close: () => Promise<void> }> {
  dir = await makeTempDir('tree');
  const backend = await FsBackend.create(join(dir.path, 'data'));
  const log = join(dir.path, 'crawl.log');
  const cfg: TreeConfig = {
    scriptPath: join(SCRIPTS, 'listing.mjs'), scriptsRoot: SCRIPTS,
    partition: { dataset: 'shop', source: 'web', category: 'products', day: '2026-01-01' },
    policy: { name: 'strict' }, backend, depth: 2, maxRuns: 100, parallel: 3, retries: 1,
    stateDir: join(dir.path, 'state'), executorPath: EXECUTOR, env: { ...process.env, CRAWL_LOG: log },
    ...over,
  };
  return { cfg, log, close: () => backend.close() };
}

describe('runTree', { timeout: 180_000 }, () => {
  it('crawls listing → details → assets: each key once, retries, missing targets, overrides, lineage, parallel exact', async () => {
    const { cfg, log, close } = await config({ job: { pages: 8, missing: true, override: true, wait_for_child: true, hold: 3 } });
    try {
      const r = await runTree(cfg);
      expect(r.interrupted).toBe(false);
      // root + 8 details + the missing target + the overridden detail + 8 assets (page 4 never gets one; 1000 does).
      expect(r.counters).toMatchObject({ admitted: 19, succeeded: 17, failed: 2, retried: 2, deduplicated: 8, not_executed_cap: 0, not_executed_depth: 0, running: 0, queued: 0 });
      const root = r.runs.find((x) => x.run_id === r.tree_id);
      expect(root?.outcome).toBe('success');
      const byTarget = (t: string) => r.items.filter((i) => i.target === t);
      expect(byTarget('gone.mjs')).toEqual([expect.objectContaining({ state: 'failed', reason: 'target_not_found', attempts: [] })]);
      const p3 = byTarget('detail.mjs').find((i) => (i.params as { id: number }).id === 3)!;
      expect(p3.attempts.map((a) => a.outcome)).toEqual(['script_error', 'success']);
      expect(r.runs.find((x) => x.run_id === p3.attempts[1]!.run_id)?.parent_run_id).toBe(p3.attempts[0]!.run_id);
      expect(r.runs.find((x) => x.run_id === p3.attempts[0]!.run_id)?.parent_run_id).toBe(r.tree_id);
      const p4 = byTarget('detail.mjs').find((i) => (i.params as { id: number }).id === 4)!;
      expect(p4).toMatchObject({ state: 'failed', reason: 'script_error', final_run_id: p4.attempts[1]!.run_id });
      const special = byTarget('detail.mjs').find((i) => (i.params as { id: number }).id === 1000)!;
      expect(special.attempts[0]!.partition).toEqual({ dataset: 'shop', source: 'web', category: 'special', day: '2026-01-01' });
      // Every succeeded detail stored its item once.
      const detailItems = r.runs.filter((x) => x.outcome === 'success' && r.items.some((i) => i.target === 'detail.mjs' && i.final_run_id === x.run_id)).reduce((n, x) => n + x.items, 0);
      expect(detailItems).toBe(8);
      expect(peakFromLog(log)).toBe(3);
      // Children started while the root was still running.
      const lines = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' '));
      const rootEnd = Number(lines.find(([, w, id]) => w === 'end' && id === r.tree_id)![0]);
      expect(lines.some(([t, w, id]) => w === 'start' && id !== r.tree_id && Number(t) < rootEnd)).toBe(true);
      // Finalization was claimed by this invocation; the lock is free again.
      const f = SqliteFrontier.open(frontierPaths(cfg.stateDir, r.tree_id).db);
      expect(await f.claimFinalization()).toBe(false);
      await f.close();
      FrontierLock.acquire(frontierPaths(cfg.stateDir, r.tree_id).lock, process.pid).release();
    } finally {
      await close();
    }
  });

  it('admits exactly --max-runs items and stops at --depth, counting what it refused', async () => {
    const capped = await config({ job: { pages: 8 }, maxRuns: 5, retries: 0 });
    try {
      const r = await runTree(capped.cfg);
      // root + details 1-4; refused by the cap, each counted once: details 5-8 (offered twice) and
      // the assets of 1 and 2 (3 fails without retries before enqueueing, 4 always fails).
      expect(r.counters).toMatchObject({ admitted: 5, not_executed_cap: 6, deduplicated: 4 });
      expect(r.runs.length).toBe(5);
    } finally {
      await capped.close();
    }
    const shallow = await config({ job: { pages: 8 }, depth: 1, retries: 0 });
    try {
      const r = await runTree(shallow.cfg);
      // The assets of 1-3 and 5-8 refused by depth; 3 fails before enqueueing without retries.
      expect(r.counters).toMatchObject({ admitted: 9, not_executed_depth: 6, not_executed_cap: 0 });
      expect(r.items.some((i) => i.target === 'asset.mjs')).toBe(false);
    } finally {
      await shallow.close();
    }
  });

  it('an interrupted tree ends its runs as interrupted and leaves their items queued in the frontier', async () => {
    const ac = new AbortController();
    // Details hold their slot (hold 99 is never reached) so one is in flight when the root ends and the tree is aborted.
    const { cfg, close } = await config({ job: { pages: 8, hold: 99 }, signal: ac.signal, parallel: 2 });
    try {
      const r = await runTree({ ...cfg, onRun: () => ac.abort() });
      expect(r.interrupted).toBe(true);
      expect(r.counters.queued).toBeGreaterThan(0);
      expect(r.counters.running).toBe(0);
      // A run cut short is recorded interrupted and its item waits, unfinished, for resume.
      expect(r.items.some((i) => i.state === 'queued' && i.attempts.some((a) => a.outcome === 'interrupted'))).toBe(true);
      const f = SqliteFrontier.open(frontierPaths(cfg.stateDir, r.tree_id).db);
      expect(await f.claimFinalization()).toBe(false);
      await f.close();
    } finally {
      await close();
    }
  });
});
