/**
 * Tree authority (SPEC §8 run trees) against real run partitions on the real
 * FsBackend and a real ledger: run by tree-authority.test.ts (SQLite) and
 * tree-authority.postgres.integration.test.ts (PostgreSQL), so both backends
 * keep the same rules. Trees are written by test/_harness/tree-fixtures.ts.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openConsumer } from '../../src/ledger/consumer.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { TreeNotFinalizedError, validateTree } from '../../src/ledger/tree-validator.js';
import { validatePending, validateRun } from '../../src/ledger/validator.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import type { LogicalPartition } from '../../src/storage/layout.js';
import type { StoredRecord } from '../../src/storage/records.js';
import { readTreeManifest } from '../../src/storage/tree-manifest.js';
import { writeRunFixture } from '../_harness/run-fixtures.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { writeTreeFixture, type ItemSpec } from '../_harness/tree-fixtures.js';

/** What a backend's test file gives the suite: a fresh ledger per test, a cleanup at the end. */
export interface TreeSuiteHarness {
  /** A fresh ledger for one test. */
  open(): Promise<Ledger>;
  /** Another connection to the ledger `open` gave last. */
  again(): Promise<Ledger>;
  cleanup(): Promise<void>;
}

const NOW = new Date('2024-06-11T00:00:00.000Z');
const opts = { now: () => NOW };

