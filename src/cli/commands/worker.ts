/**
 * `quarry worker` (SPEC §12): takes runs of queued trees from a BullMQ queue
 * and runs them in this machine's run slots, with this machine's scripts
 * dir, storage client, ledger and browser. A job submitted for another
 * storage or ledger is refused with one line. SIGTERM (or Ctrl-C): stop
 * taking work, let runs in flight finish for up to 30 s, then interrupt them
 * and hand them back; exit 0 once every slot is closed.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { storageIdentity } from '../../ledger/binding.js';
import { isPostgresUrl, type Ledger } from '../../ledger/ledger.js';
import type { Frontier, TreeOptions } from '../../scheduler/frontier.js';
import { checkQueueName, DEFAULT_QUEUE_NAME, QueueWorker, type QueueTreeResult } from '../../scheduler/work-queue.js';
import type { StorageBackend } from '../../storage/backend.js';
import { STORAGE_FLAGS } from '../common-flags.js';
import { parseFlags, renderFlagHelp, UsageError, type FlagSpec, type ParsedFlags } from '../flags.js';
import type { CliIO } from '../io.js';
import { loadPoolsFile, mergePools, parsePools, ProxyConfigError, type LoadedPools } from '../../proxy/pools-config.js';
import type { ProxyRouter } from '../../proxy/router.js';
import type { ProxyStateStore } from '../../proxy/state.js';
import { openProxyStateStore, proxyPlanFromStored, proxyRouterOn, type ConfigPools } from './proxy-setup.js';
import { drainCommand, LedgerUnreachableError, openRunLedger, openStorage, sinkConfig } from './run-execute.js';
import { compileAdapterFlags, compileSinkFlags, compileStorage, type RunPlan } from './run.js';
import { finishedTreeFromOptions, finishTree } from './run-tree-finish.js';
import { rootExitCode } from './run-tree.js';
import { recordedTarget, type AdapterOptions } from '../../notify/adapter-config.js';
import { sinkTarget, type RedisSinkOptions } from '../../notify/redis-stream-sink.js';
import type { NotificationReport, RunReport } from '../../runtime/report.js';
import { RUN_FLAGS } from './run-flags.js';
import { sendOwnNotifications } from './run-notify.js';
import { ledgerIdentity, parseStoredSettings } from './tree-settings.js';

export const WORKER_USAGE = `Usage: quarry worker --queue <redis-url> --scripts-dir DIR --storage-backend s3 --storage-path BUCKET/PREFIX --ledger postgres://… [options]

Takes the runs of trees submitted with quarry run --queue from a BullMQ queue
and runs them in run slots on this machine until SIGTERM or Ctrl-C (then runs
in flight get --stop-grace, 30 s, to finish before they are interrupted and
handed back).
Targets resolve under --scripts-dir; a script whose SHA-256 differs from the
submitted one fails that run. Secrets stay here: proxy pools, the --adapter
a finalized tree's notification is sent with (trees submitted with --adapter
naming the same target; otherwise it stays in the ledger outbox for quarry
adapter drain) and the --event-sink every run streams its events to.
Exit 0 after a clean stop, 2 on a usage error.

Example:
  quarry worker --queue redis://10.0.0.5:6379 --slots 4 --scripts-dir /srv/scripts \\
    --storage-backend s3 --storage-path lake/quarry --ledger postgres://quarry@db/quarry`;

/** Runs in flight get this long to finish after SIGTERM before they are interrupted and handed back (`--stop-grace`). */
export const WORKER_GRACE_MS = 30_000;

/** `quarry run`'s adapter flags: on a worker, the adapter (with its secrets) it sends queued trees' notifications with (SPEC §12). */
const ADAPTER_FLAGS = ['adapter', 'adapter-url', 'adapter-header', 'adapter-channel', 'adapter-timeout', 'adapter-retries'];
/** `quarry run`'s event sink flags: on a worker, the sinks of every run it executes (SPEC §11, §12). */
const SINK_FLAGS = ['event-sink', 'event-sink-lode-delivery', 'event-sink-redis-url', 'event-sink-redis-stream-key', 'event-sink-redis-max-len', 'event-sink-redis-ttl', 'event-sink-redis-timeout', 'event-sink-redis-retries', 'event-sink-redis-delivery'];

