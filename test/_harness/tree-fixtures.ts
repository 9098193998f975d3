/**
 * Builds a finished fan-out tree in storage without a browser or a scheduler
 * (SPEC §8 run trees): each attempt is a real run partition written by
 * writeRunFixture (lineage: root_run_id = tree id, depth, parent, `fanout` on
 * the root), and the tree manifest is built from frontier-shaped records by
 * the real `buildTreeManifest` and published by the real `publishTreeManifest`.
 */
import type { ItemRecord, AttemptRecord, FrontierCounters } from '../../src/scheduler/frontier.js';
import { buildTreeManifest } from '../../src/scheduler/tree-manifest.js';
import type { StorageBackend } from '../../src/storage/backend.js';
import type { RunOutcome } from '../../src/storage/manifest.js';
import { publishTreeManifest, type PublishedTreeManifest, type TreeManifest } from '../../src/storage/tree-manifest.js';
import { writeRunFixture, type RunFixture } from './run-fixtures.js';

/** One attempt of an item. `finalize: false` leaves it without a manifest (a run that died). */
export interface AttemptSpec {
  run_id: string;
  outcome: RunOutcome | 'expired' | 'abandoned';
  finalize?: boolean;
  skipped?: boolean;
  items?: number;
}

/** One work item; the root is the item at depth 0. */
export interface ItemSpec {
  key: string;
  depth: number;
  parent_run_id?: string | null;
  category?: string;
  source?: string;
  /** No attempts and `not_found`: a missing target (a failed item with no run). */
  not_found?: boolean;
  attempts: AttemptSpec[];
}

/** A tree to build. */
export interface TreeSpec {
  tree_id: string;
  dataset?: string;
  source?: string;
  category?: string;
  day?: string;
  finalized_at: string;
  allow_failed_children?: number;
  items: ItemSpec[];
}

/** What was built. */
export interface TreeFixture {
  manifest: TreeManifest;
  published: PublishedTreeManifest;
  /** Every written run, by run id. */
  runs: Map<string, RunFixture>;
}

const LOST = new Set(['interrupted', 'expired', 'abandoned']);

/** Writes every attempt's run partition, then publishes the tree manifest (unless `publish` is false). */
export async function writeTreeFixture(storage: StorageBackend, spec: TreeSpec, publish = true): Promise<TreeFixture> {
  const dataset = spec.dataset ?? 'quarry';
  const root = { dataset, source: spec.source ?? 'shop', category: spec.category ?? 'default', day: spec.day ?? '2024-06-10' };
  const runs = new Map<string, RunFixture>();
  const records: ItemRecord[] = [];
  const finishedBase = Date.parse(spec.finalized_at) - 3_600_000;
  let n = 0;
  for (const it of spec.items) {
    const partition = { ...root, source: it.source ?? root.source, category: it.category ?? root.category };
    const attempts: AttemptRecord[] = [];
    let prev: string | null = null;
    for (const [i, a] of it.attempts.entries()) {
      n++;
      const finishedAt = new Date(finishedBase + n * 1000).toISOString();
      if ((a.outcome !== 'expired' && a.outcome !== 'abandoned') || a.finalize === true) {
        const parent = prev ?? it.parent_run_id ?? undefined;
        const f = await writeRunFixture(storage, {
          run_id: a.run_id, dataset, source: partition.source, category: partition.category, day: partition.day,
          outcome: a.outcome === 'expired' || a.outcome === 'abandoned' ? 'success' : a.outcome,
          root_run_id: spec.tree_id, depth: it.depth, attempt: i + 1, job_id: spec.tree_id,
          ...(parent !== undefined && parent !== null ? { parent_run_id: parent } : {}),
          ...(it.depth === 0 && i === 0 ? { fanout: true } : {}),
          ...(a.skipped === true ? { skipped: true } : {}),
          ...(a.items !== undefined ? { items: a.items } : {}),
          started_at: new Date(Date.parse(finishedAt) - 500).toISOString(), finalized_at: finishedAt,
          finalize: a.finalize !== false,
        });
        runs.set(a.run_id, f);
      }
      attempts.push({ run_id: a.run_id, attempt: i + 1, owner: 'fixture', leased_at: 0, outcome: a.outcome, partition: a.outcome === 'expired' || a.outcome === 'abandoned' ? null : partition, finished_at: 0 });
      prev = a.run_id;
    }
    const decisive = [...attempts].reverse().find((a) => a.outcome !== null && !LOST.has(a.outcome));
    const succeeded = decisive?.outcome === 'success';
    records.push({
      key: it.key, target: (JSON.parse(it.key) as [string])[0], params: {}, params_digest: 'd'.repeat(64),
      target_sha256: it.not_found === true ? null : 'e'.repeat(64), depth: it.depth, parent_run_id: it.parent_run_id ?? null,
      source: it.source ?? null, category: it.category ?? null,
      state: succeeded ? 'succeeded' : 'failed',
      reason: it.not_found === true ? 'target_not_found' : succeeded ? null : (decisive?.outcome ?? 'no run'),
      final_run_id: decisive?.run_id ?? null,
      failures: attempts.filter((a) => a.outcome !== null && a.outcome !== 'success' && !LOST.has(a.outcome)).length,
      attempts,
    });
  }
  const counters: FrontierCounters = {
    admitted: records.length, succeeded: records.filter((r) => r.state === 'succeeded').length, failed: records.filter((r) => r.state === 'failed').length,
    retried: 0, deduplicated: 0, not_executed_cap: 0, not_executed_depth: 0, running: 0, queued: 0, requeued: 0,
  };
  const manifest = buildTreeManifest(
    { tree_id: spec.tree_id, max_depth: 2, max_runs: 100, parallel: 2, retries: 1, lease_ms: 30_000, run: {} },
    { partition: root, job_id: spec.tree_id, allow_failed_children: spec.allow_failed_children ?? 0 },
    records,
    counters,
    { started_at: new Date(finishedBase).toISOString(), finalized_at: spec.finalized_at },
  );
  const published = publish ? await publishTreeManifest(storage, dataset, manifest) : { key: '', sha256: '', bytes: 0 };
  return { manifest, published, runs };
}
