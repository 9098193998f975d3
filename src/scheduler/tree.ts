/**
 * `runTree`: one crawl tree, start to finish (SPEC §10), the tree-level
 * library entry beside `runOnce`. It creates the tree's frontier under the
 * state dir, holds the tree's OS lock, admits the root, then leases items and
 * runs each through `runOnce` (one executor process per run), admitting every
 * `enqueue` the supervisor sees — even one the policy drops — while its run
 * is still going, so children start while their parent runs. `--parallel`
 * is the frontier's bound, root included.
 *
 * Not yet here (issue 12 continues): the tree manifest, tree validation and
 * authority (§8), resume, progress, the CLI flags. Validation of member runs
 * is the caller's: this entry writes run partitions and returns the report.
 */
import { ulid } from 'ulid';
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import type { PolicyConfig } from '../runtime/policies/index.js';
import type { RunReport } from '../runtime/report.js';
import { runOnce } from '../runtime/run.js';
import type { StorageBackend } from '../storage/backend.js';
import type { LogicalPartition } from '../storage/layout.js';
import type { RunOutcome } from '../storage/manifest.js';
import type { JsonValue } from './canonical-json.js';
import { FrontierLock } from './frontier-lock.js';
import { FrontierError, type Clock, type FrontierCounters, type ItemRecord, type Lease } from './frontier.js';
import { SqliteFrontier } from './sqlite-frontier.js';
import { frontierPaths } from './state-dir.js';
import { workItemFor, type EnqueueRequest } from './work-item.js';
import { join } from 'node:path';

/** Everything one tree needs, validated by the caller (the CLI will compile flags into this). */
export interface TreeConfig {
  /** Absolute path of the root script; must lie under `scriptsRoot`. */
  scriptPath: string;
  /** Targets resolve under this folder (the working directory locally). */
  scriptsRoot: string;
  /** The tree id (= the root's first run_id); a ULID when absent. */
  treeId?: string;
  /** The root's job; a child's job is its enqueued params. */
  job: JsonValue;
  /** The root's partition; children inherit it (source/category may be overridden per enqueue). */
  partition: LogicalPartition;
  policy: PolicyConfig;
  backend: StorageBackend;
  /** `--depth` (0 = a tree of one). */
  depth: number;
  /** `--max-runs`: distinct items admitted, root included. */
  maxRuns: number;
  /** `--parallel`: runs at once, root included. */
  parallel: number;
  /** `--retries` per item. */
  retries: number;
  /** Lease duration (ms); default 30 000. Renewed every third of it. */
  leaseMs?: number;
  /** Folder of the tree's frontier and lock (`resolveStateDir`). */
  stateDir: string;
  executorPath?: string;
  chromiumPath?: string;
  browserWsEndpoint?: string;
  /** Aborting interrupts runs in flight; their items stay queued in the frontier. */
  signal?: AbortSignal;
  onStderr?: (chunk: Buffer) => void;
  /** Called after each run ends, with its report. */
  onRun?: (report: RunReport, lease: Lease) => void;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
}

/** What `runTree` returns. */
export interface TreeReport {
  tree_id: string;
  /** True when the signal stopped the tree before every item was final. */
  interrupted: boolean;
  counters: FrontierCounters;
  items: ItemRecord[];
  /** Every run's report, in the order they ended. */
  runs: RunReport[];
}

const DEFAULT_LEASE_MS = 30_000;

/**
 * Runs a crawl tree to its end (or until `signal` aborts).
 * @throws FrontierError when the root script is not under the scripts root or the tree exists;
 *   FrontierLockedError when another live process holds the tree.
 */
export async function runTree(cfg: TreeConfig): Promise<TreeReport> {
  const treeId = cfg.treeId ?? ulid();
  const root = await workItemFor(cfg.scriptsRoot, { target: cfg.scriptPath, params: {} }, null);
  if (root.not_found !== undefined) throw new FrontierError(`the root script: ${root.not_found}`);
  const paths = frontierPaths(cfg.stateDir, treeId);
  const lock = FrontierLock.acquire(paths.lock, process.pid);
  const owner = `${process.pid}-${ulid()}`;
  try {
    const frontier = SqliteFrontier.create(paths.db, {
      tree_id: treeId, max_depth: cfg.depth, max_runs: cfg.maxRuns, parallel: cfg.parallel, retries: cfg.retries,
      lease_ms: cfg.leaseMs ?? DEFAULT_LEASE_MS,
      run: { script: root.target, job: cfg.job, partition: { ...cfg.partition }, policy: { ...cfg.policy } },
    }, cfg.clock ? { clock: cfg.clock } : {});
    try {
      await frontier.admit([{ ...root, params: {} }]);
      return await drive(cfg, frontier, owner, treeId);
    } finally {
      await frontier.close();
    }
  } finally {
    lock.release();
  }
}

