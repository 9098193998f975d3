/**
 * Trees run by workers from a BullMQ queue (SPEC §12). The frontier (Redis,
 * `redis-frontier.ts`) decides everything — which item runs next, attempts,
 * the tree's `--parallel`, dedup, the cap; BullMQ carries the work to the
 * workers and notices a dead one (a job whose lock is not renewed goes back
 * to the queue).
 *
 * A queue job is a ticket for one lease of its tree: one job is added per
 * admitted item (attempt 1) and per re-run (attempt + 1, added before the
 * failed or interrupted attempt is completed), with the id
 * `<tree_id>-<sha256 of the dedup key>-<attempt>` (no `:`), so a re-run is
 * never swallowed as a duplicate. A worker taking a job leases from the
 * frontier (first admitted first, so usually that very item), runs it in a
 * run slot, and keeps leasing for the tree until the frontier grants nothing.
 * The job is then done if nothing of the tree is queued; otherwise (the
 * tree's `--parallel` is taken, or a lost lease is not expired yet) it is put
 * back, delayed, for any worker. So no queued item is ever left without a
 * job; a worker's death hands its active job back through BullMQ's stall
 * check, and its leases expire in the frontier, which counts the attempts
 * (BullMQ's stall counter is set out of the way). When nothing is queued or
 * running, the worker that wins `claimFinalization()` finalizes the tree
 * (through the caller's `finalize`) and writes its result where `quarry run
 * --queue` waits for it.
 */
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { ConnectionOptions, Job, Queue, Worker } from 'bullmq';
import { ulid } from 'ulid';
import type { AdapterTarget } from '../ledger/outbox.js';
import type { NotificationReport, RunReport } from '../runtime/report.js';
import { defaultExecutorPath } from '../runtime/run.js';
import { SlotPool } from '../runtime/slot-pool.js';
import { FrontierError, type Frontier, type FrontierCounters, type Lease, type TreeOptions } from './frontier.js';
import { startReconciler } from './queue-reconcile.js';
import { RedisFrontier } from './redis-frontier.js';
import { reachKillPoint } from '../runtime/kill-point.js';
import { sharedRun } from './shared-tree.js';
import { keyDigest } from './target.js';
import { runMember, type Member, type TreeConfig } from './tree.js';

/** The queue name when `--queue-name` is absent. */
export const DEFAULT_QUEUE_NAME = 'quarry';
/** Lease of a queued tree's runs: a dead worker's runs are leased again this long after its last renewal. */
export const QUEUE_LEASE_MS = 6_000;
/** BullMQ lock of an active job: a dead worker's job is back in the queue within this plus the stall check. */
const JOB_LOCK_MS = 10_000;
const STALL_CHECK_MS = 3_000;
/** How often a worker looks for admitted work without a queue job (and once at its start). */
const RECONCILE_MS = 30_000;
/** Attempts at finalizing a tree (publish, validate) before its result says it failed; waits of 1, 2, 4 s between. */
export const FINALIZE_ATTEMPTS = 4;
const FINALIZE_BACKOFF_MS = 1_000;
const QUEUE_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** What a queue job carries: its tree and what the submitter's storage and ledger are (no secrets). */
export interface QueueJobData {
  tree_id: string;
  /** The submitter's storage identity (`storageIdentity`). */
  storage: string;
  /** The submitter's ledger identity (a URL without password or query). */
  ledger: string;
}

/** Where a tree's outcome is, once a worker finalized it. */
export interface QueueTreeResult {
  exit_code: number;
  authoritative: boolean;
  reason: string;
  /** The ledger line of the summary. */
  line: string;
  next: string | null;
  manifest_key: string | null;
  counters: FrontierCounters;
  /** The worker (lease owner) that finalized it. */
  finalized_by: string;
  /**
   * The tree's notification (SPEC §11), when it was submitted with `--adapter`
   * and its validation inserted the outbox row: what the finalizing worker's
   * delivery did (`pending`: still in the outbox, for `quarry adapter drain`).
   */
  notification?: NotificationReport;
}

