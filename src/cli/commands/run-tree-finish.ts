/**
 * The end of a tree invocation (SPEC §8): publish the tree manifest, then
 * validate the tree as one. Idempotent across kills: a manifest already
 * published is read back and only validated; a tree already validated is
 * only read back (the ledger holds one validation per tree).
 */
import type { Ledger } from '../../ledger/ledger.js';
import { validateTree, type TreeValidation } from '../../ledger/tree-validator.js';
import { buildTreeManifest } from '../../scheduler/tree-manifest.js';
import { SqliteFrontier } from '../../scheduler/sqlite-frontier.js';
import type { FrontierPaths } from '../../scheduler/state-dir.js';
import type { TreeReport } from '../../scheduler/tree.js';
import type { StorageBackend } from '../../storage/backend.js';
import { treeManifestKey } from '../../storage/layout.js';
import { publishTreeManifest, readTreeManifest } from '../../storage/tree-manifest.js';
import type { TreeInvocation } from './run-tree.js';
import { reachKillPoint } from '../../runtime/kill-point.js';

/** Whether the tree became authoritative, and the ledger line to print. */
export interface TreeAuthority {
  authoritative: boolean;
  reason: string;
  next: string | null;
  /** The ledger line of the summary. */
  line: string;
  /** Storage key of the tree manifest, once published. */
  manifestKey?: string;
  /** 0 when the tree's data is settled (promoted, superseded by a later instant, skipped); 3 otherwise (SPEC §8). */
  exitCode: 0 | 3;
  /** The outbox row the validation inserted (SPEC §11); absent: none. */
  notificationId?: string;
}

/** The first failed items, named: what to look at first. */
function failedList(v: TreeValidation): string {
  if (v.failed_items.length === 0) return '';
  const shown = v.failed_items.slice(0, 3).map((f) => `${f.key} ${f.reason}`).join(', ');
  return `: ${shown}${v.failed_items.length > 3 ? `, and ${v.failed_items.length - 3} more` : ''}`;
}

/** What {@link finishTree} needs. */
export interface FinishContext {
  backend: StorageBackend;
  ledger: Ledger;
  inv: TreeInvocation;
  result: TreeReport;
  paths: FrontierPaths;
}

/**
 * Publishes the tree manifest (unless it is there already) and validates the
 * tree. Called holding the tree's lock, once every item is final.
 */
export async function finishTree(ctx: FinishContext): Promise<TreeAuthority> {
  const { backend, ledger, inv } = ctx;
  const dataset = inv.partition.dataset;
  const key = treeManifestKey(dataset, inv.treeId);
  if ((await readTreeManifest(backend, dataset, inv.treeId)) === undefined) {
    reachKillPoint('tree_finalizing');
    const frontier = SqliteFrontier.open(ctx.paths.db);
    try {
      const options = await frontier.options();
      const startedAt = typeof options.run.started_at === 'string' ? options.run.started_at : new Date().toISOString();
      const manifest = buildTreeManifest(
        options,
        { partition: inv.partition, job_id: inv.jobId ?? inv.treeId, allow_failed_children: inv.tree.allowFailedChildren },
        await frontier.items(),
        await frontier.counters(),
        { started_at: startedAt, finalized_at: new Date().toISOString() },
      );
      await publishTreeManifest(backend, dataset, manifest);
    } finally {
      await frontier.close();
    }
  }
  reachKillPoint('tree_published');
  let v: TreeValidation;
  try {
    v = await validateTree(backend, ledger, { dataset, tree_id: inv.treeId }, { allowFailedChildren: inv.tree.allowFailedChildren });
  } catch (err) {
    // The tree is published and stays so; `quarry validate --pending` records it later.
    const next = `quarry validate --pending --storage-path ${inv.storage.path}${dataset !== 'quarry' ? ` --storage-dataset ${dataset}` : ''}`;
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
    return { authoritative: false, reason: 'ledger_unreachable', next, line: `tree ${inv.treeId} is published but could not be validated (${why})`, manifestKey: key, exitCode: 3 };
  }
  const parts = v.partitions.map((p) => `${p.source}/${p.category}/${p.day}: ${p.outcome}`).join('; ');
  const line = v.authoritative
    ? `tree ${inv.treeId} is authoritative (${parts})`
    : `tree ${inv.treeId} is not authoritative: ${v.reason}, ${v.failures} failed item(s), ${v.allowed} allowed${failedList(v)}${parts ? ` (${parts})` : ''}`;
  return { authoritative: v.authoritative, reason: v.reason, next: v.next, line, manifestKey: key, exitCode: v.exit_code, ...(v.notification_id ? { notificationId: v.notification_id } : {}) };
}
