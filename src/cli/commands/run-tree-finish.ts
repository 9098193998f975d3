/**
 * The end of a tree (SPEC §8, §12): publish the tree manifest, then validate
 * the tree as one. The frontier is reached through its port, so a tree on the
 * embedded SQLite frontier (`quarry run`) and one on the Redis frontier
 * (whichever worker's `claimFinalization()` returned true) finish the same
 * way. Idempotent across kills and concurrent finalizers: a manifest already
 * published (before, or by another finalizer while this one built its own)
 * is read back and only validated; a tree already validated is only read
 * back (the ledger holds one validation per tree).
 */
import type { Ledger } from '../../ledger/ledger.js';
import { validateTree, type TreeValidation } from '../../ledger/tree-validator.js';
import { buildTreeManifest } from '../../scheduler/tree-manifest.js';
import type { Frontier, TreeOptions } from '../../scheduler/frontier.js';
import type { StorageBackend } from '../../storage/backend.js';
import { StorageError } from '../../storage/backend.js';
import { treeManifestKey, type LogicalPartition } from '../../storage/layout.js';
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

/** The tree being finished, as its manifest and the messages name it. */
export interface FinishedTree {
  treeId: string;
  /** The root's logical partition (its dataset holds the tree manifest). */
  partition: LogicalPartition;
  /** The tree's job id; default the tree id. */
  jobId?: string;
  allowFailedChildren: number;
  /** Storage location, for the `validate --pending` line printed when the ledger is down. */
  storagePath: string;
}

/** What {@link finishTree} needs. */
export interface FinishContext {
  backend: StorageBackend;
  ledger: Ledger;
  tree: FinishedTree;
  /**
   * The tree's frontier (any implementation of the port): one the caller
   * keeps open (and closes), or a function that opens one, called only when
   * the manifest is still to be built; {@link finishTree} closes what it opened.
   */
  frontier: Frontier | (() => Promise<Frontier>);
}

/** The tree of a `quarry run` invocation. */
export function finishedTreeOf(inv: TreeInvocation): FinishedTree {
  return {
    treeId: inv.treeId, partition: inv.partition, allowFailedChildren: inv.tree.allowFailedChildren, storagePath: inv.storage.path,
    ...(inv.jobId ? { jobId: inv.jobId } : {}),
  };
}

/**
 * The tree of a frontier whose options hold its run settings (a shared tree,
 * SPEC §12: `run.partition`, and optionally `run.job_id` and
 * `run.allow_failed_children`), as the worker that claimed its finalization
 * finishes it.
 * @throws Error when the options name no partition.
 */
export function finishedTreeFromOptions(options: TreeOptions, storagePath: string): FinishedTree {
  const run = options.run as { partition?: LogicalPartition; job_id?: unknown; allow_failed_children?: unknown };
  if (run.partition === undefined) throw new Error(`tree ${options.tree_id} stores no partition in its options: it cannot be finished from its frontier`);
  return {
    treeId: options.tree_id, partition: run.partition, storagePath,
    allowFailedChildren: typeof run.allow_failed_children === 'number' ? run.allow_failed_children : 0,
    ...(typeof run.job_id === 'string' ? { jobId: run.job_id } : {}),
  };
}

/**
 * Publishes the tree manifest (unless it is there already) and validates the
 * tree. Called once every item is final, by the one caller whose
 * `claimFinalization()` returned true (or, for a local tree, holding its
 * lock), or by a resume that finds the tree done.
 */
export async function finishTree(ctx: FinishContext): Promise<TreeAuthority> {
  const { backend, ledger, tree: inv } = ctx;
  const dataset = inv.partition.dataset;
  const key = treeManifestKey(dataset, inv.treeId);
  if ((await readTreeManifest(backend, dataset, inv.treeId)) === undefined) {
    reachKillPoint('tree_finalizing');
    const opened = typeof ctx.frontier === 'function';
    const frontier = typeof ctx.frontier === 'function' ? await ctx.frontier() : ctx.frontier;
    try {
      const options = await frontier.options();
      const startedAt = typeof options.run.started_at === 'string' ? options.run.started_at : new Date().toISOString();
      const manifest = buildTreeManifest(
        options,
        { partition: inv.partition, job_id: inv.jobId ?? inv.treeId, allow_failed_children: inv.allowFailedChildren },
        await frontier.items(),
        await frontier.counters(),
        { started_at: startedAt, finalized_at: new Date().toISOString() },
      );
      try {
        await publishTreeManifest(backend, dataset, manifest);
      } catch (err) {
        // Another finalizer (a queue worker that took over a lapsed finalization lease, SPEC §12)
        // published this tree's manifest first: built from the same final frontier, it is the tree's.
        if (!(err instanceof StorageError && err.code === 'exists' && (await readTreeManifest(backend, dataset, inv.treeId)) !== undefined)) throw err;
      }
    } finally {
      if (opened) await frontier.close();
    }
  }
  reachKillPoint('tree_published');
  let v: TreeValidation;
  try {
    v = await validateTree(backend, ledger, { dataset, tree_id: inv.treeId }, { allowFailedChildren: inv.allowFailedChildren });
  } catch (err) {
    // The tree is published and stays so; `quarry validate --pending` records it later.
    const next = `quarry validate --pending --storage-path ${inv.storagePath}${dataset !== 'quarry' ? ` --storage-dataset ${dataset}` : ''}`;
    const why = (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
    return { authoritative: false, reason: 'ledger_unreachable', next, line: `tree ${inv.treeId} is published but could not be validated (${why})`, manifestKey: key, exitCode: 3 };
  }
  const parts = v.partitions.map((p) => `${p.source}/${p.category}/${p.day}: ${p.outcome}`).join('; ');
  const line = v.authoritative
    ? `tree ${inv.treeId} is authoritative (${parts})`
    : `tree ${inv.treeId} is not authoritative: ${v.reason}, ${v.failures} failed item(s), ${v.allowed} allowed${failedList(v)}${parts ? ` (${parts})` : ''}`;
  return { authoritative: v.authoritative, reason: v.reason, next: v.next, line, manifestKey: key, exitCode: v.exit_code, ...(v.notification_id ? { notificationId: v.notification_id } : {}) };
}