/** The worker's adapter and sink flags: `quarry run`'s, with what they mean on a worker. */
function workerRunFlags(): FlagSpec[] {
  const help: Record<string, string> = {
    adapter: 'webhook|redis: the adapter this worker sends the notification of a tree it finalizes with, when the tree was submitted with --adapter naming the same target (else the notification stays in the ledger outbox for quarry adapter drain)',
    'adapter-url': 'Webhook URL or redis:// server, with the credentials and query the submitter\'s --adapter-url leaves out',
    'event-sink': 'Live event sink of every run this worker executes (repeatable): redis copies each event to a Redis stream off the hot path; lode (storage) is always on',
  };
  return [...ADAPTER_FLAGS, ...SINK_FLAGS].map((name) => {
    const f = RUN_FLAGS.find((r) => r.name === name)!;
    return { ...f, ...(help[name] ? { help: help[name] } : {}) };
  });
}

export const WORKER_FLAGS: readonly FlagSpec[] = [
  { name: 'queue', type: 'string', arg: 'URL', help: 'Redis server of the queue and the frontiers (redis:// or rediss://; required)', group: 'Queue' },
  { name: 'queue-name', type: 'string', arg: 'NAME', default: DEFAULT_QUEUE_NAME, help: 'Queue name: deployments (or tests) sharing one Redis use different names', group: 'Queue' },
  { name: 'slots', type: 'int', default: 1, help: 'Runs at once on this worker (one run slot each)', group: 'Queue' },
  { name: 'stop-grace', type: 'duration', arg: 'DURATION', help: 'After SIGTERM, runs in flight get this long to finish before they are interrupted and handed back (default 30s)', group: 'Queue' },
  { name: 'scripts-dir', type: 'string', arg: 'DIR', help: 'Folder the submitted targets resolve under (required; the same scripts as the submitter\'s)', group: 'Queue' },
  { name: 'config', type: 'string', arg: 'FILE', help: 'YAML config: storage, ledger, browser, proxies:, adapter: and events: (with their ${VAR} secrets) come from it unless given as flags', group: 'Run' },
  { name: 'proxy-config', type: 'string', arg: 'FILE', help: 'JSON file of proxy pools, beside the config file\'s proxies: (trees submitted with --proxy-pool NAME take its endpoints and passwords from here)', group: 'Run' },
  { name: 'run-timeout', type: 'duration', help: 'End a run still going after this long (default: the tree\'s --run-timeout)', group: 'Run' },
  ...workerRunFlags(),
  ...STORAGE_FLAGS,
  { name: 'ledger', type: 'string', arg: 'URL', help: 'PostgreSQL ledger URL (required; the submitter\'s ledger)', group: 'Ledger' },
  { name: 'executor', type: 'string', arg: 'PATH', help: 'Executor entry (advanced; the bundled one by default)', group: 'Browser' },
  { name: 'chromium-path', type: 'string', arg: 'PATH', help: 'Chromium binary (default $QUARRY_CHROMIUM_PATH or /usr/bin/chromium)', group: 'Browser' },
  { name: 'quiet', type: 'bool', help: 'No line per run on stderr (refusals and errors are still printed)', group: 'Output' },
];

/** Config keys a worker takes (the rest of a run config describes runs, which come from the queue). */
const CONFIG_FLAGS = new Set(['storage-dataset', 'storage-backend', 'storage-path', 'storage-region', 'storage-endpoint', 'storage-s3-path-style', 'storage-request-timeout', 'ledger', 'chromium-path', 'executor', 'run-timeout', 'proxy-config', ...ADAPTER_FLAGS, ...SINK_FLAGS]);

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** A worker, fully checked before any I/O. */
export interface WorkerPlan {
  url: string;
  queueName: string;
  slots: number;
  scriptsDir: string;
  storage: RunPlan['storage'];
  ledger: string;
  runTimeoutMs?: number;
  executorPath?: string;
  chromiumPath?: string;
  quiet: boolean;
  /** `--stop-grace` (ms). */
  graceMs: number;
  /** `--proxy-config` (absolute), if any. */
  proxyConfigFile?: string;
  /** `--adapter …`: this worker's adapter, credentials included, in memory only. */
  adapter?: AdapterOptions;
  /** `--event-sink redis …`: the sink of every run this worker executes. */
  redisSink?: RedisSinkOptions;
  /** One-line notices (flags accepted with no effect). */
  notices: string[];
}

/**
 * Checks the worker's flags (pure but for looking at the scripts dir).
 * @throws UsageError naming what to fix.
 */
