/**
 * Reconciliation of a queue deployment (SPEC §12) with real Redis and a real
 * BullMQ queue: items admitted into a tree's Redis frontier whose jobs were
 * never added (the process died in between, kill point `queue_before_add`)
 * are found and queued once, a done tree nobody finalized gets a job, a
 * finalized tree and a long-dead registration leave the registry.
 */
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { registerQueuedTree, reconcileQueue, treeRegistryKey } from '../../src/scheduler/queue-reconcile.js';
import { RedisFrontier } from '../../src/scheduler/redis-frontier.js';
import { keyDigest } from '../../src/scheduler/target.js';
import { Redis } from 'ioredis';
import { fakeClock } from '../_harness/fake-clock.js';
import { ensureRedis, removeKeys, uniquePrefix } from '../_harness/redis.js';
import { page, root, treeOptions } from './frontier-conformance.js';

const keyPrefix = uniquePrefix('reconcile');
const queueName = keyPrefix.replace(/:/g, '-').replace(/-+$/, '');
let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

interface JobData { tree_id: string; storage: string; ledger: string }

async function setup(now?: () => number): Promise<{ redis: Redis; queue: Queue<JobData>; reconcile: () => ReturnType<typeof reconcileQueue<JobData>> }> {
  const url = await ensureRedis();
  const u = new URL(url);
  const redis = new Redis(url);
  const queue = new Queue<JobData>(queueName, { connection: { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null } });
  cleanup.push(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    await removeKeys(url, keyPrefix);
    redis.disconnect();
  });
  const reconcile = () => reconcileQueue<JobData>({
    redis, keyPrefix, ...(now ? { now } : {}),
    addJob: async (data, treeId, key, attempt) => {
      await queue.add('lease', data, { jobId: key === null ? `${treeId}-finalize` : `${treeId}-${keyDigest(key)}-${attempt}`, removeOnComplete: true });
    },
  });
  return { redis, queue, reconcile };
}

describe('queue reconciliation', () => {
  it('queues admitted items that have no job, once however often it runs; then finalization; then forgets the tree', async () => {
    const { redis, queue, reconcile } = await setup();
    const opts = treeOptions();
    const data = { tree_id: opts.tree_id, storage: 's3://b/p', ledger: 'postgres://h/db' };
    // A submitter registered the tree, created its frontier, admitted the root and died before adding its job.
    await registerQueuedTree(redis, keyPrefix, opts.tree_id, data);
    const f = await RedisFrontier.create(redis, opts, { keyPrefix });
    cleanup.push(() => f.close());
    await f.admit([root()]);
    expect(await queue.getJobCountByTypes('waiting')).toBe(0);

    const first = await reconcile();
    expect(first).toMatchObject({ trees: 1, itemJobs: 1, finalizeJobs: 0, dropped: [] });
    const rootJob = `${opts.tree_id}-${keyDigest(root().key)}-1`;
    expect((await queue.getJob(rootJob))?.data).toEqual(data);
    // Run again (every worker reconciles): the same job id, so BullMQ holds one job.
    await reconcile();
    expect(await queue.getJobCountByTypes('waiting')).toBe(1);

    // A worker ran the root, admitted two children and died before queueing them; the root's attempt 1 expired.
    const [lease] = await f.lease('w1', 1);
    await f.admit([page(1), page(2)]);
    await f.complete(lease!, 'success');
    await queue.drain();
    const second = await reconcile();
    expect(second).toMatchObject({ itemJobs: 2 });
    const ids = (await queue.getJobs(['waiting'])).map((j) => j.id).sort();
    expect(ids).toEqual([page(1), page(2)].map((p) => `${opts.tree_id}-${keyDigest(p.key)}-1`).sort());

    // Both ran; nobody claimed the finalization (the last worker died after completing): one job makes someone look.
    for (const l of await f.lease('w2', 2)) await f.complete(l, 'success');
    await queue.drain();
    expect(await reconcile()).toMatchObject({ itemJobs: 0, finalizeJobs: 1 });
    expect(await queue.getJob(`${opts.tree_id}-finalize`)).toBeDefined();

    // Once finalized, the tree leaves the registry and nothing more is queued for it.
    expect(await f.claimFinalization()).toBe(true);
    await queue.drain();
    expect(await reconcile()).toMatchObject({ itemJobs: 0, finalizeJobs: 0, dropped: [opts.tree_id] });
    expect(await redis.hlen(treeRegistryKey(keyPrefix))).toBe(0);
    expect(await queue.getJobCountByTypes('waiting')).toBe(0);
  });

  it('a finalization claim whose holder died (its lease lapsed, its job lost) gets a job; a live or ended one does not', async () => {
    const clock = fakeClock(Date.now());
    const { redis, queue, reconcile } = await setup(() => clock.now());
    const opts = treeOptions();
    await registerQueuedTree(redis, keyPrefix, opts.tree_id, { tree_id: opts.tree_id, storage: 's', ledger: 'l' });
    const f = await RedisFrontier.create(redis, opts, { keyPrefix, clock });
    cleanup.push(() => f.close());
    expect(await f.claimFinalizationLease('w1', 'job-1')).toMatchObject({ kind: 'claimed' });
    expect(await reconcile()).toMatchObject({ finalizeJobs: 0, dropped: [] });
    clock.advance(opts.lease_ms);
    expect(await reconcile()).toMatchObject({ finalizeJobs: 1, dropped: [] });
    expect(await queue.getJob(`${opts.tree_id}-finalize`)).toBeDefined();
    expect(await f.claimFinalizationLease('w2', 'job-2')).toEqual({ kind: 'claimed', previous: 'w1' });
    await f.endFinalization('w2', 'done');
    expect(await reconcile()).toMatchObject({ finalizeJobs: 0, dropped: [opts.tree_id] });
  });

  it('a registered tree without a frontier is kept while its submitter may still create it, dropped after orphanMs', async () => {
    const { redis, reconcile } = await setup();
    await registerQueuedTree(redis, keyPrefix, 'T-NEW', { tree_id: 'T-NEW', storage: 's', ledger: 'l' });
    await registerQueuedTree(redis, keyPrefix, 'T-OLD', { tree_id: 'T-OLD', storage: 's', ledger: 'l' }, Date.now() - 11 * 60_000);
    expect(await reconcile()).toMatchObject({ trees: 2, itemJobs: 0, dropped: ['T-OLD'] });
    expect(await redis.hkeys(treeRegistryKey(keyPrefix))).toEqual(['T-NEW']);
  });
});
