/**
 * Building and parsing the tree manifest (SPEC §8 run trees): built from
 * frontier-shaped records, refused while an item is unfinished, and parsed
 * strictly so the validator never judges a tree from a malformed list.
 */
import { describe, expect, it } from 'vitest';
import type { FrontierCounters, ItemRecord, TreeOptions } from '../../src/scheduler/frontier.js';
import { FrontierError } from '../../src/scheduler/frontier.js';
import { buildTreeManifest } from '../../src/scheduler/tree-manifest.js';
import { ManifestError } from '../../src/storage/manifest.js';
import { parseTreeManifest, serializeTreeManifest, treePartitions } from '../../src/storage/tree-manifest.js';

const OPTIONS: TreeOptions = { tree_id: 'T', max_depth: 2, max_runs: 50, parallel: 3, retries: 1, lease_ms: 30_000, run: {} };
const ROOT = { dataset: 'q', source: 'shop', category: 'default', day: '2024-06-10' };
const COUNTERS: FrontierCounters = { admitted: 2, succeeded: 1, failed: 1, retried: 0, deduplicated: 4, not_executed_cap: 3, not_executed_depth: 2, running: 0, queued: 0, requeued: 1 };
const TIMES = { started_at: '2024-06-10T00:00:00.000Z', finalized_at: '2024-06-10T01:00:00.000Z' };

function item(over: Partial<ItemRecord>): ItemRecord {
  return {
    key: '["list.ts",{}]', target: 'list.ts', params: {}, params_digest: 'a'.repeat(64), target_sha256: 'b'.repeat(64), depth: 0, parent_run_id: null,
    source: null, category: null, state: 'succeeded', reason: null, final_run_id: 'T', failures: 0,
    attempts: [{ run_id: 'T', attempt: 1, owner: 'o', leased_at: 1, outcome: 'success', partition: ROOT, finished_at: 2 }],
    ...over,
  };
}

const child = item({
  key: '["detail.ts",{"n":1}]', target: 'detail.ts', depth: 1, parent_run_id: 'T', category: 'detail', state: 'succeeded', final_run_id: 'C2',
  attempts: [
    { run_id: 'C1', attempt: 1, owner: 'o', leased_at: 1, outcome: 'expired', partition: null, finished_at: null },
    { run_id: 'C2', attempt: 2, owner: 'o', leased_at: 3, outcome: 'success', partition: { ...ROOT, category: 'detail' }, finished_at: 4 },
  ],
});

describe('buildTreeManifest', () => {
  it('lists every item with its attempts, a lost lease in the item\'s inherited partition, and the tree\'s options and counters', () => {
    const m = buildTreeManifest(OPTIONS, { partition: ROOT, job_id: 'T', allow_failed_children: 2 }, [item({}), child], COUNTERS, TIMES);
    expect(m).toMatchObject({ tree_id: 'T', dataset: 'q', job_id: 'T', options: { depth: 2, max_runs: 50, parallel: 3, allow_failed_children: 2, retries: 1 }, ...TIMES });
    expect(m.counters).toEqual({ admitted: 2, succeeded: 1, failed: 1, retried: 0, deduplicated: 4, not_executed_cap: 3, not_executed_depth: 2, requeued: 1 });
    expect(m.items[1]!.attempts).toEqual([
      { run_id: 'C1', attempt: 1, partition: { source: 'shop', category: 'detail', day: '2024-06-10' }, outcome: 'expired' },
      { run_id: 'C2', attempt: 2, partition: { source: 'shop', category: 'detail', day: '2024-06-10' }, outcome: 'success' },
    ]);
    expect(parseTreeManifest(serializeTreeManifest(m))).toEqual(m);
    expect(treePartitions(m).map((p) => p.category)).toEqual(['default', 'detail']);
  });

  it('refuses a tree with an item still queued or in flight, or an attempt without an outcome', () => {
    const ctx = { partition: ROOT, job_id: 'T', allow_failed_children: 0 };
    expect(() => buildTreeManifest(OPTIONS, ctx, [item({ state: 'leased' })], COUNTERS, TIMES)).toThrow(FrontierError);
    const open = item({ attempts: [{ run_id: 'T', attempt: 1, owner: 'o', leased_at: 1, outcome: null, partition: null, finished_at: null }] });
    expect(() => buildTreeManifest(OPTIONS, ctx, [open], COUNTERS, TIMES)).toThrow(/has no outcome yet/);
  });
});

describe('parseTreeManifest', () => {
  const good = buildTreeManifest(OPTIONS, { partition: ROOT, job_id: 'T', allow_failed_children: 0 }, [item({}), child], COUNTERS, TIMES);
  const bad = (mutate: (m: any) => void): string => {
    const m = JSON.parse(serializeTreeManifest(good)) as any;
    mutate(m);
    return JSON.stringify(m);
  };
  it.each([
    ['an unknown version', (m: any) => (m.tree_manifest_version = 2), /tree_manifest_version 2/],
    ['a final run that is not one of its attempts', (m: any) => (m.items[1].final_run_id = 'X'), /final_run_id X is not one of its attempts/],
    ['a key listed twice', (m: any) => (m.items[1].key = m.items[0].key), /repeats key/],
    ['a run listed twice', (m: any) => (m.items[1].attempts[0].run_id = 'T'), /listed as an attempt twice/],
    ['an unknown attempt outcome', (m: any) => (m.items[0].attempts[0].outcome = 'done'), /outcome "done"/],
    ['a bad partition day', (m: any) => (m.items[0].attempts[0].partition.day = '2024-13-01'), /not a calendar date/],
    ['a succeeded item without a final run', (m: any) => (m.items[0].final_run_id = null), /succeeded without a final run/],
    ['a negative counter', (m: any) => (m.counters.failed = -1), /counters.failed/],
    ['a finalized_at that is no instant', (m: any) => (m.finalized_at = 'soon'), /finalized_at "soon"/],
  ])('refuses %s with a message naming it', (_, mutate, re) => {
    expect(() => parseTreeManifest(bad(mutate))).toThrow(ManifestError);
    expect(() => parseTreeManifest(bad(mutate))).toThrow(re);
  });
});