export function compileWorkerPlan(p: ParsedFlags, env: NodeJS.ProcessEnv, cwd: string): WorkerPlan {
  const v = p.values;
  if (p.positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(p.positionals[0])} (flags start with --)`);
  const url = str(v.queue);
  if (url === undefined) throw new UsageError('--queue is required: the Redis URL of the queue, e.g. --queue redis://127.0.0.1:6379');
  const scripts = str(v['scripts-dir']);
  if (scripts === undefined) throw new UsageError('--scripts-dir is required: the folder of the scripts the trees were submitted with');
  const scriptsDir = resolve(cwd, scripts);
  let isDir = false;
  try {
    isDir = statSync(scriptsDir).isDirectory();
  } catch {
    throw new UsageError(`--scripts-dir ${scripts}: no such folder`);
  }
  if (!isDir) throw new UsageError(`--scripts-dir ${scripts}: not a folder`);
  const queueName = v['queue-name'] as string;
  try {
    checkQueueName(queueName);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const slots = v.slots as number;
  if (slots < 1) throw new UsageError(`--slots must be 1 or more, got ${slots}`);
  const storage = compileStorage(v, cwd);
  const ledger = str(v.ledger);
  checkQueueStores('quarry worker', storage, ledger);
  const runTimeout = v['run-timeout'] as number | undefined;
  if (runTimeout !== undefined && runTimeout <= 0) throw new UsageError(`--run-timeout must be more than 0, e.g. 10m, got ${runTimeout}ms`);
  const graceMs = (v['stop-grace'] as number | undefined) ?? WORKER_GRACE_MS;
  const executorPath = str(v.executor) ? resolve(cwd, str(v.executor)!) : undefined;
  const chromiumPath = str(v['chromium-path']) ?? str(env.QUARRY_CHROMIUM_PATH);
  const proxyConfig = str(v['proxy-config']);
  const notices: string[] = [];
  const adapter = compileAdapterFlags(p);
  const redisSink = compileSinkFlags(p, notices);
  return {
    notices,
    ...(adapter ? { adapter } : {}),
    ...(redisSink ? { redisSink } : {}),
    ...(proxyConfig ? { proxyConfigFile: resolve(cwd, proxyConfig) } : {}),
    url, queueName, slots, scriptsDir, storage, ledger: ledger!, quiet: v.quiet === true, graceMs,
    ...(runTimeout !== undefined ? { runTimeoutMs: runTimeout } : {}),
    ...(executorPath ? { executorPath } : {}),
    ...(chromiumPath ? { chromiumPath } : {}),
  };
}

/**
 * `--queue` needs stores every machine sees: S3 storage and a PostgreSQL ledger (SPEC §12).
 * @throws UsageError naming the store that is not.
 */
export function checkQueueStores(who: string, storage: RunPlan['storage'], ledger: string | undefined): void {
  if (storage.backend !== 's3') {
    throw new UsageError(`${who === 'quarry worker' ? 'a worker' : '--queue'} needs S3 storage (--storage-backend s3 --storage-path BUCKET/PREFIX): fs storage at ${storage.path} is not seen by the other machines`);
  }
  if (ledger === undefined || !isPostgresUrl(ledger)) {
    throw new UsageError(`${who === 'quarry worker' ? 'a worker' : '--queue'} needs a PostgreSQL ledger (--ledger postgres://…): ${ledger === undefined ? 'none was given' : 'a SQLite ledger is not seen by the other machines'}`);
  }
}

