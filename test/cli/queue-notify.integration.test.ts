/**
 * Notifications and event sinks of queued trees (SPEC §11, §12) as a user
 * runs them: the submitter's `--adapter` travels with the tree as its kind
 * and recorded target only; the worker that finalizes the tree sends the one
 * `tree_completed` notification with its own adapter (credentials, headers);
 * a worker without one, or a receiver that is down, leaves it pending with
 * one line and `quarry adapter drain` against the PostgreSQL ledger sends it
 * later, once. A worker's `--event-sink redis` streams the events of the runs
 * it executes. Real Redis (a queue name and stream key of this file's own),
 * PostgreSQL (a database of its own), the local S3 server, the crawl fixture
 * site (no browser) and real worker processes.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { startCrawlSite, type CrawlSite } from '../_harness/crawl-site.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { killTagged, newTag } from '../_harness/proc-tag.js';
import { spawnWorker, type WorkerProcess } from '../_harness/queue-worker.js';
import { ensureRedis, removeKeys } from '../_harness/redis.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { startWebhookReceiver, type WebhookReceiver } from '../_harness/webhook-receiver.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/crawl-site');
const DAY = '2026-11-24';
const TOKEN = 'qn-t0ken-5ecret';
const HEADER = 'qn-h3ader-5ecret';

let s3: S3TestServer;
let db: TestDatabase;
let redisUrl: string;
let tmp: TempDir;
let env: NodeJS.ProcessEnv;
let rx: WebhookReceiver;
let site: CrawlSite;
const queueName = `qnotify-${process.pid}-${randomBytes(4).toString('hex')}`;
const streamPrefix = `qnotify-${process.pid}-${randomBytes(4).toString('hex')}`;
const tag = newTag();

beforeAll(async () => {
  [s3, db, redisUrl, tmp, rx, site] = await Promise.all([
    startS3Server(), createTestDatabase('quarry_qnotify'), ensureRedis(), makeTempDir('queue-notify'), startWebhookReceiver(), startCrawlSite({ details: 3 }),
  ]);
  await s3.createBucket('lake');
  env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: 'us-east-1', ...tag.env };
}, 120_000);

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});
afterAll(async () => {
  killTagged(tag.tag);
  await removeKeys(redisUrl, `quarry:${queueName}`);
  await removeKeys(redisUrl, `bull:${queueName}`);
  await removeKeys(redisUrl, streamPrefix);
  await rx.close();
  await site.close();
  await s3.stop();
  await db.drop();
  await tmp.remove();
});

const stores = (): string[] => ['--storage-backend', 's3', '--storage-endpoint', s3.endpoint, '--storage-s3-path-style', '--storage-path', 'lake/notify', '--ledger', db.url];
/** The workers' own adapter: the URL with its token, and a header, neither of which the queue ever holds. */
const workerAdapter = (more: string[] = []): string[] => ['--adapter', 'webhook', '--adapter-url', `${rx.url}?token=${TOKEN}`, '--adapter-header', `X-Auth=${HEADER}`, ...more];

type Worker = WorkerProcess;

function startWorker(more: string[]): Worker {
  const w = spawnWorker(['--queue', redisUrl, '--queue-name', queueName, '--slots', '2', '--scripts-dir', SCRIPTS, ...stores(), ...more], env);
  workers.push(w);
  return w;
}

function submit(flags: string[], dataset: string): Promise<CliResult> {
  return quarry([
    'run', '--queue', redisUrl, '--queue-name', queueName, '--script', 'listing.mjs', '--source', 'site', '--day', DAY,
    '--job', JSON.stringify({ base: site.url }), ...stores(), '--storage-dataset', dataset, ...flags,
  ], { cwd: SCRIPTS, env, timeoutMs: 170_000 });
}

interface Payload { event_type: string; notification_id: string; tree_id: string | null; authoritative: boolean; counts: Record<string, number> }
const runIds = (w: Worker): string[] => w.stderr().split('\n').flatMap((l) => /^quarry worker: run (\S+) /.exec(l)?.[1] ?? []);

