/**
 * Shared trees (SPEC §12): one tree whose frontier (Redis) is shared by many
 * workers, each on its own machine with its own scripts dir, storage client
 * and ledger. The submitter creates the tree and admits its root
 * ({@link submitSharedTree}); every worker takes part with
 * {@link workSharedTree}: it leases up to its own slots while the frontier
 * holds the tree's `--parallel` across all of them, and a worker that dies
 * stops renewing, so its leases expire after `lease_ms` and the next `lease`
 * of any other worker runs those items again as attempt + 1. Exactly one
 * worker's {@link TreeReport} has `finalization_claimed`: that worker
 * publishes the tree manifest and validates the tree (§8).
 */
import { ulid } from 'ulid';
import type { PolicyConfig } from '../runtime/policies/index.js';
import type { LogicalPartition } from '../storage/layout.js';
import type { JsonValue } from './canonical-json.js';
import { FrontierError, type Frontier, type TreeOptions } from './frontier.js';
import { drive, type TreeConfig, type TreeReport } from './tree.js';
import { workItemFor } from './work-item.js';

/** The tree settings a shared tree stores beside its bounds, so any worker can run its members. */
export interface SharedTreeRun {
  /** The root script, relative to the scripts root. */
  script: string;
  job: JsonValue;
  partition: LogicalPartition;
  policy: PolicyConfig;
}

/**
 * Admits the root of a tree just created in `frontier` (its `run` options
 * must name the root `script`, relative to `scriptsRoot`). Throws
 * FrontierError when the root script is not under the scripts root.
 */
export async function submitSharedTree(frontier: Frontier, scriptsRoot: string): Promise<void> {
  const run = sharedRun(await frontier.options());
  const root = await workItemFor(scriptsRoot, { target: run.script, params: {} }, null);
  if (root.not_found !== undefined) throw new FrontierError(`the root script: ${root.not_found}`);
  await frontier.admit([{ ...root, params: {} }]);
}

/** What a worker brings to a shared tree: its own slots, scripts, storage and executor. */
export type SharedTreeWorker = Omit<TreeConfig,
  'scriptPath' | 'treeId' | 'job' | 'partition' | 'policy' | 'depth' | 'maxRuns' | 'retries' | 'leaseMs' | 'stateDir' | 'resume' | 'lock' | 'settings'> & {
  /** The lease owner: unique per worker process (default `<pid>-<ulid>`). */
  owner?: string;
  /** How often to look for work others made or lost (ms); default a sixth of the tree's lease. */
  pollMs?: number;
};

/**
 * Runs a shared tree's items on this worker until no item is queued or
 * running on any worker (or `signal` aborts: this worker's runs are
 * interrupted and their items queued again for the others). `parallel` is
 * this worker's slots. Each leased item's script must have the SHA-256 it was
 * admitted with, else that run fails with one line on stderr.
 */
export async function workSharedTree(worker: SharedTreeWorker, frontier: Frontier): Promise<TreeReport> {
  const opts = await frontier.options();
  const run = sharedRun(opts);
  const cfg: TreeConfig = {
    ...worker,
    scriptPath: run.script, treeId: opts.tree_id, job: run.job, partition: run.partition, policy: run.policy,
    depth: opts.max_depth, maxRuns: opts.max_runs, retries: opts.retries, leaseMs: opts.lease_ms, stateDir: '',
  };
  const owner = worker.owner ?? `${process.pid}-${ulid()}`;
  return drive(cfg, frontier, owner, opts.tree_id, { pollMs: worker.pollMs ?? Math.max(100, Math.floor(opts.lease_ms / 6)), checkScriptDigest: true });
}

/** The run settings a shared tree stores (script, job, partition, policy). @throws FrontierError when absent. */
export function sharedRun(opts: TreeOptions): SharedTreeRun {
  const r = opts.run as unknown as Partial<SharedTreeRun>;
  if (typeof r.script !== 'string' || r.partition === undefined || r.policy === undefined) {
    throw new FrontierError(`tree ${opts.tree_id} stores no run settings (script, partition, policy): it was not submitted as a shared tree`);
  }
  return { script: r.script, job: r.job ?? {}, partition: r.partition, policy: r.policy };
}
