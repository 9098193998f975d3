/**
 * `quarry run --depth N > 0` (SPEC §10, §8): a crawl tree. Binds the tree id
 * in the ledger, takes the tree's OS lock, runs the tree through `runTree`,
 * then publishes the tree manifest and validates the tree as one; prints one
 * summary (a live line on a TTY), writes `--report`, returns the tree's exit
 * code. `--resume` (run-resume.ts) comes through {@link runTreeInvocation}
 * with the options the tree was started with.
 */
import { recordedTarget, type AdapterOptions } from '../../notify/adapter-config.js';
import { sendOwnNotifications, type NotificationReport } from './run-notify.js';
import { notificationLine, sinkConfig } from './run-execute.js';
import type { RedisSinkOptions } from '../../notify/redis-stream-sink.js';
import { ulid } from 'ulid';
import type { Ledger } from '../../ledger/ledger.js';
import type { PolicyConfig } from '../../runtime/policies/index.js';
import { interruptedExitCode, OUTCOME_EXIT_CODES } from '../../runtime/outcome.js';
import { sweepRunLeftovers } from '../../runtime/leftovers.js';
import type { RunReport } from '../../runtime/report.js';
import type { JsonValue } from '../../scheduler/canonical-json.js';
import { FrontierLock, FrontierLockedError } from '../../scheduler/frontier-lock.js';
import { FrontierError, type FrontierCounters, type ItemRecord } from '../../scheduler/frontier.js';
import { SqliteFrontier } from '../../scheduler/sqlite-frontier.js';
import { frontierPaths } from '../../scheduler/state-dir.js';
import { resolveTarget } from '../../scheduler/target.js';
import { runTree, type TreeReport } from '../../scheduler/tree.js';
import type { StorageBackend } from '../../storage/backend.js';
import type { LogicalPartition } from '../../storage/layout.js';
import { CommandFailure, UsageError } from '../flags.js';
import type { CliIO } from '../io.js';
import { TreeProgress } from '../tree-progress.js';
import { bindRun, ledgerTarget, LedgerUnreachableError, openRunLedger, openStorage } from './run-execute.js';
import { finishedTreeOf, finishTree, type TreeAuthority } from './run-tree-finish.js';
import type { ProxyRouter } from '../../proxy/router.js';
import { openProxyRouter, storedProxyPlan, type PreparedProxy } from './proxy-setup.js';
import { writeReport, type RunPlan, type TreePlan } from './run.js';
import { ledgerIdentity, type StoredTreeSettings } from './tree-settings.js';
import { stateDirFor } from './state-dir-flag.js';

export { stateDirFor } from './state-dir-flag.js';

/** One invocation of a tree, new or resumed, fully decided before any I/O but the lock. */
export interface TreeInvocation {
  treeId: string;
  resume: boolean;
  /** Absolute path of the root script. */
  scriptPath: string;
  scriptsRoot: string;
  job: JsonValue;
  partition: LogicalPartition;
  policy: PolicyConfig;
  storage: RunPlan['storage'];
  /** The ledger to open (with its secrets, if given). */
  ledger: string;
  /** `--ledger` as given, for the commands suggested next. */
  ledgerGiven?: string;
  tree: TreePlan;
  retries: number;
  runTimeoutMs?: number;
  executorPath?: string;
  chromiumPath?: string;
  browserWsEndpoint?: string;
  noBrowserReuse?: boolean;
  jobId?: string;
  parentRunId?: string;
  stateDir: string;
  quiet: boolean;
  report?: string;
  /** The tree's frontier lease duration (library default when absent). */
  leaseMs?: number;
  /** `--adapter …` (SPEC §11): live options, in memory only. */
  adapter?: AdapterOptions;
  /** `--proxy-pool`: each run of the tree selects its proxy at its start (SPEC §11). */
  proxy?: PreparedProxy;
  /** `--event-sink redis` options, in memory only. */
  redisSink?: RedisSinkOptions;
}

/** `quarry run --depth N > 0`: compiles the plan into an invocation and runs it. */
export async function executeTreePlan(plan: RunPlan, tree: TreePlan, io: CliIO): Promise<number> {
  return runTreeInvocation(await compileTreeInvocation(plan, tree, io), io);
}