/** Every key and value under the queue's prefixes, as one string. */
async function dumpQueue(): Promise<string> {
  const r = new Redis(redisUrl);
  const out: string[] = [];
  try {
    for (const prefix of [`quarry:${queueName}`, `bull:${queueName}`]) {
      for (const k of await r.keys(`${prefix}*`)) {
        const type = await r.type(k);
        const v = type === 'string' ? await r.get(k) : type === 'hash' ? await r.hgetall(k) : type === 'list' ? await r.lrange(k, 0, -1)
          : type === 'set' ? await r.smembers(k) : type === 'zset' ? await r.zrange(k, '0', '-1') : null;
        out.push(k, JSON.stringify(v));
      }
    }
  } finally {
    r.disconnect();
  }
  return out.join('\n');
}

describe('queued trees: notifications and event sinks on the workers', { timeout: 180_000 }, () => {
  it('two workers with a webhook adapter: one tree_completed notification (the tree id), none per child, sent by the finalizing worker; each worker\'s event sink streams the runs it executed', async () => {
    const sink = (key: string): string[] => ['--event-sink', 'redis', '--event-sink-redis-url', redisUrl, '--event-sink-redis-stream-key', `${streamPrefix}:${key}`];
    const a = startWorker([...workerAdapter(), ...sink('a')]);
    const b = startWorker([...workerAdapter(), ...sink('b')]);
    const report = join(tmp.path, 'report-up.json');
    // The submitter gives the same URL with its token (a shared config would): only the bare URL travels.
    const r = await submit(['--depth', '2', '--max-runs', '20', '--parallel', '4', '--report', report,
      '--adapter', 'webhook', '--adapter-url', `${rx.url}?token=${TOKEN}`], 'up');
    expect(r.code, `${r.stderr}\n${a.stderr()}\n${b.stderr()}`).toBe(0);
    expect(r.stderr).toContain('the credentials and query of --adapter-url is not sent with a queued tree');
    const rep = JSON.parse(readFileSync(report, 'utf8')) as { tree: { tree_id: string; admitted: number }; notification: { notification_id: string; status: string; target: string } };
    expect(rep.tree.admitted).toBe(7);
    expect(rep.notification).toMatchObject({ status: 'delivered', target: rx.url });
    expect(r.stdout).toContain(`notification: ${rep.notification.notification_id} delivered to ${rx.url} (1 attempt)`);

    // Exactly one notification for the 7 runs: the tree's, with its id, sent with the worker's header.
    expect(rx.posts).toHaveLength(1);
    const p = rx.posts[0]!;
    expect(p.body as Payload).toMatchObject({ event_type: 'tree_completed', notification_id: rep.notification.notification_id, tree_id: rep.tree.tree_id, authoritative: true });
    expect(p.headers['x-auth']).toBe(HEADER);
    const senders = [a, b].filter((w) => w.stderr().includes(`notification ${rep.notification.notification_id} delivered`));
    expect(senders).toHaveLength(1);
    expect(senders[0]!.stderr()).toContain(`tree ${rep.tree.tree_id} finalized`);

    // Nothing is left pending: a drain against the ledger sends nothing.
    const drain = await quarry(['adapter', 'drain', '--ledger', db.url], { env });
    expect(drain.code, drain.stderr).toBe(0);
    expect(drain.stderr).toMatch(/nothing pending/);
    expect(rx.posts).toHaveLength(1);

    // Each worker streamed every event of each run it executed to its own stream, in seq order.
    const ran = { a: runIds(a), b: runIds(b) };
    expect(ran.a.length + ran.b.length).toBe(7);
    const redis = new Redis(redisUrl);
    for (const [key, w] of [['a', a], ['b', b]] as const) {
      const entries = await redis.xrange(`${streamPrefix}:${key}`, '-', '+');
      const fields = entries.map(([, f]) => Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])));
      expect(new Set(fields.map((f) => f.run_id)), key).toEqual(new Set(ran[key]));
      for (const id of ran[key]) {
        const seqs = fields.filter((f) => f.run_id === id).map((f) => Number(f.seq));
        expect(seqs, id).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
        expect(fields.some((f) => f.run_id === id && f.type === 'item'), id).toBe(true);
      }
      expect(fields.every((f) => f.source === 'site' && f.dataset === 'up')).toBe(true);
      if (ran[key].length > 0) expect(w.stderr()).toMatch(/: success, \d+ item\(s\); event sink redis: \d+ sent, 0 dropped/);
    }
    redis.disconnect();

    // The adapter's secrets are in no queue key or value and no output of the submitter.
    const dump = await dumpQueue();
    // What does travel: the kind and the bare URL.
    expect(dump).toContain(rx.url);
    for (const text of [dump, r.stdout]) for (const secret of [TOKEN, HEADER]) expect(text).not.toContain(secret);
  });

  it('a worker without the adapter, then a receiver down: each notification stays pending with one line, and adapter drain against the PostgreSQL ledger sends each once', async () => {
    await rx.down();
    try {
      const bare = startWorker([]);
      const r1 = await submit(['--adapter', 'webhook', '--adapter-url', rx.url], 'down1');
      expect(r1.code, `${r1.stderr}\n${bare.stderr()}`).toBe(0);
      const id1 = /notification: (\S+) NOT delivered to /.exec(r1.stdout)?.[1];
      expect(id1, r1.stdout).toBeDefined();
      expect(r1.stdout).toContain('quarry adapter drain --ledger postgres://');
      const left = bare.stderr().split('\n').filter((l) => l.includes(`notification ${id1} left pending`));
      expect(left, bare.stderr()).toHaveLength(1);
      expect(left[0]).toContain(`this worker has no --adapter for webhook ${rx.url}`);
      expect(await bare.stop()).toBe(0);

      const withAdapter = startWorker(workerAdapter(['--adapter-retries', '0', '--adapter-timeout', '2s']));
      const r2 = await submit(['--adapter', 'webhook', '--adapter-url', rx.url], 'down2');
      expect(r2.code, `${r2.stderr}\n${withAdapter.stderr()}`).toBe(0);
      const id2 = /notification: (\S+) NOT delivered to /.exec(r2.stdout)?.[1];
      expect(id2, r2.stdout).toBeDefined();
      expect(withAdapter.stderr().split('\n').filter((l) => l.includes(`notification ${id2} NOT delivered`))).toHaveLength(1);
      expect(rx.posts).toHaveLength(1);
    } finally {
      await rx.up();
    }
    const before = rx.posts.length;
    const drain = await quarry(['adapter', 'drain', '--ledger', db.url, '--adapter-url', `${rx.url}?token=${TOKEN}`, '--adapter-header', `X-Auth=${HEADER}`, '--format', 'json'], { env });
    expect(drain.code, drain.stderr).toBe(0);
    const sent = rx.posts.slice(before).map((p) => p.body as Payload);
    expect(sent).toHaveLength(2);
    expect(sent.every((p) => p.event_type === 'tree_completed')).toBe(true);
    expect(new Set(sent.map((p) => p.notification_id)).size).toBe(2);
    expect((JSON.parse(drain.stdout) as Array<{ status: string }>).map((x) => x.status)).toEqual(['delivered', 'delivered']);
    const again = await quarry(['adapter', 'drain', '--ledger', db.url], { env });
    expect(again.stderr).toMatch(/nothing pending/);
    expect(rx.posts).toHaveLength(before + 2);
  });

  it('a shared config\'s events.sinks[] and state_dir are not read with --queue: one notice each, nothing refused', async () => {
    const config = join(tmp.path, 'shared.yaml');
    writeFileSync(config, `state_dir: ${tmp.path}/state\nevents:\n  sinks:\n    - {type: redis, url: "${redisUrl}"}\n`);
    const r = await quarry(['run', '--queue', redisUrl, '--queue-name', queueName, '--config', config, '--script', 'listing.mjs', '--source', 'site', ...stores(), '--dry-run'], { cwd: SCRIPTS, env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('quarry run: state_dir of the config is not read with --queue');
    expect(r.stderr).toContain('quarry run: events.sinks[] of the config is not read with --queue: each worker streams the runs it executes to its own sinks');
  });
});
