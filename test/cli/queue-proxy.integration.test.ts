/**
 * `quarry run --queue … --proxy-pool` (SPEC §11, §12) as a user runs it: the
 * submitter names the pool only; two `quarry worker` processes take the
 * pool's endpoints (and password) from their own --proxy-config and share
 * its selection state in Redis. Real Redis (a queue name of this file's own),
 * PostgreSQL, the local S3 server and two local authenticating proxies that
 * record which runs came through them. A worker without the pool fails the
 * tree's run with one line naming it.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAuthProxy, type AuthProxy } from '../_harness/auth-proxy.js';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { killTagged, newTag } from '../_harness/proc-tag.js';
import { spawnWorker, type WorkerProcess } from '../_harness/queue-worker.js';
import { ensureRedis, removeKeys } from '../_harness/redis.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/proxy');
const PASSWORD = 'qu3ue-Pr0xy-Secret-7719';
const DAY = '2026-11-24';

let s3: S3TestServer;
let db: TestDatabase;
let redisUrl: string;
let tmp: TempDir;
let env: NodeJS.ProcessEnv;
let proxies: AuthProxy[];
let pools: string;
const queueName = `qproxy-${process.pid}-${randomBytes(4).toString('hex')}`;
const tag = newTag();

beforeAll(async () => {
  [s3, db, redisUrl, tmp] = await Promise.all([startS3Server(), createTestDatabase('quarry_qproxy'), ensureRedis(), makeTempDir('queue-proxy')]);
  await s3.createBucket('lake');
  env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: 'us-east-1', ...tag.env };
  proxies = await Promise.all(['p0', 'p1'].map((n) => startAuthProxy(n, 'scraper', PASSWORD)));
  pools = join(tmp.path, 'pools.json');
  await writeFile(pools, JSON.stringify({ main: { strategy: 'round_robin', endpoints: proxies.map((p) => p.endpoint) } }));
}, 120_000);

const workers: WorkerProcess[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  killTagged(tag.tag);
  await removeKeys(redisUrl, `quarry:${queueName}`);
  await removeKeys(redisUrl, `bull:${queueName}`);
  await Promise.all(proxies.map((p) => p.close()));
  await s3.stop();
  await db.drop();
  await tmp.remove();
});

const storageFlags = (path: string) => ['--storage-backend', 's3', '--storage-endpoint', s3.endpoint, '--storage-s3-path-style', '--storage-path', path];
const storeFlags = (path: string) => [...storageFlags(path), '--ledger', db.url];

function startWorker(storage: string, more: string[]): WorkerProcess {
  const w = spawnWorker(['--queue', redisUrl, '--queue-name', queueName, '--slots', '2', '--scripts-dir', SCRIPTS, ...storeFlags(storage), ...more], env);
  workers.push(w);
  return w;
}

/** Every key and value under the queue's prefixes, as one string. */
async function dumpRedis(): Promise<string> {
  const r = new Redis(redisUrl);
  const out: string[] = [];
  try {
    for (const prefix of [`quarry:${queueName}`, `bull:${queueName}`]) {
      let cursor = '0';
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', '500');
        cursor = next;
        for (const k of keys) {
          const type = await r.type(k);
          const v = type === 'string' ? await r.get(k)
            : type === 'hash' ? await r.hgetall(k)
              : type === 'list' ? await r.lrange(k, 0, -1)
                : type === 'set' ? await r.smembers(k)
                  : type === 'zset' ? await r.zrange(k, '0', '-1')
                    : type === 'stream' ? await r.xrange(k, '-', '+') : null;
          out.push(k, JSON.stringify(v));
        }
      } while (cursor !== '0');
    }
  } finally {
    r.disconnect();
  }
  return out.join('\n');
}

/** Every object in the bucket, keys and bodies, as one string. */
async function dumpStorage(): Promise<{ text: string; objects: number }> {
  const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: s3.credentials });
  const out: string[] = [];
  let token: string | undefined;
  let objects = 0;
  try {
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: 'lake', ...(token ? { ContinuationToken: token } : {}) }));
      for (const o of page.Contents ?? []) {
        const body = await client.send(new GetObjectCommand({ Bucket: 'lake', Key: o.Key! }));
        out.push(o.Key!, Buffer.from(await body.Body!.transformToByteArray()).toString('latin1'));
        objects++;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  } finally {
    client.destroy();
  }
  return { text: out.join('\n'), objects };
}