/** A new tree's invocation from a run plan. @throws UsageError when the root script is not under the working directory. */
export async function compileTreeInvocation(plan: RunPlan, tree: TreePlan, io: CliIO): Promise<TreeInvocation> {
  const scriptsRoot = io.cwd;
  const root = await resolveTarget(scriptsRoot, plan.scriptPath);
  if (!root.ok) {
    throw new UsageError(`--script ${plan.scriptPath}: with --depth the root script must lie under the scripts root, the working directory ${scriptsRoot} (its targets resolve there); cd to the folder of your scripts`);
  }
  const inv: TreeInvocation = {
    treeId: plan.runId ?? ulid(),
    resume: false,
    scriptPath: root.absPath,
    scriptsRoot,
    job: plan.job as JsonValue,
    partition: { dataset: plan.dataset, source: plan.source, category: plan.category, day: plan.day },
    policy: plan.policy,
    storage: plan.storage,
    ledger: ledgerTarget(plan),
    ...(plan.ledger ? { ledgerGiven: plan.ledger } : {}),
    tree,
    retries: plan.retries,
    ...(plan.runTimeoutMs !== undefined ? { runTimeoutMs: plan.runTimeoutMs } : {}),
    ...(plan.executorPath ? { executorPath: plan.executorPath } : {}),
    ...(plan.chromiumPath ? { chromiumPath: plan.chromiumPath } : {}),
    ...(plan.browserWsEndpoint ? { browserWsEndpoint: plan.browserWsEndpoint } : {}),
    ...(plan.noBrowserReuse ? { noBrowserReuse: true } : {}),
    ...(plan.jobId ? { jobId: plan.jobId } : {}),
    ...(plan.parentRunId ? { parentRunId: plan.parentRunId } : {}),
    stateDir: stateDirFor(plan.stateDir, plan.storage, io),
    quiet: plan.quiet,
    ...(plan.report ? { report: plan.report } : {}),
    ...(plan.adapter ? { adapter: plan.adapter } : {}),
    ...(plan.proxy ? { proxy: plan.proxy } : {}),
    ...(plan.redisSink ? { redisSink: plan.redisSink } : {}),
  };
  return inv;
}

/** What is stored with the tree so `--resume` can take it back: sources, never secrets (§10). */
export function settingsOf(inv: TreeInvocation): StoredTreeSettings {
  return {
    scripts_root: inv.scriptsRoot,
    started_at: new Date().toISOString(),
    storage: {
      backend: inv.storage.backend, path: inv.storage.path, s3_path_style: inv.storage.s3PathStyle,
      ...(inv.storage.region ? { region: inv.storage.region } : {}),
      ...(inv.storage.endpoint ? { endpoint: inv.storage.endpoint } : {}),
    },
    ledger: ledgerIdentity(inv.ledger),
    ledger_given: inv.ledgerGiven !== undefined,
    allow_failed_children: inv.tree.allowFailedChildren,
    ...(inv.runTimeoutMs !== undefined ? { run_timeout_ms: inv.runTimeoutMs } : {}),
    ...(inv.executorPath ? { executor: inv.executorPath } : {}),
    ...(inv.chromiumPath ? { chromium_path: inv.chromiumPath } : {}),
    ...(inv.browserWsEndpoint ? { browser_ws_endpoint: ledgerIdentity(inv.browserWsEndpoint) } : {}),
    ...(inv.noBrowserReuse ? { no_browser_reuse: true } : {}),
    ...(inv.jobId ? { job_id: inv.jobId } : {}),
    ...(inv.parentRunId ? { parent_run_id: inv.parentRunId } : {}),
    ...(inv.proxy ? { proxy: storedProxyPlan(inv.proxy.plan) } : {}),
  };
}

/**
 * Runs (or resumes) a tree and returns its exit code (SPEC §8): 130/143 when
 * interrupted (with its resume line); else the last root attempt's code when
 * non-zero; else 3 when the tree did not become authoritative; else 0.
 */
