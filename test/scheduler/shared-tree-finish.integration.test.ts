/**
 * A tree on the Redis frontier is finished through the frontier port (SPEC
 * §10, §12): two workers crawl it, the one whose `claimFinalization()` is
 * true publishes the tree manifest from the Redis frontier and validates the
 * tree; finishing it again (a worker killed after publishing, then retried)
 * neither publishes nor validates a second time.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { finishedTreeFromOptions, finishTree } from '../../src/cli/commands/run-tree-finish.js';
import { openLedger } from '../../src/ledger/ledger.js';
import { RedisFrontier } from '../../src/scheduler/redis-frontier.js';
import { submitSharedTree, workSharedTree } from '../../src/scheduler/shared-tree.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { readTreeManifest } from '../../src/storage/tree-manifest.js';
import { REPO_ROOT } from '../_harness/cli.js';
import { ensureRedis, removeKeys, uniquePrefix } from '../_harness/redis.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/crawl');
const EXECUTOR = join(REPO_ROOT, 'test/fixtures/executors/no-browser.mjs');
const keyPrefix = uniquePrefix('shared-finish');
let dir: TempDir | undefined;
let url = '';
afterEach(async () => {
  if (url !== '') await removeKeys(url, keyPrefix);
  await dir?.remove();
});

describe('finishing a tree on the Redis frontier', () => {
  it('the claiming worker publishes and validates once, from the Redis frontier; a second finish only reads back', async () => {
    url = await ensureRedis();
    dir = await makeTempDir('shared-finish');
    const storage = join(dir.path, 'data');
    const backend = await FsBackend.create(storage);
    const ledger = await openLedger(join(dir.path, 'ledger.sqlite'));
    const treeId = `01FINISH${Math.random().toString(36).slice(2, 12).toUpperCase()}`;
    const partition = { dataset: 'shop', source: 'web', category: 'products', day: '2026-01-01' };
    const frontiers: RedisFrontier[] = [];
    try {
      const submitter = await RedisFrontier.create(url, {
        tree_id: treeId, max_depth: 2, max_runs: 100, parallel: 3, retries: 1, lease_ms: 3000,
        run: { script: 'listing.mjs', job: { pages: 4 }, partition, policy: { name: 'strict' }, job_id: 'nightly', allow_failed_children: 1 },
      }, { keyPrefix });
      frontiers.push(submitter);
      await submitSharedTree(submitter, SCRIPTS);
      const workers = await Promise.all([0, 1].map(() => RedisFrontier.open(url, treeId, { keyPrefix })));
      frontiers.push(...workers);
      const reports = await Promise.all(workers.map((f, i) => workSharedTree({
        owner: `w${i}`, scriptsRoot: SCRIPTS, backend, parallel: 2, executorPath: EXECUTOR, pollMs: 200, retryBackoffMs: () => 50,
      }, f)));
      const claimed = reports.filter((r) => r.finalization_claimed);
      expect(claimed).toHaveLength(1);
      expect(await readTreeManifest(backend, 'shop', treeId)).toBeUndefined();

      // The claimer finishes the tree from its own options and a fresh client of the Redis frontier.
      let opened = 0;
      const tree = finishedTreeFromOptions(await submitter.options(), storage);
      const openFrontier = async (): Promise<RedisFrontier> => {
        opened++;
        return RedisFrontier.open(url, treeId, { keyPrefix });
      };
      const first = await finishTree({ backend, ledger, tree, frontier: openFrontier });
      // Page 4 of the fixture always throws: one failed item, allowed by the stored allow_failed_children 1.
      expect(first).toMatchObject({ authoritative: true, exitCode: 0 });
      expect(opened).toBe(1);
      const manifest = await readTreeManifest(backend, 'shop', treeId);
      const counters = await submitter.counters();
      expect(manifest?.manifest.items).toHaveLength(counters.admitted);
      expect(manifest?.manifest.job_id).toBe('nightly');
      expect(manifest?.manifest.items.map((i) => i.key).sort()).toEqual((await submitter.items()).map((i) => i.key).sort());
      const validation = await ledger.getTree(treeId);
      expect(validation).toMatchObject({ valid: true, failures: 1, allowed: 1, items: counters.admitted });

      // Finishing again (say the claimer died after publishing and its finish is retried): nothing is rebuilt or re-validated.
      const again = await finishTree({ backend, ledger, tree, frontier: openFrontier });
      expect(again.authoritative).toBe(true);
      expect(opened).toBe(1);
      expect(await readTreeManifest(backend, 'shop', treeId)).toEqual(manifest);
      expect(await ledger.getTree(treeId)).toEqual(validation);
      // No other worker may claim the finalization afterwards.
      expect(await Promise.all(workers.map((f) => f.claimFinalization()))).toEqual([false, false]);
    } finally {
      for (const f of frontiers) await f.close();
      await ledger.close();
      await backend.close();
    }
  });
});
