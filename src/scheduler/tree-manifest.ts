/**
 * Builds the tree manifest (SPEC §8 run trees) from what the frontier holds
 * once a tree is done: its options, every admitted item with every attempt,
 * and its counters. Pure: the caller publishes it
 * (`publishTreeManifest` in storage/tree-manifest.ts) after
 * `Frontier.claimFinalization()` returned true.
 */
import { CONTRACT_VERSION } from '../protocol/envelope.js';
import type { LogicalPartition } from '../storage/layout.js';
import { TREE_MANIFEST_VERSION, type TreeAttempt, type TreeItem, type TreeManifest } from '../storage/tree-manifest.js';
import { FrontierError, type FrontierCounters, type ItemRecord, type TreeOptions } from './frontier.js';

/** What the tree manifest needs beyond the frontier's records. */
export interface TreeManifestContext {
  /** The root's logical partition: children inherit its dataset and day, and its source/category unless overridden. */
  partition: LogicalPartition;
  /** The tree's job id (every member's `job_id`). */
  job_id: string;
  /** `--allow-failed-children` (SPEC §8), stored so validation and retry keep it. */
  allow_failed_children: number;
}

/** When the tree started and when the scheduler finished it (ISO 8601 UTC). */
export interface TreeTimes {
  started_at: string;
  finalized_at: string;
}

/**
 * The tree manifest of a finished tree.
 * @throws FrontierError when an item is still queued or in flight, or an
 *   attempt has no outcome: a tree is published only once every item is final.
 */
export function buildTreeManifest(
  options: TreeOptions,
  context: TreeManifestContext,
  items: readonly ItemRecord[],
  counters: FrontierCounters,
  times: TreeTimes,
): TreeManifest {
  const root = context.partition;
  const out: TreeItem[] = items.map((it): TreeItem => {
    if (it.state !== 'succeeded' && it.state !== 'failed') {
      throw new FrontierError(`tree ${options.tree_id}: item ${JSON.stringify(it.key)} is still ${it.state}; a tree manifest lists final items only`);
    }
    // Every attempt of an item writes the same logical partition; a lost lease's attempt never reported one.
    const partition = { source: it.source ?? root.source, category: it.category ?? root.category, day: root.day };
    const attempts = it.attempts.map((a): TreeAttempt => {
      if (a.outcome === null) throw new FrontierError(`tree ${options.tree_id}: attempt ${a.run_id} of ${JSON.stringify(it.key)} has no outcome yet`);
      const p = a.partition === null ? partition : { source: a.partition.source, category: a.partition.category, day: a.partition.day };
      return { run_id: a.run_id, attempt: a.attempt, partition: p, outcome: a.outcome };
    });
    return {
      key: it.key,
      target: it.target,
      params_digest: it.params_digest,
      target_sha256: it.target_sha256,
      depth: it.depth,
      parent_run_id: it.parent_run_id,
      source: it.source,
      category: it.category,
      status: it.state,
      reason: it.reason,
      attempts,
      final_run_id: it.final_run_id,
    };
  });
  return {
    tree_manifest_version: TREE_MANIFEST_VERSION,
    contract_version: CONTRACT_VERSION,
    tree_id: options.tree_id,
    dataset: root.dataset,
    job_id: context.job_id,
    options: {
      depth: options.max_depth,
      max_runs: options.max_runs,
      parallel: options.parallel,
      allow_failed_children: context.allow_failed_children,
      retries: options.retries,
    },
    started_at: times.started_at,
    finalized_at: times.finalized_at,
    items: out,
    counters: {
      admitted: counters.admitted,
      succeeded: counters.succeeded,
      failed: counters.failed,
      retried: counters.retried,
      deduplicated: counters.deduplicated,
      not_executed_cap: counters.not_executed_cap,
      not_executed_depth: counters.not_executed_depth,
      requeued: counters.requeued,
    },
  };
}