/** Entry of `quarry worker`: runs until a signal; returns the exit code. */
export async function workerCommand(argv: readonly string[], io: CliIO): Promise<number> {
  let parsed = parseFlags(argv, WORKER_FLAGS);
  if (parsed.help) {
    io.stdout(`${WORKER_USAGE}\n${renderFlagHelp(WORKER_FLAGS)}\n`);
    return 0;
  }
  let configPools: ConfigPools | undefined;
  if (typeof parsed.values.config === 'string') {
    const { loadRunConfig } = await import('../config.js');
    const config = await loadRunConfig(parsed.values.config, io.cwd, io.env);
    if (config.proxies !== undefined) configPools = { file: resolve(io.cwd, config.file), proxies: config.proxies };
    const values = { ...parsed.values };
    for (const [flag, value] of Object.entries(config.values)) if (CONFIG_FLAGS.has(flag) && !parsed.explicit.has(flag)) values[flag] = value;
    parsed = { ...parsed, values };
  }
  const plan = compileWorkerPlan(parsed, io.env, io.cwd);
  const pools = await loadWorkerPools(plan, configPools, io.cwd);
  for (const w of [...plan.notices, ...(pools?.warnings ?? [])]) io.stderr(`quarry worker: ${w}\n`);
  let ledger: Ledger | undefined;
  let backend: StorageBackend | undefined;
  let worker: QueueWorker | undefined;
  let proxyState: ProxyStateStore | undefined;
  try {
    // One store for every tree's selections: Redis under the queue's prefix, shared by all workers (SPEC §12).
    if (pools !== undefined) proxyState = await openProxyStateStore({ queue: plan.url, queueName: plan.queueName });
    const state = proxyState;
    ledger = await openRunLedger(plan.ledger);
    backend = await openStorage(plan);
    const store = backend;
    const led = ledger;
    const identity = {
      storage: storageIdentity({ backend: plan.storage.backend, path: plan.storage.path, ...(plan.storage.endpoint ? { endpoint: plan.storage.endpoint } : {}) }),
      ledger: ledgerIdentity(plan.ledger),
    };
    worker = await QueueWorker.start({
      url: plan.url, queueName: plan.queueName, slots: plan.slots, identity,
      run: {
        scriptsRoot: plan.scriptsDir, backend: store,
        ...(plan.executorPath ? { executorPath: plan.executorPath } : {}),
        ...(plan.chromiumPath ? { chromiumPath: plan.chromiumPath } : {}),
        ...(plan.runTimeoutMs !== undefined ? { runTimeoutMs: plan.runTimeoutMs } : {}),
        ...sinkConfig(plan),
      },
      finalize: async (frontier, options, signal) => {
        const r = await finalizeQueuedTree(frontier, options, store, led);
        if (r.notification_id === undefined) return r;
        const { notification_id: id, ...rest } = r;
        return { ...rest, notification: await notifyQueuedTree(id, options, plan, led, signal, io) };
      },
      ...(pools !== undefined && state !== undefined ? { proxyFor: (stored: Record<string, unknown>) => workerProxy(stored, pools, state, io) } : {}),
      onStderr: (line) => io.stderr(line),
      ...(plan.quiet ? {} : {
        onRun: (r, lease) => io.stderr(`quarry worker: run ${r.run_id} of ${lease.item.target} (tree ${lease.tree_id}, attempt ${lease.attempt}): ${r.outcome}, ${r.items} item(s)${sinkNote(r)}\n`),
      }),
    });
    const extras = [
      ...(plan.adapter ? [`notifications by ${plan.adapter.kind} ${recordedTarget(plan.adapter).target}`] : []),
      ...(plan.redisSink ? [`events to redis ${sinkTarget(plan.redisSink)} (${plan.redisSink.delivery})`] : []),
    ];
    io.stderr(`quarry worker: ${worker.owner} takes runs from queue ${plan.queueName} at ${ledgerIdentity(plan.url)} with ${plan.slots} slot(s); scripts in ${plan.scriptsDir}${extras.map((e) => `; ${e}`).join('')}\n`);
    await new Promise<void>((r) => {
      if (io.signal.aborted) r();
      else io.signal.addEventListener('abort', () => r(), { once: true });
    });
    io.stderr(`quarry worker: ${String(io.signal.reason)}: taking no more work; runs in flight get ${plan.graceMs / 1000} s to finish, then are handed back\n`);
    await worker.stop(plan.graceMs);
    worker = undefined;
    io.stderr('quarry worker: stopped\n');
    return 0;
  } catch (err) {
    if (err instanceof LedgerUnreachableError) {
      io.stderr(`quarry worker: ${err.message}\n`);
      return 3;
    }
    if (err instanceof Error && err.name === 'FrontierError') throw new UsageError(err.message);
    throw err;
  } finally {
    await worker?.stop(0);
    await proxyState?.close();
    await ledger?.close();
    await backend?.close();
  }
}

/**
 * The worker's own pools: `proxies:` of its `--config` and its
 * `--proxy-config` (SPEC §12: endpoints and passwords never travel with a
 * tree). Undefined when it has none.
 * @throws UsageError naming the file and field of a bad pool.
 */