let seq = 0;
/** A dataset no other test (or earlier run of the suite on the same database) uses. */
const freshDataset = (): string => `tree-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

/** root → three details (one per item), all succeeding, in category `default` unless told. */
function crawl(tree: string, over: Partial<Record<'d1' | 'd2' | 'd3', Partial<ItemSpec>>> = {}): ItemSpec[] {
  const child = (k: 'd1' | 'd2' | 'd3'): ItemSpec => ({ key: `["detail.ts",{"p":"${k}"}]`, depth: 1, parent_run_id: tree, attempts: [{ run_id: `${tree}-${k}`, outcome: 'success' }], ...over[k] });
  return [{ key: '["listing.ts",{}]', depth: 0, attempts: [{ run_id: tree, outcome: 'success' }] }, child('d1'), child('d2'), child('d3')];
}

async function collect(it: AsyncIterable<StoredRecord>): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

/** Registers the suite for one ledger backend. */
export function treeAuthoritySuite(name: string, setup: () => Promise<TreeSuiteHarness>): void {
  describe(`tree authority: ${name}`, () => {
    let h: TreeSuiteHarness;
    let tmp: TempDir;
    let storage: FsBackend;
    let ledger: Ledger;
    let ds: string;
    const part = (category = 'default'): LogicalPartition => ({ dataset: ds, source: 'shop', category, day: '2024-06-10' });

    beforeAll(async () => {
      h = await setup();
    });
    afterAll(async () => {
      await h.cleanup();
    });
    beforeEach(async () => {
      tmp = await makeTempDir('tree-auth');
      storage = await FsBackend.create(tmp.path);
      ledger = await h.open();
      ds = freshDataset();
    });
    afterEach(async () => {
      await ledger.close();
      await storage.close();
      await tmp.remove();
    });

    it('a fan-out root is recorded but never promoted alone, by validateRun or validatePending', async () => {
      const root = await writeRunFixture(storage, { run_id: 'T1', dataset: ds, fanout: true });
      const v = await validateRun(storage, ledger, root.partition, opts);
      expect(v).toMatchObject({ status: 'valid', role: 'tree_member', promoted: false, partition_state: undefined });
      expect((await ledger.getRun('T1'))?.fanout).toBe(true);
      // A second root killed after it finalized, found only by the pending sweep.
      await writeRunFixture(storage, { run_id: 'T2', dataset: ds, fanout: true, finalized_at: '2024-06-10T05:00:00.000Z' });
      const p = await validatePending(storage, ledger, ds, opts);
      expect(p.validated.map((x) => [x.run_id, x.role, x.promoted])).toEqual([['T2', 'tree_member', false]]);
      expect(p.trees.validated).toEqual([]);
      expect(await ledger.getPartition(part())).toBeUndefined();
    });

    it('a tree with no failure passes with 0 allowed: each partition it wrote is at the tree, its manifest pinned', async () => {
      const t = await writeTreeFixture(storage, { tree_id: 'TA', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items: crawl('TA') });
      const v = await validateTree(storage, ledger, { dataset: ds, tree_id: 'TA' }, opts);
      expect(v).toMatchObject({ valid: true, authoritative: true, reason: 'promoted', exit_code: 0, failures: 0, allowed: 0, recorded: true, members_recorded: 4, next: null });
      expect(await ledger.getPartition(part())).toMatchObject({ status: 'success', current_run_id: 'TA', authority: 'tree', tree_manifest_sha256: t.published.sha256, last_run_id: 'TA' });
      expect(await ledger.getTree('TA')).toMatchObject({ valid: true, failures: 0, allowed: 0, items: 4, finalized_at: '2024-06-10T03:00:00.000Z', manifest_sha256: t.published.sha256 });
      const stored = await readTreeManifest(storage, ds, 'TA');
      expect(stored?.sha256).toBe(t.published.sha256);
    });

    it('one failed child: rejected with 0 allowed (exit 3, partition failed); the same failure passes with 2 allowed', async () => {
      const fail = { d2: { attempts: [{ run_id: 'TB-d2', outcome: 'script_error' as const }] } };
      await writeTreeFixture(storage, { tree_id: 'TB', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items: crawl('TB', fail) });
      const v = await validateTree(storage, ledger, { dataset: ds, tree_id: 'TB' }, opts);
      expect(v).toMatchObject({ valid: false, authoritative: false, reason: 'rejected', exit_code: 3, failures: 1, allowed: 0 });
      expect(v.failed_items).toEqual([{ key: '["detail.ts",{"p":"d2"}]', run_id: 'TB-d2', reason: expect.stringContaining('script_error') as unknown }]);
      expect(v.next).toContain('quarry inspect run TB');
      expect(await ledger.getPartition(part())).toMatchObject({ status: 'failed', current_run_id: null, authority: 'run', last_run_id: 'TB' });

      const ds2 = freshDataset();
      await writeTreeFixture(storage, { tree_id: 'TC', dataset: ds2, finalized_at: '2024-06-10T03:00:00.000Z', allow_failed_children: 2, items: crawl('TC', { d2: { attempts: [{ run_id: 'TC-d2', outcome: 'script_error' }] } }) });
      const ok = await validateTree(storage, ledger, { dataset: ds2, tree_id: 'TC' }, opts);
      expect(ok).toMatchObject({ valid: true, authoritative: true, reason: 'promoted', exit_code: 0, failures: 1, allowed: 2 });
      expect(await ledger.getPartition({ ...part(), dataset: ds2 })).toMatchObject({ status: 'success', current_run_id: 'TC', authority: 'tree' });
    });

    it('failures count by final attempt: a child that failed then succeeded counts 0, one that failed twice counts once, an interrupted attempt is never final', async () => {
      await writeTreeFixture(storage, {
        tree_id: 'TD', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', allow_failed_children: 1,
        items: crawl('TD', {
          d1: { attempts: [{ run_id: 'TD-d1a', outcome: 'script_error' }, { run_id: 'TD-d1b', outcome: 'success' }] },
          d2: { attempts: [{ run_id: 'TD-d2a', outcome: 'executor_crash' }, { run_id: 'TD-d2b', outcome: 'script_error' }] },
          d3: { attempts: [{ run_id: 'TD-d3a', outcome: 'interrupted' }, { run_id: 'TD-d3b', outcome: 'expired' }, { run_id: 'TD-d3c', outcome: 'success' }] },
        }),
      });
      const v = await validateTree(storage, ledger, { dataset: ds, tree_id: 'TD' }, opts);
      expect(v).toMatchObject({ valid: true, failures: 1, allowed: 1, reason: 'promoted' });
      expect(v.failed_items.map((f) => f.run_id)).toEqual(['TD-d2b']);
      // Every attempt with a manifest is in the history as a tree member, lineage kept; none promoted alone.
      const hist = await ledger.listRuns({ root_run_id: 'TD' });
      // (TD-d3b lost its lease and never wrote a manifest: nothing to record.)
      expect(hist.map((r) => r.run_id).sort()).toEqual(['TD', 'TD-d1a', 'TD-d1b', 'TD-d2a', 'TD-d2b', 'TD-d3a', 'TD-d3c']);
      expect((await ledger.getRun('TD-d1b'))?.parent_run_id).toBe('TD-d1a');
    });

    it('a missing target is a failed item with no run', async () => {
      const items = crawl('TE');
      items.push({ key: '["missing.ts",{"nul":"a\\u0000b"}]', depth: 1, parent_run_id: 'TE', not_found: true, attempts: [] });
      await writeTreeFixture(storage, { tree_id: 'TE', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items });
      const v = await validateTree(storage, ledger, { dataset: ds, tree_id: 'TE' }, opts);
      expect(v).toMatchObject({ valid: false, failures: 1, exit_code: 3 });
      expect(v.failed_items).toEqual([{ key: '["missing.ts",{"nul":"a\\u0000b"}]', run_id: null, reason: 'target_not_found' }]);
    });

    it('a later standalone run beats an older tree in one partition; an older tree validated late does not take it back', async () => {
      // Tree TF (03:00) in default and detail; standalone S-late (04:00) reprocesses default after it.
      await writeTreeFixture(storage, { tree_id: 'TF', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items: crawl('TF', { d1: { category: 'detail' } }) });
      expect((await validateTree(storage, ledger, { dataset: ds, tree_id: 'TF' }, opts)).reason).toBe('promoted');
      const late = await writeRunFixture(storage, { run_id: 'S-late', dataset: ds, finalized_at: '2024-06-10T04:00:00.000Z' });
      expect((await validateRun(storage, ledger, late.partition, opts)).promoted).toBe(true);
      expect(await ledger.getPartition(part())).toMatchObject({ current_run_id: 'S-late', authority: 'run', tree_manifest_sha256: null });
      expect(await ledger.getPartition(part('detail'))).toMatchObject({ current_run_id: 'TF', authority: 'tree' });
      // A standalone run finalized before the tree but validated after it does not beat the tree.
      const early = await writeRunFixture(storage, { run_id: 'S-early', dataset: ds, category: 'detail', finalized_at: '2024-06-10T02:00:00.000Z' });
      expect((await validateRun(storage, ledger, early.partition, opts)).promoted).toBe(false);
      expect(await ledger.getPartition(part('detail'))).toMatchObject({ current_run_id: 'TF', authority: 'tree' });

      // Now the other order: the standalone run (05:00) is validated first, an older tree (04:30) late.
      const ds2 = freshDataset();
      const s = await writeRunFixture(storage, { run_id: 'S-new', dataset: ds2, finalized_at: '2024-06-10T05:00:00.000Z' });
      await validateRun(storage, ledger, s.partition, opts);
      await writeTreeFixture(storage, { tree_id: 'TG', dataset: ds2, finalized_at: '2024-06-10T04:30:00.000Z', items: crawl('TG', { d1: { category: 'detail' } }) });
      const v = await validateTree(storage, ledger, { dataset: ds2, tree_id: 'TG' }, opts);
      expect(v).toMatchObject({ valid: true, authoritative: true, reason: 'promoted', exit_code: 0 });
      expect(v.partitions.map((p) => [p.category, p.outcome]).sort()).toEqual([['default', 'superseded'], ['detail', 'promoted']]);
      expect(await ledger.getPartition({ ...part(), dataset: ds2 })).toMatchObject({ current_run_id: 'S-new', authority: 'run' });
      expect(await ledger.getPartition({ ...part('detail'), dataset: ds2 })).toMatchObject({ current_run_id: 'TG', authority: 'tree' });
    });

    it('a tree whose every partition is held by later runs is superseded: valid, not authoritative, exit 0', async () => {
      const s = await writeRunFixture(storage, { run_id: 'S-x', dataset: ds, finalized_at: '2024-06-10T09:00:00.000Z' });
      await validateRun(storage, ledger, s.partition, opts);
      await writeTreeFixture(storage, { tree_id: 'TH', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items: crawl('TH') });
      const v = await validateTree(storage, ledger, { dataset: ds, tree_id: 'TH' }, opts);
      expect(v).toMatchObject({ valid: true, authoritative: false, reason: 'superseded', exit_code: 0 });
      expect(await ledger.getPartition(part())).toMatchObject({ current_run_id: 'S-x' });
    });

    it('read over a tree returns each readable member\'s records exactly once, ordered by (depth, run_id, seq); a category override partition reads its own members', async () => {
      await writeTreeFixture(storage, {
        tree_id: 'TI', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z',
        items: crawl('TI', {
          d1: { category: 'detail', attempts: [{ run_id: 'TI-d1', outcome: 'success', items: 2 }] },
          d2: { attempts: [{ run_id: 'TI-d2a', outcome: 'script_error' }, { run_id: 'TI-d2b', outcome: 'success', items: 1 }] },
          d3: { attempts: [{ run_id: 'TI-d3a', outcome: 'interrupted' }, { run_id: 'TI-d3b', outcome: 'success', items: 4 }] },
        }),
      });
      await validateTree(storage, ledger, { dataset: ds, tree_id: 'TI' }, opts);
      const consumer = openConsumer({ storage, ledger });
      const parts = await consumer.partitions({ dataset: ds });
      expect(parts.map((p) => [p.category, p.run_id, p.authority])).toEqual([['default', 'TI', 'tree'], ['detail', 'TI', 'tree']]);

      const opened = await consumer.open(part());
      expect(opened.members.map((m) => [m.run_id, m.depth])).toEqual([['TI', 0], ['TI-d2b', 1], ['TI-d3b', 1]]);
      const items = (await collect(consumer.records(part(), { eventTypes: ['item'] }))).map((r) => [r.run_id, 'seq' in r ? r.seq : 0]);
      // The root's 3 items, then each child by run id, each in seq order; the failed and interrupted attempts never read.
      expect(items.map(([run]) => run)).toEqual(['TI', 'TI', 'TI', 'TI-d2b', 'TI-d3b', 'TI-d3b', 'TI-d3b', 'TI-d3b']);
      for (let i = 1; i < items.length; i++) {
        if (items[i]![0] === items[i - 1]![0]) expect(items[i]![1] as number).toBeGreaterThan(items[i - 1]![1] as number);
      }
      const detail = await collect(consumer.records(part('detail'), { eventTypes: ['item'] }));
      expect(detail.map((r) => r.run_id)).toEqual(['TI-d1', 'TI-d1']);
    });

    it('validating a tree twice is idempotent: one tree validation, nothing written again, the same verdict', async () => {
      await writeTreeFixture(storage, { tree_id: 'TJ', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items: crawl('TJ', { d3: { attempts: [{ run_id: 'TJ-d3', outcome: 'policy_failure' }] } }), allow_failed_children: 1 });
      const first = await validateTree(storage, ledger, { dataset: ds, tree_id: 'TJ' }, opts);
      const before = await ledger.getPartition(part());
      const again = await validateTree(storage, ledger, { dataset: ds, tree_id: 'TJ' }, { now: () => new Date('2024-07-01T00:00:00.000Z') });
      expect(again).toMatchObject({ recorded: false, members_recorded: 0, valid: first.valid, reason: first.reason, failures: 1, allowed: 1, exit_code: first.exit_code });
      expect(again.row).toEqual(first.row);
      expect(await ledger.getPartition(part())).toEqual(before);
      expect(await ledger.recordedTreeIds(['TJ', 'nope'])).toEqual(new Set(['TJ']));
      // validate --pending finds nothing left to do.
      const p = await validatePending(storage, ledger, ds, opts);
      expect(p.trees).toEqual({ validated: [], errors: [], already_recorded: 1 });
    });

    it('two validators of one tree at once (separate connections): one records it, the other finds it recorded', async () => {
      await writeTreeFixture(storage, { tree_id: 'TM', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items: crawl('TM') });
      const other = await h.again();
      try {
        const both = await Promise.all([ledger, other].map((l) => validateTree(storage, l, { dataset: ds, tree_id: 'TM' }, opts)));
        expect(both.map((v) => v.recorded).sort()).toEqual([false, true]);
        expect(both.every((v) => v.reason === 'promoted' && v.valid)).toBe(true);
        expect(await ledger.getPartition(part())).toMatchObject({ current_run_id: 'TM', authority: 'tree', attempts: 1 });
        expect((await ledger.listRuns({ root_run_id: 'TM' })).length).toBe(4);
      } finally {
        await other.close();
      }
    });

    it('validatePending picks up a published, unvalidated tree after its runs, and refuses nothing silently', async () => {
      await writeTreeFixture(storage, { tree_id: 'TK', dataset: ds, finalized_at: '2024-06-10T03:00:00.000Z', items: crawl('TK') });
      // An unpublished tree (killed before its manifest): its root is recorded, nothing promoted.
      await writeTreeFixture(storage, { tree_id: 'TL', dataset: ds, category: 'other', finalized_at: '2024-06-10T04:00:00.000Z', items: crawl('TL') }, false);
      const p = await validatePending(storage, ledger, ds, opts);
      expect(p.validated.every((x) => !x.promoted)).toBe(true);
      expect(p.trees.validated.map((t) => [t.tree_id, t.reason])).toEqual([['TK', 'promoted']]);
      expect(await ledger.getPartition(part())).toMatchObject({ current_run_id: 'TK', authority: 'tree' });
      expect(await ledger.getPartition(part('other'))).toBeUndefined();
      await expect(validateTree(storage, ledger, { dataset: ds, tree_id: 'TL' }, opts)).rejects.toThrow(TreeNotFinalizedError);
    });
  });
}
