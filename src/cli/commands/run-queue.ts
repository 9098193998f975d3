/**
 * `quarry run --queue <redis-url>` (SPEC §12): submits a tree to the queue —
 * its frontier in Redis, its root's job in BullMQ — and waits for the
 * workers to finish it, with live progress on a TTY, then prints the tree's
 * summary and exits with its code (§8, §10); or, with `--detach`, prints the
 * tree id at once. `inspect run <tree_id> --queue` follows a queued tree
 * ({@link inspectQueuedTree}).
 */
import { ulid } from 'ulid';
import type { Redis } from 'ioredis';
import { storageIdentity } from '../../ledger/binding.js';
import type { Ledger } from '../../ledger/ledger.js';
import type { JsonValue } from '../../scheduler/canonical-json.js';
import { FrontierError } from '../../scheduler/frontier.js';
import { RedisFrontier } from '../../scheduler/redis-frontier.js';
import { registerQueuedTree } from '../../scheduler/queue-reconcile.js';
import { submitSharedTree } from '../../scheduler/shared-tree.js';
import { reachKillPoint } from '../../runtime/kill-point.js';
import { dedupKey, resolveTarget } from '../../scheduler/target.js';
import { addItemJob, checkQueueName, openQueue, QUEUE_LEASE_MS, queueKeys, readQueueTree, type QueueTreeResult, type QueueTreeState } from '../../scheduler/work-queue.js';
import { signalExitCode } from '../interruptible.js';
import { parseFlags, UsageError, type FlagSpec } from '../flags.js';
import type { CliIO } from '../io.js';
import { render, renderOptionsFrom } from '../render.js';
import { TreeProgress } from '../tree-progress.js';
import { bindRun, drainCommand, LedgerUnreachableError, notificationLine, openRunLedger } from './run-execute.js';
import { compileTreeInvocation, settingsOf, treeBlock, treeSummaryLine } from './run-tree.js';
import { checkReportTarget, writeReport, type RunPlan } from './run.js';
import { ledgerIdentity, parseStoredSettings } from './tree-settings.js';
import { RUN_ID_RE } from '../../storage/layout.js';
import { checkQueueStores } from './worker.js';
import { storedProxyPlan } from './proxy-setup.js';
import { recordedTarget, type AdapterOptions } from '../../notify/adapter-config.js';

/** How often a waiting submitter (or `inspect run --queue`) reads the tree's state. */
const POLL_MS = 500;