async function loadWorkerPools(plan: WorkerPlan, config: ConfigPools | undefined, cwd: string): Promise<LoadedPools | undefined> {
  if (config === undefined && plan.proxyConfigFile === undefined) return undefined;
  try {
    const fromConfig = config ? parsePools(config.proxies, `config ${config.file}`, 'proxies') : undefined;
    const fromFile = plan.proxyConfigFile !== undefined ? await loadPoolsFile(plan.proxyConfigFile, cwd) : undefined;
    return mergePools(fromConfig, fromFile);
  } catch (err) {
    if (err instanceof ProxyConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * The router of a queued tree's runs on this worker: the tree's pool name and
 * selection options over this worker's endpoints, its state shared in Redis.
 * @throws Error naming the pool when this worker lacks it (each run of the tree fails here with that line).
 */
function workerProxy(stored: Record<string, unknown>, pools: LoadedPools, state: ProxyStateStore, io: CliIO): ProxyRouter {
  // The submitter's file paths mean nothing here: only the pool and its selection options travel.
  const { configFile: _c, proxyConfigFile: _p, ...plan } = proxyPlanFromStored(stored);
  if (!pools.pools.has(plan.pool)) {
    throw new Error(`this worker has no proxy pool ${JSON.stringify(plan.pool)} (its --proxy-config and --config proxies: give ${[...pools.pools.keys()].join(', ') || 'none'}); give every worker the pool`);
  }
  return proxyRouterOn({ plan, pools }, state, (m) => io.stderr(`quarry worker: ${m}\n`));
}

/**
 * Publishes a queued tree's manifest and validates the tree (§8, §12): what
 * the worker that won `claimFinalization()` does.
 */
export async function finalizeQueuedTree(frontier: Frontier, options: TreeOptions, backend: StorageBackend, ledger: Ledger): Promise<Omit<QueueTreeResult, 'finalized_by' | 'counters'> & { notification_id?: string }> {
  const s = parseStoredSettings(options.run, options.tree_id);
  const a = await finishTree({ backend, ledger, frontier, tree: finishedTreeFromOptions(options, s.storage.path) });
  const rootCode = rootExitCode(await frontier.items());
  return {
    exit_code: rootCode !== 0 ? rootCode : a.exitCode, authoritative: a.authoritative, reason: a.reason, line: a.line, next: a.next,
    manifest_key: a.manifestKey ?? null,
    ...(a.notificationId ? { notification_id: a.notificationId } : {}),
  };
}

/**
 * Sends the tree's notification (SPEC §11, §12) that its validation just
 * inserted, with this worker's own adapter when it names the tree's target;
 * else leaves it pending in the outbox for `quarry adapter drain`, with one
 * line saying so. Never throws: a failure leaves the row pending.
 */
async function notifyQueuedTree(id: string, options: TreeOptions, plan: WorkerPlan, ledger: Ledger, signal: AbortSignal, io: CliIO): Promise<NotificationReport> {
  const stored = (options.run as { adapter?: { kind?: string; target?: string } }).adapter;
  const wanted = `${stored?.kind ?? '?'} ${stored?.target ?? '?'}`;
  const drain = drainCommand({ storage: plan.storage, dataset: parseStoredSettings(options.run, options.tree_id).partition.dataset, ledger: plan.ledger });
  const own = plan.adapter !== undefined ? recordedTarget(plan.adapter) : undefined;
  if (own === undefined || own.kind !== stored?.kind || own.target !== stored.target) {
    const why = `this worker has no --adapter for ${wanted} (${own ? `its adapter is ${own.kind} ${own.target}` : 'it has none'})`;
    io.stderr(`quarry worker: tree ${options.tree_id}: notification ${id} left pending in the ledger outbox: ${why}; send it with ${drain}\n`);
    return { notification_id: id, target: stored?.target ?? '', status: 'pending', attempts: 0, error: why, superseded: [] };
  }
  const n = await sendOwnNotifications(ledger, [id], plan.adapter, signal);
  if (n.status === 'delivered') {
    if (!plan.quiet) io.stderr(`quarry worker: tree ${options.tree_id}: notification ${id} delivered to ${n.target} (${n.attempts} attempt${n.attempts === 1 ? '' : 's'})\n`);
  } else {
    io.stderr(`quarry worker: tree ${options.tree_id}: notification ${id} NOT delivered to ${n.target || wanted} (${n.error ?? 'not sent'}); it stays in the ledger outbox: send it with ${drain}\n`);
  }
  return n;
}

/** A run's sink counters for the worker's line: drops are never silent. */
function sinkNote(r: RunReport): string {
  const sinks = r.event_sinks ?? [];
  return sinks.map((k) => `; event sink ${k.kind}: ${k.sent} sent, ${k.dropped} dropped${k.last_error ? ` (${k.last_error})` : ''}`).join('');
}
