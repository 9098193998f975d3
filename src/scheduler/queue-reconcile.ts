/**
 * Reconciliation of a queue deployment (SPEC §12): work admitted into a
 * tree's Redis frontier whose BullMQ job was never added — the submitter or
 * a worker died between the frontier's `admit` and the queue's `add` — is
 * found and queued, so no admitted item waits forever for a job.
 *
 * Every tree submitted to a queue is registered first, in one hash per queue
 * (`<prefix>trees`: tree id → the job data its jobs carry), before its
 * frontier is created. {@link reconcileQueue} (a worker runs it at start and
 * then periodically) walks that registry: for each item of a tree still
 * `queued` in the frontier it adds the job of the item's next attempt, whose
 * id (`<tree_id>-<sha256 of the dedup key>-<attempt>`) makes an add of a job
 * that already exists a no-op in BullMQ; a tree with nothing queued or
 * running whose finalization nobody claimed (or whose claim's lease lapsed)
 * gets one job, so some worker finalizes it; a tree whose finalization ended
 * leaves the registry. A job is only a ticket
 * for a lease (the frontier decides who runs what), so a spare one is
 * harmless.
 */
import type { Redis } from 'ioredis';
import { FrontierError } from './frontier.js';
import { frontierKeys, RedisFrontier } from './redis-frontier.js';
import { FRONTIER_KEYS } from './redis-frontier-scripts.js';

/** The registry hash of a queue's trees. */
export function treeRegistryKey(keyPrefix: string): string {
  return `${keyPrefix}trees`;
}

/** A registered tree: the job data of its jobs, and when it was registered. */
interface Registered<D> { data: D; registered_at: number }

/**
 * Registers a tree before its frontier is created (so a submitter that dies
 * after creating it leaves a tree reconciliation can find).
 */
export async function registerQueuedTree<D>(redis: Redis, keyPrefix: string, treeId: string, data: D, now = Date.now()): Promise<void> {
  const entry: Registered<D> = { data, registered_at: now };
  await redis.hset(treeRegistryKey(keyPrefix), treeId, JSON.stringify(entry));
}

/** What one reconciliation did. */
export interface ReconcileResult {
  /** Registered trees looked at. */
  trees: number;
  /** Jobs added for queued items (an add of an existing job id counts here too: BullMQ ignores it). */
  itemJobs: number;
  /** Trees given a job because they were done but nobody claimed their finalization. */
  finalizeJobs: number;
  /** Trees removed from the registry: finalized, or registered with no frontier for longer than `orphanMs`. */
  dropped: string[];
}

export interface ReconcileOptions<D> {
  redis: Redis;
  /** The queue deployment's key prefix (`quarry:<queue-name>:`), also the frontiers' prefix. */
  keyPrefix: string;
  /**
   * Adds the job of an item's attempt with id `<tree_id>-<sha256 of key>-<attempt>`
   * (BullMQ ignores an id it already holds); `key` null: a job that only makes
   * some worker look at the tree (finalization).
   */
  addJob(data: D, treeId: string, key: string | null, attempt: number): Promise<void>;
  /** A registered tree with no frontier this long is a submitter that died before creating it (default 10 min). */
  orphanMs?: number;
  now?: () => number;
}

/** Finds admitted work without a queue job and queues it. Safe to run on many workers at once. */
export async function reconcileQueue<D>(o: ReconcileOptions<D>): Promise<ReconcileResult> {
  const now = o.now ?? Date.now;
  const registry = treeRegistryKey(o.keyPrefix);
  const all = await o.redis.hgetall(registry);
  const out: ReconcileResult = { trees: 0, itemJobs: 0, finalizeJobs: 0, dropped: [] };
  for (const [treeId, raw] of Object.entries(all)) {
    out.trees++;
    let entry: Registered<D>;
    try {
      entry = JSON.parse(raw) as Registered<D>;
    } catch {
      continue;
    }
    let frontier: RedisFrontier;
    try {
      frontier = await RedisFrontier.open(o.redis, treeId, { keyPrefix: o.keyPrefix });
    } catch (err) {
      if (!(err instanceof FrontierError)) throw err;
      if (now() - entry.registered_at > (o.orphanMs ?? 600_000)) {
        await o.redis.hdel(registry, treeId);
        out.dropped.push(treeId);
      }
      continue;
    }
    try {
      const c = await frontier.counters();
      if (c.queued === 0 && c.running === 0) {
        const fin = await finalization(o.redis, o.keyPrefix, treeId, now());
        if (fin === 'ended') {
          await o.redis.hdel(registry, treeId);
          out.dropped.push(treeId);
        } else if (fin === 'open') {
          await o.addJob(entry.data, treeId, null, 0);
          out.finalizeJobs++;
        }
        continue;
      }
      if (c.queued === 0) continue;
      for (const item of await frontier.items()) {
        if (item.state !== 'queued') continue;
        await o.addJob(entry.data, treeId, item.key, item.attempts.length + 1);
        out.itemJobs++;
      }
    } finally {
      await frontier.close();
    }
  }
  return out;
}

/**
 * Where a done tree's finalization is: `open` (never claimed, or its claim's
 * lease lapsed with nobody to take it over: its holder died and its job was
 * lost), `held` (a live lease) or `ended` (done or failed, or a claim that
 * never lapses).
 */
async function finalization(redis: Redis, keyPrefix: string, treeId: string, now: number): Promise<'open' | 'held' | 'ended'> {
  const [claimed, expires, state] = await redis.hmget(frontierKeys(keyPrefix, treeId)[FRONTIER_KEYS.indexOf('meta')]!, 'claimed', 'fin_expires', 'fin_state');
  if (claimed === null || claimed === '0') return 'open';
  if ((state !== null && state !== '') || expires === null) return 'ended';
  return Number(expires) > now ? 'held' : 'open';
}

/**
 * Runs {@link reconcileQueue} now and then every `everyMs` until the returned
 * stop function is called; errors go to `onError` (a reconciliation that
 * fails is tried again at the next tick).
 */
export function startReconciler<D>(o: ReconcileOptions<D> & { everyMs: number; onError(err: Error): void; onResult?(r: ReconcileResult): void }): () => Promise<void> {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const tick = (): void => {
    if (stopped) return;
    running = reconcileQueue(o).then((r) => o.onResult?.(r), (err: unknown) => o.onError(err as Error));
  };
  tick();
  const timer = setInterval(() => {
    void running.then(tick);
  }, o.everyMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