export async function runTreeInvocation(inv: TreeInvocation, io: CliIO): Promise<number> {
  const paths = frontierPaths(inv.stateDir, inv.treeId);
  let ledger: Ledger | undefined;
  let backend: StorageBackend | undefined;
  let lock: FrontierLock | undefined;
  let router: ProxyRouter | undefined;
  const started = Date.now();
  try {
    lock = acquire(paths.lock);
    if (inv.proxy) router = openProxyRouter(inv.proxy, inv.stateDir, (m) => io.stderr(`quarry run: ${m}\n`));
    ledger = await openRunLedger(inv.ledger);
    backend = await openStorage(inv);
    if (!inv.resume) {
      await sweepRunLeftovers(inv.storage.backend === 'fs' ? inv.storage.path : undefined);
      await bindRun({ dataset: inv.partition.dataset, storage: inv.storage }, inv.treeId, ledger);
    }
    const progress = !inv.quiet && io.stderrIsTTY ? new TreeProgress((t) => io.stderr(t), inv.treeId) : undefined;
    let result: TreeReport;
    try {
      result = await runTree({
        scriptPath: inv.scriptPath,
        scriptsRoot: inv.scriptsRoot,
        treeId: inv.treeId,
        ...(inv.jobId ? { jobId: inv.jobId } : {}),
        ...(inv.parentRunId ? { rootParentRunId: inv.parentRunId } : {}),
        job: inv.job,
        partition: inv.partition,
        policy: inv.policy,
        backend,
        depth: inv.tree.depth,
        maxRuns: inv.tree.maxRuns,
        parallel: inv.tree.parallel,
        retries: inv.retries,
        ...(inv.leaseMs !== undefined ? { leaseMs: inv.leaseMs } : {}),
        stateDir: inv.stateDir,
        resume: inv.resume,
        lock,
        settings: settingsOf(inv) as unknown as { [key: string]: JsonValue },
        ...(inv.runTimeoutMs !== undefined ? { runTimeoutMs: inv.runTimeoutMs } : {}),
        ...(inv.executorPath ? { executorPath: inv.executorPath } : {}),
        ...(inv.chromiumPath ? { chromiumPath: inv.chromiumPath } : {}),
        ...(inv.browserWsEndpoint ? { browserWsEndpoint: inv.browserWsEndpoint } : {}),
        ...(inv.noBrowserReuse ? { noBrowserReuse: true } : {}),
        ...(inv.adapter ? { adapter: recordedTarget(inv.adapter) } : {}),
        ...(router ? { proxy: router } : {}),
        ...sinkConfig(inv),
        signal: io.signal,
        ...(inv.quiet ? {} : { onStderr: (chunk: Buffer) => { progress?.clear(); io.stderr(chunk.toString('utf8')); } }),
        onRun: (r) => progress?.runEnded(r),
        // The frontier's counters cost a few queries each; only a progress line reads them.
        ...(progress ? { onCounters: (c: FrontierCounters) => progress.counters(c) } : {}),
      });
    } catch (err) {
      if (err instanceof FrontierError) throw new UsageError(err.message);
      throw err;
    } finally {
      progress?.stop();
    }
    if (result.interrupted) return interrupted(inv, result, io, started);
    const authority = await finishTree({ backend, ledger, tree: finishedTreeOf(inv), frontier: () => Promise.resolve(SqliteFrontier.open(paths.db)) });
    // One notification per tree, none per child (SPEC §11); it never changes the exit code.
    const notification = authority.notificationId ? await sendOwnNotifications(ledger, [authority.notificationId], inv.adapter, io.signal) : undefined;
    return finished(inv, result, authority, io, started, notification);
  } catch (err) {
    if (err instanceof LedgerUnreachableError) {
      io.stderr(`quarry run: ${err.message}\n`);
      return 3;
    }
    throw err;
  } finally {
    await router?.close();
    lock?.release();
    await ledger?.close();
    await backend?.close();
  }
}

function acquire(lockPath: string): FrontierLock {
  try {
    return FrontierLock.acquire(lockPath, process.pid);
  } catch (err) {
    if (err instanceof FrontierLockedError) throw new CommandFailure(err.message, 2);
    throw err;
  }
}

/** The last root attempt's exit code (0 when it succeeded or never ended). */
export function rootExitCode(items: readonly ItemRecord[]): number {
  const root = items.find((i) => i.depth === 0);
  const last = root?.attempts.filter((a) => a.outcome !== null).at(-1);
  if (last?.outcome == null || last.outcome === 'expired' || last.outcome === 'abandoned' || last.outcome === 'interrupted') return 0;
  return OUTCOME_EXIT_CODES[last.outcome];
}

/** The `tree { … }` block of the report and the summary line (§10). */
export function treeBlock(treeId: string, c: FrontierCounters, a: Pick<TreeAuthority, 'authoritative' | 'reason'> | undefined): Record<string, unknown> {
  return {
    tree_id: treeId, admitted: c.admitted, succeeded: c.succeeded, failed: c.failed, retried: c.retried,
    deduplicated: c.deduplicated, not_executed_cap: c.not_executed_cap, not_executed_depth: c.not_executed_depth,
    authoritative: a?.authoritative ?? false, reason: a?.reason ?? 'interrupted',
  };
}

