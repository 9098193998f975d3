/**
 * `runTree`: one crawl tree, start to finish (SPEC §10), the tree-level
 * library entry beside `runOnce`. It creates the tree's frontier under the
 * state dir (or, resuming, reopens it and settles what the dead invocation
 * left in flight), holds the tree's OS lock, admits the root, then leases
 * items and runs each through `runOnce` in a run slot (an executor process
 * that serves successive runs, slot-pool.ts; closed before this returns),
 * admitting every `enqueue` the supervisor sees — even one the policy drops —
 * while its run is still going, so children start while their parent runs.
 * `--parallel` is the frontier's bound, root included.
 *
 * The tree manifest and tree validation (§8) are the caller's, after this
 * returns: member runs are written and finalized here, never validated.
 */
import type { AdapterTarget } from '../ledger/outbox.js';
import type { EventSinkFactory } from '../runtime/event-sinks.js';
import { ulid } from 'ulid';
import type { AnyEventEnvelope } from '../protocol/envelope.js';
import type { RunProxy, RunProxyInput } from '../proxy/router.js';
import type { PolicyConfig } from '../runtime/policies/index.js';
import type { RunReport } from '../runtime/report.js';
import { reachKillPoint } from '../runtime/kill-point.js';
import { defaultExecutorPath, runOnce } from '../runtime/run.js';
import { chromiumPath } from '../runtime/chromium.js';
import { SharedBrowser } from '../runtime/shared-browser.js';
import { SlotPool } from '../runtime/slot-pool.js';
import type { StorageBackend } from '../storage/backend.js';
import type { LogicalPartition } from '../storage/layout.js';
import type { RunOutcome } from '../storage/manifest.js';
import type { JsonValue } from './canonical-json.js';
import { FrontierLock } from './frontier-lock.js';
import { FrontierError, isRequeueOutcome, type Clock, type Frontier, type FrontierCounters, type ItemRecord, type Lease, type WorkItemInput } from './frontier.js';
import { SqliteFrontier } from './sqlite-frontier.js';
import { frontierPaths } from './state-dir.js';
import { itemPartition, recoverInFlight, type RecoverySummary } from './tree-recover.js';
import { resolveTarget } from './target.js';
import { workItemFor, type EnqueueRequest } from './work-item.js';
import { join } from 'node:path';

