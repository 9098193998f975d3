/**
 * The proxy selection state stores through one conformance suite: SQLite
 * (clients are separate connections to one state file) and Redis (clients
 * are separate connections under one key prefix, as workers of one queue
 * deployment are).
 */
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { openProxyStateStore, queueKeyPrefix } from '../../src/cli/commands/proxy-setup.js';
import { proxyStateKey, RedisProxyStateStore } from '../../src/proxy/redis-state-store.js';
import { ProxySelector } from '../../src/proxy/selector.js';
import { proxyStatePath, SqliteProxyStateStore } from '../../src/proxy/sqlite-state-store.js';
import { ensureRedis, removeKeys, uniquePrefix } from '../_harness/redis.js';
import { makeTempDir } from '../_harness/temp-dir.js';
import { proxyStateConformance } from './state-store-conformance.js';

proxyStateConformance('sqlite (separate connections to one file)', async () => {
  const dir = await makeTempDir('proxy-state');
  return {
    client: () => Promise.resolve(SqliteProxyStateStore.open(proxyStatePath(dir.path))),
    teardown: () => dir.remove(),
  };
});

proxyStateConformance('redis (separate connections, one prefix)', async () => {
  const url = await ensureRedis();
  const keyPrefix = uniquePrefix('proxy-state');
  return {
    client: () => RedisProxyStateStore.open(url, { keyPrefix }),
    teardown: async () => { await removeKeys(url, keyPrefix); },
  };
});

describe('redis proxy state for a queue deployment', () => {
  it('--queue picks the Redis store under the queue name; another queue name shares nothing', async () => {
    const url = await ensureRedis();
    const name = uniquePrefix('q').replace(/:/g, '-');
    const pool = { name: 'p', strategy: 'round_robin' as const, endpoints: [0, 1, 2].map((i) => ({ protocol: 'http' as const, host: 'h', port: 1000 + i, password: 'pw' })) };
    const a = await openProxyStateStore({ queue: url, queueName: name });
    const b = await openProxyStateStore({ queue: url, queueName: `${name}-other` });
    const redis = new Redis(url);
    try {
      expect(a).toBeInstanceOf(RedisProxyStateStore);
      const sa = new ProxySelector(new Map([['p', pool]]), a);
      const sb = new ProxySelector(new Map([['p', pool]]), b);
      expect([(await sa.select({ pool: 'p', jobKey: 'x' })).index, (await sa.select({ pool: 'p', jobKey: 'x' })).index]).toEqual([0, 1]);
      expect((await sb.select({ pool: 'p', jobKey: 'x' })).index).toBe(0);
      const stored = await redis.hget(proxyStateKey(queueKeyPrefix(name), 'p'), 'state');
      expect(JSON.parse(stored!)).toMatchObject({ cursor: 2, selections: 2 });
      expect(stored).not.toContain('pw');
    } finally {
      await a.close();
      await b.close();
      await removeKeys(url, queueKeyPrefix(name));
      await removeKeys(url, queueKeyPrefix(`${name}-other`));
      redis.disconnect();
    }
  });

  it('an unreachable Redis is a one-line error naming --queue', async () => {
    await expect(openProxyStateStore({ queue: 'redis://127.0.0.1:1' })).rejects.toThrow(/cannot reach Redis for the proxy selection state.*check --queue/);
  });

  it('the SQLite store is still what a run without --queue gets', async () => {
    const dir = await makeTempDir('proxy-state-local');
    try {
      const s = await openProxyStateStore({ stateDir: dir.path });
      expect(s).toBeInstanceOf(SqliteProxyStateStore);
      await s.close();
    } finally {
      await dir.remove();
    }
  });
});
