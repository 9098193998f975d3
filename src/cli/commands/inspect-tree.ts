/**
 * The tree part of `inspect run <tree_id>` (SPEC §10 report, §8 run trees):
 * the published tree manifest (options, counters, every item with its
 * attempts), what the ledger recorded of the tree (its validation), and the
 * authority of each partition the tree wrote in. Read-only.
 */
import type { LedgerReader } from '../../ledger/ledger.js';
import type { StorageBackend } from '../../storage/backend.js';
import { readTreeManifest, treePartitions, type TreeCounters, type TreeItemStatus, type TreeManifestOptions } from '../../storage/tree-manifest.js';

/** One item as `inspect run <tree_id>` shows it. */
export interface TreeItemView {
  key: string;
  target: string;
  depth: number;
  parent_run_id: string | null;
  partition: string | null;
  status: TreeItemStatus;
  reason: string | null;
  final_run_id: string | null;
  attempts: Array<{ run_id: string; attempt: number; outcome: string }>;
}

/** A partition the tree wrote in, and who holds it now. */
export interface TreePartitionView {
  source: string;
  category: string;
  day: string;
  status: string;
  current_run_id: string | null;
  authority: string | null;
  /** The tree is this partition's authority now. */
  authoritative: boolean;
}

/** The tree block of `inspect run`. */
export interface TreeView {
  tree_id: string;
  published: boolean;
  note?: string;
  manifest_sha256?: string;
  started_at?: string;
  finalized_at?: string;
  options?: TreeManifestOptions;
  counters?: TreeCounters;
  /** What the ledger recorded; null when there is no ledger or the tree was never validated. */
  validation?: {
    valid: boolean;
    failures: number;
    allowed: number;
    reason: string | null;
    failed_items: Array<{ key: string; run_id: string | null; reason: string }>;
    validated_at: string;
    /** False when the published manifest is not the one validated (storage changed). */
    manifest_matches: boolean;
  } | null;
  partitions?: TreePartitionView[];
  items?: TreeItemView[];
}

/**
 * The tree rooted at `runId`, or undefined when `runId` is not a tree's id
 * (no tree manifest and no `fanout` claim). A fan-out root without a manifest
 * is shown as an unfinished tree.
 */
export async function inspectTreeView(backend: StorageBackend, dataset: string, runId: string, fanout: boolean, ledger: LedgerReader | null): Promise<TreeView | undefined> {
  const stored = await readTreeManifest(backend, dataset, runId);
  if (stored === undefined) {
    if (!fanout) return undefined;
    return { tree_id: runId, published: false, note: `the tree has no manifest yet: it is still running or was interrupted (quarry run --resume ${runId} continues it)` };
  }
  const m = stored.manifest;
  const v = ledger === null ? undefined : await ledger.getTree(runId);
  const partitions: TreePartitionView[] = [];
  for (const p of treePartitions(m)) {
    const state = ledger === null ? undefined : await ledger.getPartition({ dataset, ...p });
    partitions.push({
      ...p,
      status: state?.status ?? 'pending',
      current_run_id: state?.current_run_id ?? null,
      authority: state?.authority ?? null,
      authoritative: state?.current_run_id === runId && state.authority === 'tree',
    });
  }
  return {
    tree_id: m.tree_id,
    published: true,
    manifest_sha256: stored.sha256,
    started_at: m.started_at,
    finalized_at: m.finalized_at,
    options: m.options,
    counters: m.counters,
    validation: v === undefined ? null : {
      valid: v.valid, failures: v.failures, allowed: v.allowed, reason: v.reason, failed_items: v.failed_items,
      validated_at: v.validated_at, manifest_matches: v.manifest_sha256 === stored.sha256,
    },
    partitions,
    items: m.items.map((it) => {
      const p = it.attempts[0]?.partition;
      return {
        key: it.key, target: it.target, depth: it.depth, parent_run_id: it.parent_run_id,
        partition: p === undefined ? null : `${p.source}/${p.category}/${p.day}`,
        status: it.status, reason: it.reason, final_run_id: it.final_run_id,
        attempts: it.attempts.map((a) => ({ run_id: a.run_id, attempt: a.attempt, outcome: a.outcome })),
      };
    }),
  };
}