/** Everything one tree needs, validated by the caller (the CLI compiles flags into this). */
export interface TreeConfig {
  /** Absolute path of the root script; must lie under `scriptsRoot`. */
  scriptPath: string;
  /** Targets resolve under this folder (the working directory locally). */
  scriptsRoot: string;
  /** The tree id (= the root's first run_id); a ULID when absent. Required with `resume`. */
  treeId?: string;
  /** The tree's job_id, carried by every member run; the tree id when absent. */
  jobId?: string;
  /** The root's first attempt's `parent_run_id` (a re-run tree names the old root, §8). */
  rootParentRunId?: string;
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
  /** `--parallel`: runs at once, root included. On resume, replaces the stored value. */
  parallel: number;
  /** `--retries` per item. */
  retries: number;
  /** Lease duration (ms); default 30 000. Renewed every third of it. */
  leaseMs?: number;
  /** Folder of the tree's frontier and lock (`resolveStateDir`). */
  stateDir: string;
  /**
   * Continue the tree `treeId` from its frontier instead of creating it: the
   * stored bounds win over `depth`, `maxRuns`, `retries` and `leaseMs`.
   */
  resume?: boolean;
  /** The tree's OS lock, when the caller took it (and will release it); otherwise taken and released here. */
  lock?: FrontierLock;
  /** More run settings stored with the tree (as sources, never secret values) so resume can take them back. */
  settings?: { readonly [key: string]: JsonValue };
  /** Wait before re-running an item whose `n`-th attempt failed (n from 1); default 1 s, 2 s, 4 s … 30 s. */
  retryBackoffMs?: (n: number) => number;
  /** `--run-timeout` of each member run (ms). */
  runTimeoutMs?: number;
  executorPath?: string;
  chromiumPath?: string;
  browserWsEndpoint?: string;
  /**
   * `--no-browser-reuse`: each run launches its own browser. By default the invocation's runs share
   * one Chromium the runtime launches when the first run needs it (SPEC §10), unless `browserWsEndpoint`
   * names a browser to connect to.
   */
  noBrowserReuse?: boolean;
  /** The run-completed adapter recorded in every run's settings; the tree's notification takes its root's (SPEC §11). */
  adapter?: AdapterTarget;
  /** Each run's proxy, selected as the run starts (SPEC §11); none when absent. Keyed by the item's dedup key. */
  proxy?: { start(input: RunProxyInput): Promise<RunProxy> };
  /**
   * Runs one executor process serves before it is replaced (SPEC §10 run slots); default
   * `DEFAULT_SLOT_RUNS`, 1 = a process per run.
   */
  slotRuns?: number;
  /** A slot above this resident memory (bytes) after a run is replaced; default `DEFAULT_SLOT_RSS_BYTES`. */
  slotRssBytes?: number;
  /** Live event sinks of every run (SPEC §11) and what settings record of them. */
  eventSinks?: readonly EventSinkFactory[];
  eventSinkTargets?: ReadonlyArray<{ kind: string; target: string }>;
  /** Aborting interrupts runs in flight; their items stay queued in the frontier. */
  signal?: AbortSignal;
  onStderr?: (chunk: Buffer) => void;
  /** Called as each run starts. */
  onRunStart?: (lease: Lease) => void;
  /** Called after each run ends, with its report. */
  onRun?: (report: RunReport, lease: Lease) => void;
  /** Called with the counters whenever they may have changed (for progress). */
  onCounters?: (counters: FrontierCounters) => void;
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
}

/** What `runTree` returns. */
export interface TreeReport {
  tree_id: string;
  /** True when the signal stopped the tree before every item was final. */
  interrupted: boolean;
  /** True when this invocation claimed the tree's finalization (§10 `claimFinalization`). */
  finalization_claimed: boolean;
  counters: FrontierCounters;
  items: ItemRecord[];
  /** Every run's report of this invocation, in the order they ended. */
  runs: RunReport[];
  /** Resume only: what was found in flight. */
  recovered?: RecoverySummary;
  /** The stored tree options' run settings (what resume takes back). */
  settings: { readonly [key: string]: JsonValue };
}

const DEFAULT_LEASE_MS = 30_000;

/** Default wait before retry n: 1 s, 2 s, 4 s … capped at 30 s (as single runs). */
export function defaultRetryBackoffMs(n: number): number {
  return Math.min(30_000, 1000 * 2 ** (n - 1));
}

/**
 * Runs a crawl tree to its end (or until `signal` aborts).
 * @throws FrontierError when the root script is not under the scripts root, the tree exists
 *   (or, resuming, does not); FrontierLockedError when another live process holds the tree.
 */
export async function runTree(cfg: TreeConfig): Promise<TreeReport> {
  if (cfg.resume && cfg.treeId === undefined) throw new FrontierError('resume needs the tree id');
  const treeId = cfg.treeId ?? ulid();
  const paths = frontierPaths(cfg.stateDir, treeId);
  const root = cfg.resume ? undefined : await workItemFor(cfg.scriptsRoot, { target: cfg.scriptPath, params: {} }, null);
  if (root?.not_found !== undefined) throw new FrontierError(`the root script: ${root.not_found}`);
  const lock = cfg.lock ?? FrontierLock.acquire(paths.lock, process.pid);
  const owner = `${process.pid}-${ulid()}`;
  try {
    const clock = cfg.clock ? { clock: cfg.clock } : {};
    const frontier = root === undefined
      ? SqliteFrontier.open(paths.db, clock)
      : SqliteFrontier.create(paths.db, {
        tree_id: treeId, max_depth: cfg.depth, max_runs: cfg.maxRuns, parallel: cfg.parallel, retries: cfg.retries,
        lease_ms: cfg.leaseMs ?? DEFAULT_LEASE_MS,
        run: { ...cfg.settings, script: root.target, job: cfg.job, partition: { ...cfg.partition }, policy: { ...cfg.policy } },
      }, clock);
    try {
      let recovered: RecoverySummary | undefined;
      if (root !== undefined) {
        await frontier.admit([{ ...root, params: {} }]);
      } else {
        recovered = await recoverInFlight(frontier, cfg.backend, cfg.partition, cfg.scriptsRoot);
        if ((await frontier.options()).parallel !== cfg.parallel) await frontier.setParallel(cfg.parallel);
      }
      const report = await drive(cfg, frontier, owner, treeId);
      return { ...report, ...(recovered ? { recovered } : {}) };
    } finally {
      await frontier.close();
    }
  } finally {
    if (cfg.lock === undefined) lock.release();
  }
}