async function drive(cfg: TreeConfig, frontier: SqliteFrontier, owner: string, treeId: string): Promise<TreeReport> {
  const leaseMs = cfg.leaseMs ?? DEFAULT_LEASE_MS;
  const running = new Map<string, Promise<void>>();
  const runs: RunReport[] = [];
  let wake: () => void = () => undefined;
  const woken = (): Promise<void> => new Promise((r) => { wake = r; });
  const aborted = cfg.signal ? abortOf(cfg.signal) : undefined;
  const heartbeat = setInterval(() => { frontier.renew(owner).catch(() => undefined); }, Math.max(1, Math.floor(leaseMs / 3)));
  try {
    for (;;) {
      if (cfg.signal?.aborted) break;
      const next = woken();
      for (const lease of await frontier.lease(owner, cfg.parallel - running.size)) {
        const p = runMember(cfg, frontier, lease, treeId, runs, () => wake()).finally(() => { running.delete(lease.run_id); wake(); });
        running.set(lease.run_id, p);
      }
      if (running.size === 0) {
        const c = await frontier.counters();
        if (c.queued === 0 && c.running === 0) break;
      }
      await Promise.race([next, ...(aborted ? [aborted] : [])]);
    }
    await Promise.all(running.values());
  } finally {
    clearInterval(heartbeat);
  }
  const interrupted = cfg.signal?.aborted === true;
  if (!interrupted) await frontier.claimFinalization();
  return { tree_id: treeId, interrupted, counters: await frontier.counters(), items: await frontier.items(), runs };
}

/** Runs one leased attempt; admits its enqueues as they arrive and completes it once they are all admitted. */
async function runMember(cfg: TreeConfig, frontier: SqliteFrontier, lease: Lease, treeId: string, runs: RunReport[], admitted: () => void): Promise<void> {
  const item = lease.item;
  const partition: LogicalPartition = {
    ...cfg.partition,
    source: item.source ?? cfg.partition.source,
    category: item.category ?? cfg.partition.category,
  };
  // One chain per run: its enqueues are admitted in the order it emitted them (the cap favours the first).
  let admits: Promise<unknown> = Promise.resolve();
  const onEvent = (e: AnyEventEnvelope): void => {
    if (e.type !== 'enqueue') return;
    const req = e.payload as EnqueueRequest;
    // Admission must never fail the run: an unkeyable enqueue is reported, not thrown.
    admits = admits
      .then(() => workItemFor(cfg.scriptsRoot, req, { run_id: lease.run_id, depth: item.depth }))
      .then((wi) => frontier.admit([wi]))
      .then(admitted, (err: unknown) => cfg.onStderr?.(Buffer.from(`quarry: enqueue of ${JSON.stringify(req.target)} refused: ${(err as Error).message}\n`)));
  };
  // §8: a re-run's parent is the attempt it replaces; a first attempt's is the run that enqueued it.
  const parentRunId = lease.previous_run_id ?? item.parent_run_id;
  let outcome: RunOutcome;
  try {
    const report = await runOnce({
      scriptPath: join(cfg.scriptsRoot, item.target),
      runId: lease.run_id,
      attempt: lease.attempt,
      jobId: treeId,
      ...(parentRunId !== null ? { parentRunId } : {}),
      rootRunId: treeId,
      depth: item.depth,
      job: item.depth === 0 ? cfg.job : item.params,
      partition,
      policy: cfg.policy,
      backend: cfg.backend,
      ...(cfg.executorPath ? { executorPath: cfg.executorPath } : {}),
      ...(cfg.chromiumPath ? { chromiumPath: cfg.chromiumPath } : {}),
      ...(cfg.browserWsEndpoint ? { browserWsEndpoint: cfg.browserWsEndpoint } : {}),
      ...(cfg.signal ? { signal: cfg.signal } : {}),
      ...(cfg.onStderr ? { onStderr: cfg.onStderr } : {}),
      ...(cfg.env ? { env: cfg.env } : {}),
      onEvent,
    });
    runs.push(report);
    cfg.onRun?.(report, lease);
    outcome = report.outcome;
  } catch (err) {
    // The run could not even start (claim refused, storage down): a failed attempt of this item.
    cfg.onStderr?.(Buffer.from(`quarry: run ${lease.run_id} of ${item.target} could not start: ${(err as Error).message}\n`));
    outcome = 'executor_crash';
  }
  // Children are admitted before the parent completes, so the tree never looks finished early.
  await admits;
  await frontier.complete(lease, outcome, partition);
}

function abortOf(signal: AbortSignal): Promise<void> {
  return new Promise((r) => {
    if (signal.aborted) r();
    else signal.addEventListener('abort', () => r(), { once: true });
  });
}
