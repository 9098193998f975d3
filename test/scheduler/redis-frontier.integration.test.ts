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