/** `quarry run --queue`: checks, submits, then waits (or detaches). Returns the exit code. */
export async function runQueuedTree(plan: RunPlan, values: Record<string, unknown>, io: CliIO): Promise<number> {
  const url = values.queue as string;
  const queueName = queueNameOf(values['queue-name']);
  checkQueueStores('quarry run', plan.storage, plan.ledger);
  const detach = values.detach === true;
  const tree = plan.tree ?? { depth: 0, maxRuns: 1, parallel: 1, allowFailedChildren: 0 };
  const inv = await compileTreeInvocation({ ...plan, ...(plan.runId ? {} : { runId: ulid() }) }, tree, io);
  const keys = queueKeys(queueName);
  let ledger: Ledger | undefined;
  let frontier: RedisFrontier | undefined;
  let redis: Redis | undefined;
  const queue = await openQueue(url, queueName);
  try {
    ledger = await openRunLedger(inv.ledger);
    await bindRun({ dataset: inv.partition.dataset, storage: inv.storage }, inv.treeId, ledger);
    await ledger.close();
    ledger = undefined;
    const { Redis: RedisClient } = await import('ioredis');
    redis = new RedisClient(url, { maxRetriesPerRequest: 3 });
    const root = await resolveTarget(inv.scriptsRoot, inv.scriptPath);
    if (!root.ok) throw new UsageError(`--script: ${root.detail}`);
    const script = root.relPath;
    const data = {
      tree_id: inv.treeId,
      storage: storageIdentity({ backend: inv.storage.backend, path: inv.storage.path, ...(inv.storage.endpoint ? { endpoint: inv.storage.endpoint } : {}) }),
      ledger: ledgerIdentity(inv.ledger),
    };
    // Registered before its frontier exists: a submitter that dies after admitting the root leaves a tree the workers' reconciliation finds.
    await registerQueuedTree(redis, keys.frontierPrefix, inv.treeId, data);
    try {
      frontier = await RedisFrontier.create(redis, {
        tree_id: inv.treeId, max_depth: tree.depth, max_runs: tree.maxRuns, parallel: tree.parallel, retries: inv.retries, lease_ms: QUEUE_LEASE_MS,
        run: { ...(settingsOf(inv) as unknown as { [key: string]: JsonValue }), ...queueProxySettings(plan), ...queueAdapterSettings(plan), script, job: inv.job, partition: { ...inv.partition }, policy: { ...inv.policy } },
      }, { keyPrefix: keys.frontierPrefix });
      await submitSharedTree(frontier, inv.scriptsRoot);
    } catch (err) {
      if (err instanceof FrontierError) throw new UsageError(err.message);
      throw err;
    }
    reachKillPoint('queue_before_add');
    await addItemJob(queue, data, dedupKey(script, {}), 1);
    const follow = `quarry inspect run ${inv.treeId} --queue ${ledgerIdentity(url)}${queueName !== 'quarry' ? ` --queue-name ${queueName}` : ''}`;
    if (detach) {
      io.stdout(`${inv.treeId}\n`);
      if (!inv.quiet) io.stderr(`quarry run: tree ${inv.treeId} submitted to queue ${queueName}; follow it with: ${follow}\n`);
      if (!inv.quiet && plan.adapter) io.stderr(`quarry run: ${workersNotify(plan.adapter)}\n`);
      return 0;
    }
    return await waitAndPrint(redis, queueName, frontier, io, {
      quiet: inv.quiet, follow, storagePath: inv.storage.path, dataset: inv.partition.dataset, ...(inv.report ? { report: inv.report } : {}),
      ...(plan.adapter ? { notification: (r: QueueTreeResult) => (r.notification ? notificationLine(r.notification, plan) : `notification: the finalizing worker sent none (see the ledger line); a row of the tree's validation stays in the ledger outbox: send it with ${drainCommand(plan)}`) } : {}),
    });
  } catch (err) {
    if (err instanceof LedgerUnreachableError) {
      io.stderr(`quarry run: ${err.message}\n`);
      return 3;
    }
    throw err;
  } finally {
    await frontier?.close();
    await redis?.quit().catch(() => redis?.disconnect());
    await queue.close();
    await ledger?.close();
  }
}

/** How {@link waitAndPrint} shows the tree. */
interface WaitShow {
  quiet: boolean; follow: string; storagePath: string; dataset: string; report?: string;
  /** The `notification:` line after the ledger's (a tree submitted with `--adapter`). */
  notification?: (r: QueueTreeResult) => string;
}

/** Waits for the workers to finish the tree, then prints its summary (and report); returns its exit code. */
async function waitAndPrint(redis: Redis, queueName: string, frontier: RedisFrontier, io: CliIO, show: WaitShow): Promise<number> {
  const treeId = frontier.treeId;
  const started = Date.now();
  const final = await waitForTree(redis, queueName, frontier, io, show.quiet);
  if (final === undefined) {
    // The tree is the workers' now: stopping the wait stops nothing.
    io.stderr(`quarry run: stopped waiting; tree ${treeId} goes on on the workers; follow it with: ${show.follow}\n`);
    return signalExitCode(io.signal);
  }
  const r = final.result!;
  if (!show.quiet) {
    io.stdout(`${treeSummaryLine(treeId, r.counters, r, final.runs, final.items, Date.now() - started)}\n`);
    io.stdout(`data: ${show.storagePath} dataset ${show.dataset}, tree manifest ${r.manifest_key ?? '(not published)'}\n`);
    io.stdout(`ledger: ${r.line}\n`);
    if (show.notification) io.stdout(`${show.notification(r)}\n`);
  }
  if (!r.authoritative && r.exit_code !== 0) io.stderr(`quarry run: tree ${treeId} is not authoritative: ${r.line}${r.next ? `; next: ${r.next}` : ''}\n`);
  if (show.report) {
    writeReport(show.report, JSON.stringify({
      exit_code: r.exit_code, tree: treeBlock(treeId, r.counters, r), runs: final.runs, items: final.items,
      authority: { authoritative: r.authoritative, reason: r.reason, next: r.next }, finalized_by: r.finalized_by,
      ...(r.notification ? { notification: r.notification } : {}),
    }, null, 2), io);
  }
  return r.exit_code;
}

/** Flags `--resume <tree_id> --queue` accepts; any other is refused. */
const QUEUE_RESUME_FLAGS = ['resume', 'queue', 'queue-name', 'detach', 'quiet', 'report'];