function summary(inv: TreeInvocation, r: TreeReport, a: TreeAuthority | undefined, started: number): string {
  return treeSummaryLine(inv.treeId, r.counters, a, r.runs.length, r.runs.reduce((n, x) => n + x.items, 0), Date.now() - started);
}

/** The tree's summary line: `tree_id=…, runs=…, items=…, duration=…s, admitted=…, …, reason=…`. */
export function treeSummaryLine(treeId: string, c: FrontierCounters, a: Pick<TreeAuthority, 'authoritative' | 'reason'> | undefined, runs: number, items: number, durationMs: number): string {
  const t = treeBlock(treeId, c, a);
  const parts = Object.entries(t).map(([k, v]) => `${k}=${String(v)}`);
  parts.splice(1, 0, `runs=${runs}`, `items=${items}`, `duration=${(durationMs / 1000).toFixed(2)}s`);
  return parts.join(', ');
}

function report(inv: TreeInvocation, r: TreeReport, a: TreeAuthority | undefined, exitCode: number, io: CliIO, notification?: NotificationReport): void {
  if (!inv.report) return;
  const root = [...r.runs].reverse().find((x: RunReport) => r.items.some((i) => i.depth === 0 && i.attempts.some((at) => at.run_id === x.run_id)));
  const json = {
    ...(root ?? {}),
    exit_code: exitCode,
    tree: treeBlock(inv.treeId, r.counters, a),
    ...(a ? { authority: { authoritative: a.authoritative, reason: a.reason, next: a.next } } : {}),
    ...(notification ? { notification } : {}),
    runs: r.runs.map((x) => ({ run_id: x.run_id, attempt: x.attempt, parent_run_id: x.parent_run_id ?? null, outcome: x.outcome, items: x.items, partition: x.storage.partition })),
  };
  writeReport(inv.report, JSON.stringify(json, null, 2), io);
}

/** The one command that continues this tree (flags that locate it included). */
export function resumeLine(inv: TreeInvocation): string {
  return ['quarry run --resume', inv.treeId, '--state-dir', inv.stateDir, '--storage-path', inv.storage.path,
    ...(inv.storage.backend === 's3' ? ['--storage-backend s3'] : []),
    ...(inv.partition.dataset !== 'quarry' ? ['--storage-dataset', inv.partition.dataset] : []),
    ...(inv.ledgerGiven ? ['--ledger', ledgerIdentity(inv.ledgerGiven)] : []),
  ].join(' ');
}

function interrupted(inv: TreeInvocation, r: TreeReport, io: CliIO, started: number): number {
  const code = interruptedExitCode(io.signal.reason === 'SIGTERM' ? 'SIGTERM' : 'SIGINT');
  if (!inv.quiet) io.stdout(`${summary(inv, r, undefined, started)}\n`);
  // Printed even with --quiet: without it the tree cannot be continued.
  io.stderr(`quarry run: tree ${inv.treeId} interrupted; continue it with: ${resumeLine(inv)}\n`);
  report(inv, r, undefined, code, io);
  return code;
}

function finished(inv: TreeInvocation, r: TreeReport, a: TreeAuthority, io: CliIO, started: number, notification?: NotificationReport): number {
  const rootCode = rootExitCode(r.items);
  const code = rootCode !== 0 ? rootCode : a.exitCode;
  if (!inv.quiet) {
    io.stdout(`${summary(inv, r, a, started)}\n`);
    io.stdout(`data: ${inv.storage.path} dataset ${inv.partition.dataset}, tree manifest ${a.manifestKey ?? '(not published)'}\n`);
    io.stdout(`ledger: ${a.line}\n`);
    if (notification) io.stdout(`${notificationLine(notification, { storage: inv.storage, dataset: inv.partition.dataset, ...(inv.ledgerGiven ? { ledger: inv.ledgerGiven } : {}) })}\n`);
  }
  if (a.exitCode !== 0 && rootCode === 0) io.stderr(`quarry run: tree ${inv.treeId} is not authoritative: ${a.line}${a.next ? `; next: ${a.next}` : ''}\n`);
  report(inv, r, a, code, io, notification);
  return code;
}