/** How {@link drive} takes part in a tree. */
export interface DriveOptions {
  /**
   * Shared trees (§12): also look for work every `pollMs`, since other
   * clients admit, finish and lose leases without waking this one.
   */
  pollMs?: number;
  /** Shared trees: checks each leased item's script against the SHA-256 recorded at admission. */
  checkScriptDigest?: boolean;
}

/**
 * Leases items of `frontier` for `owner` (at most `cfg.parallel` of its own
 * at once; the tree's `parallel` is the frontier's) and runs them until no
 * item is queued or running anywhere, or `cfg.signal` aborts; then competes
 * for the tree's finalization.
 */
export async function drive(cfg: TreeConfig, frontier: Frontier, owner: string, treeId: string, o: DriveOptions = {}): Promise<Omit<TreeReport, 'recovered'>> {
  const opts = await frontier.options();
  const leaseMs = opts.lease_ms;
  const running = new Map<string, Promise<void>>();
  const runs: RunReport[] = [];
  const failures = new Map<string, number>();
  let wake: () => void = () => undefined;
  const woken = (): Promise<void> => new Promise((r) => { wake = r; });
  const aborted = cfg.signal ? abortOf(cfg.signal) : undefined;
  const heartbeat = setInterval(() => { frontier.renew(owner).catch(() => undefined); }, Math.max(1, Math.floor(leaseMs / 3)));
  // The invocation's run slots: at most --parallel at once, since a run holds its slot.
  const pool = new SlotPool({
    command: process.execPath,
    entry: cfg.executorPath ?? defaultExecutorPath(),
    ...(cfg.env ? { env: cfg.env } : {}),
    ...(cfg.slotRuns !== undefined ? { maxRuns: cfg.slotRuns } : {}),
    ...(cfg.slotRssBytes !== undefined ? { maxRssBytes: cfg.slotRssBytes } : {}),
  });
  // One Chromium for the invocation's runs, never a slot's (SPEC §10); launched when a run first needs it.
  const sharedBrowser = cfg.noBrowserReuse || cfg.browserWsEndpoint ? undefined : new SharedBrowser({ executablePath: chromiumPath(cfg.chromiumPath, cfg.env ?? process.env) });
  if (sharedBrowser) sharedBrowser.onDied = (why) => cfg.onStderr?.(Buffer.from(`quarry: ${why}\n`));
  const member: Member = {
    cfg, frontier, treeId, retries: opts.retries, runs, failures, pool, ...(sharedBrowser ? { sharedBrowser } : {}), checkScriptDigest: o.checkScriptDigest === true,
    changed: () => { wake(); void report(); },
  };
  const poll = o.pollMs !== undefined ? setInterval(() => wake(), o.pollMs) : undefined;
  const report = async (): Promise<void> => { if (cfg.onCounters) cfg.onCounters(await frontier.counters()); };
  try {
    await report();
    for (;;) {
      if (cfg.signal?.aborted) break;
      const next = woken();
      for (const lease of await frontier.lease(owner, cfg.parallel - running.size)) {
        const p = runMember(member, lease).finally(() => { running.delete(lease.run_id); member.changed(); });
        running.set(lease.run_id, p);
      }
      if (running.size === 0) {
        const c = await frontier.counters();
        if (c.queued === 0 && c.running === 0) break;
      }
      await report();
      await Promise.race([next, ...(aborted ? [aborted] : [])]);
    }
    await Promise.all(running.values());
  } finally {
    clearInterval(heartbeat);
    if (poll !== undefined) clearInterval(poll);
    await pool.close();
    await sharedBrowser?.close();
  }
  const interrupted = cfg.signal?.aborted === true;
  const claimed = interrupted ? false : await frontier.claimFinalization();
  const counters = await frontier.counters();
  cfg.onCounters?.(counters);
  return { tree_id: treeId, interrupted, finalization_claimed: claimed, counters, items: await frontier.items(), runs, settings: opts.run };
}