/**
 * `quarry run --resume <tree_id> --queue URL`: hands a queued tree back to
 * the workers and waits for it like its submitter. Items still queued get
 * their job again (an existing job id is a no-op); a tree whose finalization
 * failed (SPEC §12: tried with backoff, then given up) is opened for a new
 * finalization; a finished tree is only shown. Returns the tree's exit code.
 */
export async function resumeQueuedTree(values: Record<string, unknown>, explicit: ReadonlySet<string>, io: CliIO): Promise<number> {
  const treeId = typeof values.resume === 'string' ? values.resume : '';
  if (!RUN_ID_RE.test(treeId)) throw new UsageError(`--resume ${JSON.stringify(treeId)}: a tree id matches [A-Za-z0-9._-]{1,128} (printed by quarry run --queue --detach)`);
  const stray = [...explicit].find((f) => !QUEUE_RESUME_FLAGS.includes(f));
  if (stray !== undefined) throw new UsageError(`--${stray} cannot be given with --resume --queue: a queued tree keeps the options it was submitted with, and the workers their storage and ledger (only --queue-name, --detach, --quiet and --report are accepted)`);
  const url = values.queue as string;
  const queueName = queueNameOf(values['queue-name']);
  const report = typeof values.report === 'string' && values.report !== '' ? values.report : undefined;
  if (report) checkReportTarget(report, io.cwd);
  const keys = queueKeys(queueName);
  const { Redis: RedisClient } = await import('ioredis');
  const redis = new RedisClient(url, { maxRetriesPerRequest: 3 });
  let frontier: RedisFrontier | undefined;
  const queue = await openQueue(url, queueName);
  try {
    try {
      frontier = await RedisFrontier.open(redis, treeId, { keyPrefix: keys.frontierPrefix });
    } catch (err) {
      if (err instanceof FrontierError) throw new UsageError(`--resume ${treeId} --queue: ${err.message}`);
      throw err;
    }
    const s = parseStoredSettings((await frontier.options()).run, treeId);
    const data = {
      tree_id: treeId,
      storage: storageIdentity({ backend: s.storage.backend, path: s.storage.path, ...(s.storage.endpoint ? { endpoint: s.storage.endpoint } : {}) }),
      ledger: s.ledger,
    };
    await registerQueuedTree(redis, keys.frontierPrefix, treeId, data);
    const notice = (m: string): void => { if (values.quiet !== true) io.stderr(`quarry run: ${m}\n`); };
    if (await frontier.reopenFinalization()) {
      await redis.multi().del(keys.result(treeId)).hdel(keys.progress(treeId), 'finalize_error').exec();
      await queue.add('lease', data, { jobId: `${treeId}-finalize-${Date.now()}`, removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600 } });
      notice(`tree ${treeId}: its finalization had failed; a worker finalizes it again`);
    } else {
      let queued = 0;
      for (const item of await frontier.items()) {
        if (item.state !== 'queued') continue;
        await addItemJob(queue, data, item.key, item.attempts.length + 1);
        queued++;
      }
      const c = await frontier.counters();
      if (queued > 0 || c.running > 0) notice(`tree ${treeId}: ${c.running} run(s) in flight, ${queued} queued item(s) handed to the workers`);
    }
    const follow = `quarry inspect run ${treeId} --queue ${ledgerIdentity(url)}${queueName !== 'quarry' ? ` --queue-name ${queueName}` : ''}`;
    if (values.detach === true) {
      io.stdout(`${treeId}\n`);
      notice(`follow it with: ${follow}`);
      return 0;
    }
    return await waitAndPrint(redis, queueName, frontier, io, { quiet: values.quiet === true, follow, storagePath: s.storage.path, dataset: s.partition.dataset, ...(report ? { report } : {}) });
  } finally {
    await frontier?.close();
    await redis.quit().catch(() => redis.disconnect());
    await queue.close();
  }
}

/** The tree's `--proxy-pool` as the workers read it: the pool name and selection options, no file paths, never an endpoint. */
function queueProxySettings(plan: RunPlan): { proxy?: { [key: string]: JsonValue } } {
  if (plan.queueProxy === undefined) return {};
  const { configFile: _c, proxyConfigFile: _p, ...choice } = plan.queueProxy;
  return { proxy: storedProxyPlan(choice) };
}