/** A Redis URL without its password, to print. */
function publicUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'URL';
  }
}

/** Checks `--queue-name`. @throws FrontierError naming the rule. */
export function checkQueueName(name: string): string {
  if (!QUEUE_NAME_RE.test(name)) throw new FrontierError(`--queue-name ${JSON.stringify(name)} must match [A-Za-z0-9._-]{1,64}`);
  return name;
}

/** The BullMQ job id of an item's attempt (SPEC §12). */
export function queueJobId(treeId: string, key: string, attempt: number): string {
  return `${treeId}-${keyDigest(key)}-${attempt}`;
}

/** The Redis keys of one queue's trees (the queue name keeps deployments on one Redis apart). */
export function queueKeys(name: string): { frontierPrefix: string; result(treeId: string): string; progress(treeId: string): string } {
  const base = `quarry:${name}:`;
  return {
    frontierPrefix: base,
    result: (treeId) => `${base}tree:{${treeId}}:result`,
    progress: (treeId) => `${base}tree:{${treeId}}:progress`,
  };
}

/**
 * BullMQ connection options for a `redis://` or `rediss://` URL (BullMQ
 * needs `maxRetriesPerRequest: null`). @throws FrontierError for another scheme.
 */
export function bullConnection(url: string): ConnectionOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FrontierError('--queue must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new FrontierError(`--queue must be a redis:// or rediss:// URL, got ${u.protocol}//…`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new FrontierError(`--queue: ${JSON.stringify(u.pathname)} is not a Redis database number`);
  return {
    host: u.hostname === '' ? '127.0.0.1' : u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? 6379 : Number(u.port),
    db,
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

/** Opens the queue (a producer). */
export async function openQueue(url: string, name: string): Promise<Queue<QueueJobData>> {
  const { Queue: BullQueue } = await import('bullmq');
  return new BullQueue<QueueJobData>(checkQueueName(name), { connection: bullConnection(url) });
}

/** Adds the job of an item's attempt (a repeat of the same id is ignored by BullMQ). */
export async function addItemJob(queue: Queue<QueueJobData>, data: QueueJobData, key: string, attempt: number): Promise<void> {
  await queue.add('lease', data, { jobId: queueJobId(data.tree_id, key, attempt), removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600 } });
}

/** A queue worker's part of one tree, opened on its first job. */
interface TreeCtx {
  frontier: RedisFrontier;
  options: TreeOptions;
  member: Member;
  /** Jobs of this tree in progress here: the heartbeat runs while any is. */
  busy: number;
  heartbeat: NodeJS.Timeout | undefined;
}

/** What a queue worker brings: its slots, scripts dir, storage and executor; the tree brings the rest. */
export interface QueueWorkerConfig {
  url: string;
  queueName: string;
  /** Runs at once on this worker (BullMQ concurrency; one run slot each). */
  slots: number;
  /** Identity of this worker's storage and ledger: a job of another is refused. */
  identity: { storage: string; ledger: string };
  /** Run settings of this machine (scripts root, storage client, executor, browser …). */
  run: Pick<TreeConfig, 'scriptsRoot' | 'backend' | 'executorPath' | 'chromiumPath' | 'browserWsEndpoint' | 'runTimeoutMs' | 'env' | 'slotRuns' | 'slotRssBytes' | 'eventSinks' | 'eventSinkTargets'>;
  /**
   * The proxy router of a tree submitted with `--proxy-pool` (its stored plan:
   * pool name and selection options, never endpoints), built from this
   * worker's own pools. Throws when this worker lacks the pool: the message
   * fails each run of the tree here with one line.
   */
  proxyFor?(stored: Record<string, unknown>): NonNullable<TreeConfig['proxy']>;
  /**
   * Publishes the tree manifest and validates the tree (and sends its
   * notification); called on exactly one worker per tree. `signal` aborts
   * when the worker's stop grace is over.
   */
  finalize(frontier: Frontier, options: TreeOptions, signal: AbortSignal): Promise<Omit<QueueTreeResult, 'finalized_by' | 'counters'>>;
  onStderr?: (line: string) => void;
  /** Called after each run ends. */
  onRun?: (report: RunReport, lease: Lease) => void;
  owner?: string;
}

/**
 * One worker process: takes jobs from the queue and runs their trees' items
 * in its run slots until {@link QueueWorker.stop}.
 */
export class QueueWorker {
  readonly owner: string;
  readonly #cfg: QueueWorkerConfig;
  readonly #redis: Redis;
  readonly #queue: Queue<QueueJobData>;
  readonly #keys: ReturnType<typeof queueKeys>;
  readonly #pool: SlotPool;
  readonly #trees = new Map<string, Promise<TreeCtx>>();
  /** Aborted when runs in flight must stop now (the grace after SIGTERM is over). */
  readonly #hard = new AbortController();
  #worker: Worker<QueueJobData> | undefined;
  #stopReconciler: (() => Promise<void>) | undefined;
  #stopping = false;

  private constructor(cfg: QueueWorkerConfig, redis: Redis, queue: Queue<QueueJobData>) {
    this.#cfg = cfg;
    this.#redis = redis;
    this.#queue = queue;
    this.#keys = queueKeys(cfg.queueName);
    this.owner = cfg.owner ?? `${hostname()}-${process.pid}-${ulid()}`;
    this.#pool = new SlotPool({
      command: process.execPath,
      entry: cfg.run.executorPath ?? defaultExecutorPath(),
      ...(cfg.run.env ? { env: cfg.run.env } : {}),
      ...(cfg.run.slotRuns !== undefined ? { maxRuns: cfg.run.slotRuns } : {}),
      ...(cfg.run.slotRssBytes !== undefined ? { maxRssBytes: cfg.run.slotRssBytes } : {}),
    });
  }

  /** Connects and starts taking jobs. @throws FrontierError for a bad queue name or URL; connection errors as they come. */
  static async start(cfg: QueueWorkerConfig): Promise<QueueWorker> {
    checkQueueName(cfg.queueName);
    const connection = bullConnection(cfg.url);
    const { Redis: RedisClient } = await import('ioredis');
    const redis = new RedisClient(cfg.url, { maxRetriesPerRequest: 3 });
    const queue = await openQueue(cfg.url, cfg.queueName);
    const w = new QueueWorker(cfg, redis, queue);
    // Every run in flight listens to it: as many as the slots.
    setMaxListeners(0, w.#hard.signal);
    const { Worker: BullWorker } = await import('bullmq');
    w.#worker = new BullWorker<QueueJobData>(cfg.queueName, (job, token) => w.#process(job, token), {
      connection,
      concurrency: cfg.slots,
      lockDuration: JOB_LOCK_MS,
      stalledInterval: STALL_CHECK_MS,
      // Attempts are counted by the frontier: a job handed back by a dead worker is never failed for it.
      maxStalledCount: Number.MAX_SAFE_INTEGER,
      autorun: false,
    });
    w.#worker.on('error', (err) => w.#log(`queue error: ${err.message}`));
    void w.#worker.run().catch((err: unknown) => w.#log(`queue worker stopped: ${(err as Error).message}`));
    // Work admitted but never queued (a process died between the frontier's admit and the queue's add): queued now and every RECONCILE_MS.
    w.#stopReconciler = startReconciler<QueueJobData>({
      redis, keyPrefix: w.#keys.frontierPrefix, everyMs: RECONCILE_MS,
      addJob: async (data, treeId, key, attempt) => {
        if (key !== null) return addItemJob(queue, data, key, attempt);
        await queue.add('lease', data, { jobId: `${treeId}-finalize`, removeOnComplete: true, removeOnFail: { age: 7 * 24 * 3600 } });
      },
      onError: (err) => w.#log(`quarry worker: reconciliation failed (tried again in ${RECONCILE_MS / 1000} s): ${err.message}`),
    });
    return w;
  }

  /**
   * Stops taking jobs; runs in flight get `graceMs` to finish, then are
   * interrupted and handed back (their items queued as attempt + 1 with a
   * job each). Resolves once every slot is closed.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    await this.#stopReconciler?.();
    const timer = setTimeout(() => this.#hard.abort('SIGTERM'), graceMs);
    try {
      await this.#worker?.close();
    } finally {
      clearTimeout(timer);
      for (const p of this.#trees.values()) {
        const t = await p.catch(() => undefined);
        if (t?.heartbeat) clearInterval(t.heartbeat);
      }
      await this.#pool.close();
      await this.#queue.close();
      await this.#redis.quit().catch(() => this.#redis.disconnect());
    }
  }

  #log(line: string): void {
    this.#cfg.onStderr?.(`${line}\n`);
  }

  async #process(job: Job<QueueJobData>, token: string | undefined): Promise<string> {
    const d = job.data;
    const { storage, ledger } = this.#cfg.identity;
    if (d.storage !== storage || d.ledger !== ledger) {
      const line = `job ${String(job.id)} of tree ${d.tree_id} refused: it was submitted for storage ${d.storage} and ledger ${d.ledger}, this worker has storage ${storage} and ledger ${ledger}`;
      this.#log(`quarry worker: ${line}`);
      const { UnrecoverableError } = await import('bullmq');
      throw new UnrecoverableError(line);
    }
    const t = await this.#tree(d.tree_id);
    this.#busy(t, +1);
    let delayUntil: number | undefined;
    try {
      while (!this.#stopping) {
        const [lease] = await t.frontier.lease(this.owner, 1);
        if (lease === undefined) break;
        await runMember(t.member, lease);
      }
      const c = await t.frontier.counters();
      if (c.queued === 0) {
        if (c.running === 0) delayUntil = await this.#finish(t, String(job.id));
        if (delayUntil === undefined) return 'done';
      }
    } catch (err) {
      // Redis or the frontier failed under this job: its ticket is kept (delayed below), never
      // failed, so the tree's queued items still have one; a lease it held expires and is re-run.
      this.#log(`quarry worker: tree ${d.tree_id}: ${(err as Error).message.split('\n')[0]}; its job goes back to the queue`);
    } finally {
      this.#busy(t, -1);
    }
    // Queued items remain that this worker could not take now (or a finalization claim to look at
    // again once it lapses): the job goes back for any worker.
    const { DelayedError } = await import('bullmq');
    await job.moveToDelayed(delayUntil ?? Date.now() + (this.#stopping ? 0 : 300 + Math.floor(Math.random() * 1200)), token);
    throw new DelayedError();
  }

  #busy(t: TreeCtx, by: number): void {
    t.busy += by;
    if (t.busy > 0 && t.heartbeat === undefined) {
      t.heartbeat = setInterval(() => { t.frontier.renew(this.owner).catch(() => undefined); }, Math.max(1, Math.floor(t.options.lease_ms / 3)));
    } else if (t.busy === 0 && t.heartbeat !== undefined) {
      clearInterval(t.heartbeat);
      t.heartbeat = undefined;
    }
  }

  /**
   * Finalizes the tree if this worker wins (or takes over) its finalization
   * lease. Returns when to look again: set only when this very job is the one
   * the lease's holder claimed under, handed back by BullMQ while the lease
   * still runs (its holder is likely dead: the lease lapses within
   * `lease_ms`). Any other job of a held tree is done: the holder's job
   * carries the tree to its end, or comes back here if its worker dies.
   */
  async #finish(t: TreeCtx, jobId: string): Promise<number | undefined> {
    const treeId = t.options.tree_id;
    const claim = await t.frontier.claimFinalizationLease(this.owner, jobId);
    if (claim.kind === 'held') return claim.job === jobId ? Math.max(Date.now(), claim.expires_at) + 250 : undefined;
    if (claim.kind !== 'claimed') return undefined;
    if (claim.previous !== '') this.#log(`quarry worker: tree ${treeId}: took over its finalization from ${claim.previous}, which stopped renewing it`);
    const every = Math.max(1, Math.floor(t.options.lease_ms / 3));
    let lost = false;
    const renew = setInterval(() => {
      t.frontier.renewFinalization(this.owner).then((held) => { lost ||= !held; }, () => undefined);
    }, every);
    const progressKey = this.#keys.progress(treeId);
    let r: Omit<QueueTreeResult, 'finalized_by' | 'counters'>;
    const started = Date.now();
    try {
      for (let attempt = 1; ; attempt++) {
        let why: string;
        try {
          r = await this.#cfg.finalize(t.frontier, t.options, this.#hard.signal);
          // Published but not validated: the ledger failed; tried again like any failure.
          if (r.reason !== 'ledger_unreachable') break;
          why = r.line;
        } catch (err) {
          why = (err as Error).message.split('\n')[0]!;
          r = {
            exit_code: 3, authoritative: false, reason: 'finalization_failed', manifest_key: null,
            line: `tree ${treeId} could not be finalized (${why})`,
            next: `quarry run --resume ${treeId} --queue ${publicUrl(this.#cfg.url)}${this.#cfg.queueName !== DEFAULT_QUEUE_NAME ? ` --queue-name ${this.#cfg.queueName}` : ''} (finalizes it again on the workers)`,
          };
        }
        if (attempt >= FINALIZE_ATTEMPTS) {
          r = { ...r, line: `${r.line}; gave up after ${attempt} attempts in ${Math.round((Date.now() - started) / 1000)} s` };
          break;
        }
        const wait = FINALIZE_BACKOFF_MS * 2 ** (attempt - 1);
        this.#log(`quarry worker: tree ${treeId}: finalization attempt ${attempt} of ${FINALIZE_ATTEMPTS} failed (${why}); trying again in ${wait / 1000} s`);
        // Who waits on the tree sees why it is not finished yet.
        await this.#redis.hset(progressKey, 'finalize_error', `attempt ${attempt} of ${FINALIZE_ATTEMPTS} failed: ${why}`).catch(() => undefined);
        await new Promise((res) => setTimeout(res, wait));
      }
    } finally {
      clearInterval(renew);
    }
    const failed = r.reason === 'finalization_failed' || r.reason === 'ledger_unreachable';
    const result: QueueTreeResult = { ...r, counters: await t.frontier.counters(), finalized_by: this.owner };
    // The first result stays: a worker that took over a lapsed claim reaches the same outcome (the
    // manifest is published once, the ledger holds one validation) and only ends the claim. Written
    // before the claim ends, so a death in between leaves a claim to take over, never a tree without result.
    const first = await this.#redis.set(this.#keys.result(treeId), JSON.stringify(result), 'NX');
    await t.frontier.endFinalization(this.owner, failed ? 'failed' : 'done');
    if (lost) this.#log(`quarry worker: tree ${treeId}: its finalization lease lapsed while finalizing (another worker may have finished it too, harmlessly)`);
    this.#log(first === 'OK' ? `quarry worker: tree ${treeId} finalized: ${result.line}` : `quarry worker: tree ${treeId} was finalized by another worker first`);
    return undefined;
  }

  #tree(treeId: string): Promise<TreeCtx> {
    let p = this.#trees.get(treeId);
    if (p === undefined) {
      p = this.#openTree(treeId);
      this.#trees.set(treeId, p);
      p.catch(() => this.#trees.delete(treeId));
    }
    return p;
  }

  async #openTree(treeId: string): Promise<TreeCtx> {
    const frontier = await RedisFrontier.open(this.#redis, treeId, { keyPrefix: this.#keys.frontierPrefix });
    const options = await frontier.options();
    const run = sharedRun(options);
    const settings = options.run as { job_id?: string; parent_run_id?: string; run_timeout_ms?: number; proxy?: Record<string, unknown>; adapter?: { kind?: unknown; target?: unknown } };
    // The submitter's --adapter (kind and recorded target, no secret): recorded in every run's settings, so the tree's validation writes its notification.
    const a = settings.adapter;
    const adapter: AdapterTarget | undefined = (a?.kind === 'webhook' || a?.kind === 'redis') && typeof a.target === 'string' ? { kind: a.kind, target: a.target } : undefined;
    let proxy: TreeConfig['proxy'];
    let refuseRuns: string | undefined;
    if (settings.proxy !== undefined) {
      try {
        if (this.#cfg.proxyFor === undefined) throw new Error(`this worker has no proxy pool ${JSON.stringify(settings.proxy.pool)} (it was started without --proxy-config or proxies: in --config)`);
        proxy = this.#cfg.proxyFor(settings.proxy);
      } catch (err) {
        refuseRuns = (err as Error).message;
      }
    }
    const queueData = (): QueueJobData => ({ tree_id: treeId, ...this.#cfg.identity });
    const cfg: TreeConfig = {
      ...this.#cfg.run,
      scriptPath: run.script, treeId, job: run.job, partition: run.partition, policy: run.policy,
      ...(settings.job_id !== undefined ? { jobId: settings.job_id } : {}),
      ...(settings.parent_run_id !== undefined ? { rootParentRunId: settings.parent_run_id } : {}),
      ...(this.#cfg.run.runTimeoutMs === undefined && settings.run_timeout_ms !== undefined ? { runTimeoutMs: settings.run_timeout_ms } : {}),
      depth: options.max_depth, maxRuns: options.max_runs, parallel: this.#cfg.slots, retries: options.retries, leaseMs: options.lease_ms, stateDir: '',
      signal: this.#hard.signal,
      onStderr: (chunk) => this.#cfg.onStderr?.(chunk.toString('utf8')),
      ...(proxy ? { proxy } : {}),
      ...(adapter ? { adapter } : {}),
    };
    const progressKey = this.#keys.progress(treeId);
    const member: Member = {
      cfg: {
        ...cfg,
        onRun: (report, lease) => {
          member.runs.length = 0;
          this.#redis.multi().hincrby(progressKey, 'runs', 1).hincrby(progressKey, 'items', report.items).exec().catch(() => undefined);
          this.#cfg.onRun?.(report, lease);
        },
      },
      frontier, treeId, retries: options.retries, runs: [], failures: new Map(), pool: this.#pool, checkScriptDigest: true,
      ...(refuseRuns !== undefined ? { refuseRuns } : {}),
      changed: () => undefined,
      onAdmitted: async (item) => {
        reachKillPoint('queue_before_add');
        await addItemJob(this.#queue, queueData(), item.key, 1);
      },
      beforeRequeue: async (lease) => addItemJob(this.#queue, queueData(), lease.key, lease.attempt + 1),
    };
    return { frontier, options, member, busy: 0, heartbeat: undefined };
  }
}

/** What `quarry run --queue` and `inspect run --queue` read of a tree: its counters, progress and result. */
export interface QueueTreeState {
  counters: FrontierCounters;
  runs: number;
  items: number;
  /** The last failed attempt at finalizing the tree while its finalizer tries again (absent: none failed). */
  finalize_error?: string;
  result: QueueTreeResult | undefined;
}

/** Reads a queued tree's state (one frontier client kept by the caller). */
export async function readQueueTree(redis: Redis, queueName: string, frontier: Frontier): Promise<QueueTreeState> {
  const keys = queueKeys(queueName);
  const [counters, progress, result] = await Promise.all([
    frontier.counters(),
    redis.hgetall(keys.progress(frontier.treeId)),
    redis.get(keys.result(frontier.treeId)),
  ]);
  return {
    counters,
    runs: Number(progress.runs ?? 0),
    items: Number(progress.items ?? 0),
    ...(progress.finalize_error ? { finalize_error: progress.finalize_error } : {}),
    result: result === null ? undefined : (JSON.parse(result) as QueueTreeResult),
  };
}
