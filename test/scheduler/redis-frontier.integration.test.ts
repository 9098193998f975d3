import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisFrontier } from '../../src/scheduler/redis-frontier.js';
import { fakeClock } from '../_harness/fake-clock.js';
import { ensureRedis, removeKeys, uniquePrefix } from '../_harness/redis.js';
import { frontierConformance, page, root, treeOptions } from './frontier-conformance.js';

// Each client is its own Redis connection; every test has its own key prefix, removed after.
frontierConformance('redis (separate connections)', async () => {
  const url = await ensureRedis();
  const keyPrefix = uniquePrefix('frontier');
  return {
    start: async (options, clock, clients) => {
      const first = await RedisFrontier.create(url, options, { clock, keyPrefix });
      const rest = await Promise.all(Array.from({ length: clients - 1 }, () => RedisFrontier.open(url, options.tree_id, { clock, keyPrefix })));
      return [first, ...rest];
    },
    teardown: async () => {
      await removeKeys(url, keyPrefix);
    },
  };
});

describe('redis frontier keys', () => {
  let url: string;
  let redis: Redis;
  const keyPrefix = uniquePrefix('frontier-keys');
  beforeAll(async () => {
    url = await ensureRedis();
    redis = new Redis(url);
  });
  afterEach(() => removeKeys(url, keyPrefix));
  afterAll(() => redis.quit());

  it('keeps a tree for a later client: dedup, attempts and options survive, all under the prefix', async () => {
    const clock = fakeClock();
    const opts = treeOptions({ parallel: 2 });
    const first = await RedisFrontier.create(redis, opts, { clock, keyPrefix });
    await first.admit([root(), page(1)]);
    const [l] = await first.lease('gone', 1);
    await first.close();
    const again = await RedisFrontier.open(url, opts.tree_id, { clock, keyPrefix });
    try {
      expect(await again.admit([page(1), root()])).toEqual(['duplicate', 'duplicate']);
      expect((await again.inFlight()).map((x) => x.run_id)).toEqual([l!.run_id]);
      expect(await again.options()).toEqual(opts);
    } finally {
      await again.close();
    }
    // The caller's connection stays open after close(); every key the tree wrote carries the prefix and one hash tag.
    const keys = await redis.keys(`${keyPrefix}*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((k) => k.startsWith(`${keyPrefix}frontier:{${opts.tree_id}}:`))).toBe(true);
  });

  it('holds the finalization claim as a lease: renewed it stays, lapsed it is taken over once, ended it is never taken again', async () => {
    const clock = fakeClock();
    const opts = treeOptions();
    const a = await RedisFrontier.create(redis, opts, { clock, keyPrefix });
    const b = await RedisFrontier.open(redis, opts.tree_id, { clock, keyPrefix });
    await a.admit([root()]);
    expect(await a.claimFinalizationLease('w1', 'job-1')).toEqual({ kind: 'busy' });
    const [l] = await a.lease('w1', 1);
    await a.complete(l!, 'success');
    expect(await a.claimFinalizationLease('w1', 'job-1')).toEqual({ kind: 'claimed', previous: '' });
    // A live holder keeps it past lease_ms by renewing; the others are told who holds it, under which job, until when.
    clock.advance(opts.lease_ms - 1);
    expect(await a.renewFinalization('w1')).toBe(true);
    clock.advance(opts.lease_ms - 1);
    expect(await b.claimFinalizationLease('w2', 'job-2')).toEqual({ kind: 'held', owner: 'w1', expires_at: clock.now() + 1, job: 'job-1' });
    expect(await b.claimFinalization()).toBe(false);
    // A holder that stops renewing loses it to the next caller, and cannot renew it back.
    clock.advance(1);
    expect(await b.claimFinalizationLease('w2', 'job-1')).toEqual({ kind: 'claimed', previous: 'w1' });
    expect(await a.renewFinalization('w1')).toBe(false);
    expect(await b.endFinalization('w2', 'done')).toBe(true);
    expect(await a.endFinalization('w1', 'done')).toBe(false);
    clock.advance(10 * opts.lease_ms);
    expect(await a.claimFinalizationLease('w3', 'job-3')).toEqual({ kind: 'ended', state: 'done', owner: 'w2' });
    expect(await a.reopenFinalization()).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it('opens a failed finalization again for a new claim; a claim through the port never lapses', async () => {
    const clock = fakeClock();
    const f = await RedisFrontier.create(redis, treeOptions(), { clock, keyPrefix });
    const g = await RedisFrontier.create(redis, treeOptions({ tree_id: 'tree-port' }), { clock, keyPrefix });
    expect(await f.claimFinalizationLease('w1', 'job-1')).toEqual({ kind: 'claimed', previous: '' });
    expect(await f.endFinalization('w1', 'failed')).toBe(true);
    expect(await f.claimFinalizationLease('w2', 'job-2')).toEqual({ kind: 'ended', state: 'failed', owner: 'w1' });
    expect(await f.reopenFinalization()).toBe(true);
    expect(await f.claimFinalizationLease('w2', 'job-2')).toEqual({ kind: 'claimed', previous: '' });
    expect(await g.claimFinalization()).toBe(true);
    clock.advance(1e9);
    expect(await g.claimFinalizationLease('w2', 'job-2')).toEqual({ kind: 'held', owner: '', expires_at: 0, job: '' });
    await Promise.all([f.close(), g.close()]);
  });

  it('refuses to create a tree twice and to open one never created, saying what to do', async () => {
    const opts = treeOptions();
    const f = await RedisFrontier.create(url, opts, { keyPrefix });
    await f.close();
    await expect(RedisFrontier.create(url, opts, { keyPrefix })).rejects.toThrow(`resume it with --resume ${opts.tree_id}`);
    await expect(RedisFrontier.open(url, 'NOTREE', { keyPrefix })).rejects.toThrow(/no frontier for tree NOTREE .*check --queue and --queue-name/);
  });

  it('loads its scripts again after the server forgot them (SCRIPT FLUSH)', async () => {
    const f = await RedisFrontier.create(url, treeOptions(), { keyPrefix });
    try {
      await redis.script('FLUSH');
      expect(await f.admit([page(1)])).toEqual(['admitted']);
    } finally {
      await f.close();
    }
  });
});