/**
 * The tree's `--adapter` as the workers read it: its kind and recorded target
 * (SPEC §8: a URL without credentials or query, a Redis channel), never the
 * headers or secrets, which each worker takes from its own adapter.
 */
function queueAdapterSettings(plan: RunPlan): { adapter?: { [key: string]: JsonValue } } {
  if (plan.adapter === undefined) return {};
  const t = recordedTarget(plan.adapter);
  return { adapter: { kind: t.kind, target: t.target } };
}

/** Who sends a queued tree's notification, in one line. */
function workersNotify(a: AdapterOptions): string {
  const t = recordedTarget(a);
  return `the tree's notification to ${t.kind} ${t.target} is sent by the worker that finalizes it, with that worker's own --adapter for this target (headers and credentials are never queued); without one it stays in the ledger outbox for quarry adapter drain`;
}

function queueNameOf(v: unknown): string {
  const name = typeof v === 'string' && v !== '' ? v : 'quarry';
  try {
    return checkQueueName(name);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/**
 * Reads the tree's state until a worker wrote its result (returned), or the
 * signal aborts (undefined). On a TTY (and not quiet) a live line shows it.
 */
async function waitForTree(redis: Redis, queueName: string, frontier: RedisFrontier, io: CliIO, quiet: boolean): Promise<QueueTreeState | undefined> {
  const progress = !quiet && io.stderrIsTTY ? new TreeProgress((t) => io.stderr(t), frontier.treeId) : undefined;
  try {
    for (;;) {
      const s = await readQueueTree(redis, queueName, frontier);
      progress?.totals(s.runs, s.items);
      progress?.counters(s.counters);
      if (s.result !== undefined) return s;
      if (io.signal.aborted) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(r, POLL_MS);
        io.signal.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
      });
      if (io.signal.aborted) return undefined;
    }
  } finally {
    progress?.stop();
  }
}

/**
 * `quarry inspect run <tree_id> --queue URL`: the queued tree's state from
 * Redis, followed (a line on stderr per change) until a worker finalized it,
 * then printed (JSON, YAML or a table). Exit 0; 1 when the queue has no such
 * tree; 130/143 when interrupted while following.
 */
export async function inspectQueuedTree(argv: readonly string[], flags: readonly FlagSpec[], io: CliIO): Promise<number> {
  const p = parseFlags(argv, flags);
  const treeId = p.positionals[0];
  if (treeId === undefined || p.positionals.length > 1) throw new UsageError('give one tree id: quarry inspect run <tree_id> --queue URL');
  const url = p.values.queue as string;
  const queueName = queueNameOf(p.values['queue-name']);
  const { Redis: RedisClient } = await import('ioredis');
  const redis = new RedisClient(url, { maxRetriesPerRequest: 3 });
  let frontier: RedisFrontier | undefined;
  try {
    try {
      frontier = await RedisFrontier.open(redis, treeId, { keyPrefix: queueKeys(queueName).frontierPrefix });
    } catch (err) {
      if (err instanceof FrontierError) {
        io.stderr(`quarry inspect run: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
    let s = await readQueueTree(redis, queueName, frontier);
    let last = '';
    while (s.result === undefined && p.values['no-follow'] !== true && !io.signal.aborted) {
      const c = s.counters;
      const line = `tree ${treeId}: runs ${s.runs} done, ${c.running} running, ${c.queued} queued, ${c.failed} failed; ${s.items} items${s.finalize_error ? `; finalizing: ${s.finalize_error}` : ''}`;
      if (line !== last) io.stderr(`${line}\n`);
      last = line;
      await new Promise((r) => setTimeout(r, POLL_MS));
      s = await readQueueTree(redis, queueName, frontier);
    }
    if (s.result === undefined && io.signal.aborted) return signalExitCode(io.signal);
    const opts = await frontier.options();
    const data = {
      tree_id: treeId, state: s.result === undefined ? 'running' : s.result.reason === 'finalization_failed' ? 'finalization_failed' : 'finished', queue: queueName,
      options: { max_depth: opts.max_depth, max_runs: opts.max_runs, parallel: opts.parallel, retries: opts.retries, lease_ms: opts.lease_ms },
      counters: s.counters, runs: s.runs, items: s.items, ...(s.finalize_error ? { finalize_error: s.finalize_error } : {}), result: s.result ?? null,
    };
    io.stdout(render(data, renderOptionsFrom(p.values, io)));
    return 0;
  } finally {
    await frontier?.close();
    await redis.quit().catch(() => redis.disconnect());
  }
}