describe('quarry run --queue --proxy-pool', { timeout: 180_000 }, () => {
  it('two workers with their own pools: every run through a proxy, round robin shared across the tree, the password nowhere', async () => {
    const a = startWorker('lake/proxy', ['--proxy-config', pools]);
    const b = startWorker('lake/proxy', ['--proxy-config', pools]);
    const children = Array.from({ length: 8 }, (_, i) => ({ url: `http://detail${i}.test/p` }));
    // The submitter has no pools: it names the pool only.
    const r = await quarry(['run', '--queue', redisUrl, '--queue-name', queueName, '--script', 'fetch.mjs', '--source', 's', '--day', DAY,
      '--depth', '1', '--max-runs', '9', '--parallel', '4', '--proxy-pool', 'main',
      '--job', JSON.stringify({ url: 'http://listing.test/', children }), ...storeFlags('lake/proxy')], { cwd: SCRIPTS, env, timeoutMs: 170_000 });
    expect(r.code, r.stderr + a.stderr() + b.stderr()).toBe(0);

    const list = await quarry(['list', 'runs', ...storageFlags('lake/proxy'), '-f', 'json'], { env });
    expect(list.code, list.stderr).toBe(0);
    const runs = (JSON.parse(list.stdout) as { run_id: string; outcome: string }[]);
    expect(runs).toHaveLength(9);
    expect(runs.every((x) => x.outcome === 'success')).toBe(true);
    // Both workers ran some of the tree.
    const ranBy = [a, b].map((w) => w.stderr().split('\n').filter((l) => l.startsWith('quarry worker: run ')).length);
    expect(ranBy.reduce((n, x) => n + x, 0)).toBe(9);
    // Every request of every run came through an authenticating proxy, each run's through one only.
    const hits = proxies.flatMap((p) => p.hits);
    expect(hits.every((h) => h.authorized)).toBe(true);
    expect(hits).toHaveLength(9);
    for (const run of runs) expect(proxies.filter((p) => p.runs().includes(run.run_id)), run.run_id).toHaveLength(1);
    const counts = proxies.map((p) => p.runs().length);
    expect(Math.abs(counts[0]! - counts[1]!)).toBeLessThanOrEqual(1);
    // One selection state for the whole tree, in Redis under the queue's prefix: all 9 selections were made on it.
    const redis = new Redis(redisUrl);
    const state = JSON.parse((await redis.hget(`quarry:${queueName}:proxy-state:{main}`, 'state'))!) as { selections: number; cursor: number };
    redis.disconnect();
    expect(state.selections).toBe(9);
    // Every page item names the proxy that answered it.
    const read = await quarry(['read', ...storeFlags('lake/proxy'), '--type', 'item'], { env });
    const pages = read.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { data: { proxy: string | null } } }).payload.data.proxy);
    expect(pages.sort()).toEqual([...Array(counts[0]!).fill('p0'), ...Array(counts[1]!).fill('p1')]);

    // The password is in no Redis key or value of the queue, no output, no stored object.
    const dump = await dumpRedis();
    expect(dump).toContain('proxy-state');
    expect(dump).not.toContain(PASSWORD);
    for (const out of [r.stdout, r.stderr, list.stdout, read.stdout, a.stderr(), b.stderr()]) expect(out).not.toContain(PASSWORD);
    const stored = await dumpStorage();
    expect(stored.objects).toBeGreaterThan(9);
    expect(stored.text).not.toContain(PASSWORD);
    expect(stored.text).not.toContain(Buffer.from(`scraper:${PASSWORD}`).toString('base64'));
  });

  it('a worker without the tree\'s pool fails its run with one line naming the pool, and goes on taking work', async () => {
    const w = startWorker('lake/proxy', []);
    const r = await quarry(['run', '--queue', redisUrl, '--queue-name', queueName, '--script', 'fetch.mjs', '--source', 's', '--day', DAY,
      '--proxy-pool', 'residential', '--job', JSON.stringify({ url: 'http://one.test/' }), ...storeFlags('lake/proxy'), '--storage-dataset', 'nopool'], { cwd: SCRIPTS, env, timeoutMs: 170_000 });
    expect(r.code, r.stderr + w.stderr()).not.toBe(0);
    expect(r.code, r.stderr).not.toBe(2);
    const lines = w.stderr().split('\n').filter((l) => l.includes('this worker has no proxy pool "residential"'));
    expect(lines, w.stderr()).toHaveLength(1);
    expect(w.child.exitCode).toBeNull();
    expect(await w.stop()).toBe(0);
  });
});