/** What {@link runMember} needs of the tree and the process running its members. */
export interface Member {
  cfg: TreeConfig;
  frontier: Frontier;
  /** Fail a run whose script differs from the one admitted (§12: workers resolve targets under their own scripts dir). */
  checkScriptDigest: boolean;
  /** Why every run of the tree fails on this member without starting (a queue worker lacking the tree's proxy pool), if it must. */
  refuseRuns?: string;
  treeId: string;
  /** The tree's `--retries` (recorded in each member's settings). */
  retries: number;
  runs: RunReport[];
  /** Failed attempts per key seen by this invocation: how long to back off before the next. */
  failures: Map<string, number>;
  pool: SlotPool;
  sharedBrowser?: SharedBrowser;
  changed: () => void;
  /** Called once an enqueue of the run was admitted (queue mode adds the item's job, §12). */
  onAdmitted?: (item: WorkItemInput) => Promise<void>;
  /** Called before an attempt that did not succeed is completed, so the item's next attempt can be announced first (§12). */
  beforeRequeue?: (lease: Lease) => Promise<void>;
}

/** Runs one leased attempt; admits its enqueues as they arrive and completes it once they are all admitted. */
export async function runMember(m: Member, lease: Lease): Promise<void> {
  const { cfg, frontier } = m;
  const item = lease.item;
  const partition = itemPartition(cfg.partition, item);
  const failed = m.failures.get(item.key) ?? 0;
  // The slot stays held while backing off: simpler than a per-item not-before time, and a retry is rare.
  if (failed > 0) await sleep((cfg.retryBackoffMs ?? defaultRetryBackoffMs)(failed), cfg.signal);
  // One chain per run: its enqueues are admitted in the order it emitted them (the cap favours the first).
  let admits: Promise<unknown> = Promise.resolve();
  const onEvent = (e: AnyEventEnvelope): void => {
    if (e.type !== 'enqueue') return;
    const req = e.payload as EnqueueRequest;
    // Admission must never fail the run: an unkeyable enqueue is reported, not thrown.
    admits = admits
      .then(() => workItemFor(cfg.scriptsRoot, req, { run_id: lease.run_id, depth: item.depth }))
      .then(async (wi) => {
        const d = await frontier.admit([wi]);
        if (d.includes('admitted')) {
          reachKillPoint('tree_after_admit');
          await m.onAdmitted?.(wi);
        }
        m.changed();
      },
        (err: unknown) => cfg.onStderr?.(Buffer.from(`quarry: enqueue of ${JSON.stringify(req.target)} refused: ${(err as Error).message}\n`)));
  };
  // §8: a re-run's parent is the attempt it replaces; a first attempt's is the run that enqueued it
  // (the root's: the tree this one re-runs, if any).
  const parentRunId = lease.previous_run_id ?? item.parent_run_id ?? (item.depth === 0 ? cfg.rootParentRunId ?? null : null);
  let outcome: RunOutcome;
  const differs = m.refuseRuns ?? (m.checkScriptDigest ? await scriptDiffers(cfg.scriptsRoot, item) : undefined);
  if (cfg.signal?.aborted) {
    outcome = 'interrupted';
  } else if (differs !== undefined) {
    cfg.onStderr?.(Buffer.from(`quarry: run ${lease.run_id} of ${item.target} failed: ${differs}\n`));
    outcome = 'script_error';
  } else {
    cfg.onRunStart?.(lease);
    let proxy: RunProxy | undefined;
    try {
      const job = item.depth === 0 ? cfg.job : item.params;
      proxy = cfg.proxy ? await cfg.proxy.start({ jobKey: item.key, job }) : undefined;
      const report = await runOnce({
        scriptPath: join(cfg.scriptsRoot, item.target),
        runId: lease.run_id,
        attempt: lease.attempt,
        jobId: cfg.jobId ?? m.treeId,
        ...(parentRunId !== null ? { parentRunId } : {}),
        rootRunId: m.treeId,
        depth: item.depth,
        // §8: a tree's runs are validated as one tree, never promoted alone.
        fanout: true,
        job,
        partition,
        policy: cfg.policy,
        retries: m.retries,
        backend: cfg.backend,
        ...(cfg.executorPath ? { executorPath: cfg.executorPath } : {}),
        ...(cfg.chromiumPath ? { chromiumPath: cfg.chromiumPath } : {}),
        ...(cfg.browserWsEndpoint ? { browserWsEndpoint: cfg.browserWsEndpoint } : {}),
        ...(cfg.adapter ? { adapter: cfg.adapter } : {}),
        ...(cfg.eventSinks ? { eventSinks: cfg.eventSinks } : {}),
        ...(cfg.eventSinkTargets ? { eventSinkTargets: cfg.eventSinkTargets } : {}),
        ...(cfg.runTimeoutMs !== undefined ? { timeoutMs: cfg.runTimeoutMs } : {}),
        ...(cfg.signal ? { signal: cfg.signal } : {}),
        ...(cfg.onStderr ? { onStderr: cfg.onStderr } : {}),
        ...(cfg.env ? { env: cfg.env } : {}),
        pool: m.pool,
        ...(m.sharedBrowser ? { sharedBrowser: m.sharedBrowser } : {}),
        ...(proxy ? { proxy: proxy.endpoint, proxyRecord: proxy.record } : {}),
        onEvent: (e) => { proxy?.onEvent(e); onEvent(e); },
      });
      await proxy?.finish(report.outcome);
      m.runs.push(report);
      cfg.onRun?.(report, lease);
      outcome = report.outcome;
    } catch (err) {
      // The run could not even start (claim refused, storage down): a failed attempt of this item.
      cfg.onStderr?.(Buffer.from(`quarry: run ${lease.run_id} of ${item.target} could not start: ${(err as Error).message}\n`));
      outcome = 'executor_crash';
    }
  }
  // Children are admitted before the parent completes, so the tree never looks finished early.
  await admits;
  if (outcome !== 'success') await m.beforeRequeue?.(lease);
  const done = await frontier.complete(lease, outcome, partition);
  if (done.state === 'queued' && !isRequeueOutcome(outcome)) m.failures.set(item.key, failed + 1);
}

/** Why the script under `scriptsRoot` is not the one admitted, or undefined when it is. */
async function scriptDiffers(scriptsRoot: string, item: Lease['item']): Promise<string | undefined> {
  const t = await resolveTarget(scriptsRoot, item.target);
  if (!t.ok) return `its script is not under this worker's scripts dir ${scriptsRoot} (${t.detail})`;
  if (item.target_sha256 !== null && t.sha256 !== item.target_sha256) {
    return `its script ${t.absPath} has SHA-256 ${t.sha256}, not the ${item.target_sha256} submitted; deploy the same scripts to every worker`;
  }
  return undefined;
}

function abortOf(signal: AbortSignal): Promise<void> {
  return new Promise((r) => {
    if (signal.aborted) r();
    else signal.addEventListener('abort', () => r(), { once: true });
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
