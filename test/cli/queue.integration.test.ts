/**
 * `quarry worker` and `quarry run --queue` (SPEC §12) as a user runs them:
 * worker processes on one queue (real Redis, a queue name of their own), the
 * local S3 server, a PostgreSQL database of this file's own, and the crawl
 * fixture site. A no-browser crawl on two workers completes with every item
 * once in the authoritative tree; a browser crawl on two workers too; a
 * worker SIGTERMed with a run in flight hands it back within the 30 s grace
 * and another worker finishes the tree with nothing lost or read twice; a
 * worker whose script differs from the submitted one fails that run with one
 * line; a job for another storage is refused with one line.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { treeManifestKey } from '../../src/storage/layout.js';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { startCrawlSite, type CrawlSite, type CrawlSiteOptions } from '../_harness/crawl-site.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { killTagged, newTag, taggedProcesses } from '../_harness/proc-tag.js';
import { spawnWorker, until as waitUntil, type WorkerProcess } from '../_harness/queue-worker.js';
import { ensureRedis, removeKeys } from '../_harness/redis.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/crawl-site');
const DAY = '2026-11-24';

let s3: S3TestServer;
let db: TestDatabase;
let redisUrl: string;
let tmp: TempDir;
let env: NodeJS.ProcessEnv;
const queueName = `qtest-${process.pid}-${randomBytes(4).toString('hex')}`;
const tag = newTag();

beforeAll(async () => {
  [s3, db, redisUrl, tmp] = await Promise.all([startS3Server(), createTestDatabase('quarry_queue'), ensureRedis(), makeTempDir('queue')]);
  await s3.createBucket('lake');
  env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: 'us-east-1', ...tag.env };
}, 120_000);

let site: CrawlSite | undefined;
const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
  await site?.close();
  site = undefined;
});
afterAll(async () => {
  killTagged(tag.tag);
  // Both queues of this file: `<name>` and `<name>-wait`.
  await removeKeys(redisUrl, `quarry:${queueName}`);
  await removeKeys(redisUrl, `bull:${queueName}`);
  await s3.stop();
  await db.drop();
  await tmp.remove();
});

const storeFlags = (path = 'lake/crawl') => ['--storage-backend', 's3', '--storage-endpoint', s3.endpoint, '--storage-s3-path-style', '--storage-path', path, '--ledger', db.url];

type Worker = WorkerProcess;

function startWorker(slots: number, scriptsDir = SCRIPTS, storage = 'lake/crawl', more: string[] = [], extraEnv: NodeJS.ProcessEnv = {}): Worker {
  const w = spawnWorker(['--queue', redisUrl, '--queue-name', queueName, '--slots', String(slots), '--scripts-dir', scriptsDir, ...storeFlags(storage), ...more], { ...env, ...extraEnv });
  workers.push(w);
  return w;
}

const until = (what: string, cond: () => boolean, ms = 120_000): Promise<void> => waitUntil(what, cond, ms);

function submit(siteOpts: CrawlSiteOptions | CrawlSite, flags: string[], cwd = SCRIPTS, script = 'listing.mjs', storage = 'lake/crawl'): Promise<CliResult> {
  const url = 'url' in siteOpts ? siteOpts.url : '';
  return quarry([
    'run', '--queue', redisUrl, '--queue-name', queueName, '--script', script, '--source', 'site', '--day', DAY,
    '--job', JSON.stringify({ base: url }), ...storeFlags(storage), ...flags,
  ], { cwd, env, timeoutMs: 170_000 });
}

async function readItems(storage = 'lake/crawl', dataset?: string): Promise<{ item_type: string; data: { id: number } }[]> {
  const r = await quarry(['read', ...storeFlags(storage), ...(dataset ? ['--storage-dataset', dataset] : []), '--type', 'item'], { env });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { id: number } } }).payload);
}

const ids = (items: { item_type: string; data: { id: number } }[], type: string): number[] => items.filter((i) => i.item_type === type).map((i) => i.data.id).sort((a, b) => a - b);
const runLines = (w: Worker): string[] => w.runLines();

describe('quarry worker and quarry run --queue', { timeout: 180_000 }, () => {
  it('two workers crawl the fixture site (no browser): the tree completes, every page\'s item once in the authoritative tree, one finalization', async () => {
    site = await startCrawlSite({ details: 6, detailDelayMs: 100 });
    const a = startWorker(2);
    const b = startWorker(2);
    const report = join(tmp.path, 'report-1.json');
    const r = await submit(site, ['--depth', '2', '--max-runs', '50', '--parallel', '4', '--report', report]);
    expect(r.code, `${r.stderr}\n${a.stderr()}\n${b.stderr()}`).toBe(0);
    // root + 6 details + 6 assets (each linked twice): one summary, where the data is, what the ledger says.
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^tree_id=\S+, runs=13, items=13, duration=[\d.]+s, admitted=13, succeeded=13, failed=0, retried=0, deduplicated=\d+, not_executed_cap=0, not_executed_depth=0, authoritative=true, reason=promoted$/);
    expect(lines[2]).toMatch(/^ledger: tree \S+ is authoritative/);
    const rep = JSON.parse(readFileSync(report, 'utf8')) as { exit_code: number; tree: Record<string, unknown>; finalized_by: string };
    expect(rep).toMatchObject({ exit_code: 0, tree: { admitted: 13, succeeded: 13, authoritative: true } });
    const items = await readItems();
    expect(ids(items, 'detail')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ids(items, 'asset')).toEqual([1, 2, 3, 4, 5, 6]);
    expect(items.filter((i) => i.item_type === 'listing')).toHaveLength(1);
    // Both workers ran pages; exactly one finalized the tree.
    expect(runLines(a).length).toBeGreaterThan(0);
    expect(runLines(b).length).toBeGreaterThan(0);
    expect(runLines(a).length + runLines(b).length).toBe(13);
    expect([a, b].filter((w) => w.stderr().includes('finalized')).length).toBe(1);
    // A clean stop: exit 0, nothing of theirs left running.
    expect(await a.stop()).toBe(0);
    expect(await b.stop()).toBe(0);
    expect(taggedProcesses(tag.tag)).toEqual([]);
  });

  it('SIGTERM of a worker with a run in flight: interrupted after the grace, handed back at once, finished by another worker; nothing lost or read twice', async () => {
    // Detail pages take 6 s: longer than this worker's --stop-grace 2s, so its run in flight is handed back.
    site = await startCrawlSite({ details: 2, detailDelayMs: 6_000 });
    const a = startWorker(1, SCRIPTS, 'lake/crawl', ['--stop-grace', '2s']);
    const sub = await submit(site, ['--depth', '2', '--max-runs', '20', '--parallel', '2', '--detach', '--storage-dataset', 'term'], SCRIPTS);
    expect(sub.code, sub.stderr).toBe(0);
    const treeId = sub.stdout.trim();
    await until('a detail request in flight', () => site!.log.some((l) => l.path.startsWith('/detail/')));
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    const code = await a.exited;
    const took = Date.now() - t0;
    expect(code, a.stderr()).toBe(0);
    // Interrupted at the end of the grace, handed back, and every slot closed within seconds of it.
    expect(took).toBeGreaterThanOrEqual(1_900);
    expect(took).toBeLessThan(15_000);
    expect(a.stderr()).toMatch(/of detail\.mjs \(tree \S+, attempt 1\): interrupted, 0 item\(s\)/);
    const b = startWorker(2);
    const follow = await quarry(['inspect', 'run', treeId, '--queue', redisUrl, '--queue-name', queueName, '--format', 'json'], { env, timeoutMs: 170_000 });
    expect(follow.code, `${follow.stderr}\n${b.stderr()}`).toBe(0);
    const view = JSON.parse(follow.stdout) as { state: string; counters: Record<string, number>; result: { authoritative: boolean; exit_code: number } };
    expect(view.state).toBe('finished');
    // root + 2 details + 2 assets; the interrupted attempt re-run as attempt 2, not counted against retries.
    expect(view.counters, b.stderr()).toMatchObject({ admitted: 5, succeeded: 5, failed: 0, retried: 0, requeued: 1, running: 0, queued: 0 });
    expect(view.result).toMatchObject({ authoritative: true, exit_code: 0 });
    expect(b.stderr()).toMatch(/of detail\.mjs \(tree \S+, attempt 2\): success, 1 item\(s\)/);
    const items = await quarry(['read', ...storeFlags(), '--storage-dataset', 'term', '--type', 'item'], { env });
    expect(items.code, items.stderr).toBe(0);
    const payloads = items.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { id: number } } }).payload);
    expect(ids(payloads, 'detail')).toEqual([1, 2]);
    expect(ids(payloads, 'asset')).toEqual([1, 2]);
  });

  it('a worker SIGKILLed right after claiming a tree\'s finalization: another worker takes the lapsed claim over within seconds; one tree manifest, one tree validation', async () => {
    site = await startCrawlSite({ details: 2, detailDelayMs: 10 });
    // The only worker at first: it runs the whole tree, claims its finalization, and dies there.
    const a = startWorker(2, SCRIPTS, 'lake/crawl', [], { QUARRY_TEST_KILL_POINT: 'tree_finalizing' });
    const pending = submit(site, ['--depth', '2', '--max-runs', '20', '--parallel', '2', '--storage-dataset', 'fin']);
    expect(await a.exited, a.stderr()).toBeNull();
    const killedAt = Date.now();
    expect(runLines(a)).toHaveLength(5);
    const b = startWorker(1);
    const r = await pending;
    const took = Date.now() - killedAt;
    expect(r.code, `${r.stderr}\n${b.stderr()}`).toBe(0);
    expect(r.stdout).toMatch(/admitted=5, succeeded=5, failed=0, .*authoritative=true, reason=promoted$/m);
    // B ran nothing again: it took over the claim the dead worker stopped renewing.
    expect(runLines(b)).toHaveLength(0);
    expect(b.stderr()).toMatch(/^quarry worker: tree \S+: took over its finalization from \S+, which stopped renewing it$/m);
    // BullMQ hands the dead worker's job back after its 10 s lock (plus a 3 s stall check) and B's start; the bound is for a hang.
    expect(took).toBeLessThan(60_000);
    const treeId = /^tree_id=(\S+),/.exec(r.stdout)![1]!;
    const key = `/lake/crawl/${treeManifestKey('fin', treeId)}`;
    expect(s3.requests.filter((q) => q.method === 'PUT' && q.url.split('?')[0] === key && q.status !== undefined && q.status < 300)).toHaveLength(1);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const v = await c.query<{ n: string }>('SELECT count(*) AS n FROM tree_validation WHERE tree_id = $1', [treeId]);
      expect(Number(v.rows[0]!.n)).toBe(1);
    } finally {
      await c.end();
    }
    const items = await readItems('lake/crawl', 'fin');
    expect(ids(items, 'detail')).toEqual([1, 2]);
  });

  it('a finalization that keeps failing is tried 4 times, then the submitter and inspect run say why; --resume --queue finalizes it again', async () => {
    site = await startCrawlSite({ details: 1, detailDelayMs: 10 });
    // No worker yet: the tree id is known before anything runs, so its manifest key can be spoiled first.
    const sub = await submit(site, ['--detach', '--storage-dataset', 'ffail']);
    expect(sub.code, sub.stderr).toBe(0);
    const treeId = sub.stdout.trim();
    const client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: s3.credentials });
    const Key = `crawl/${treeManifestKey('ffail', treeId)}`;
    await client.send(new PutObjectCommand({ Bucket: 'lake', Key, Body: 'not a tree manifest' }));
    const w = startWorker(1);
    const view = await quarry(['inspect', 'run', treeId, '--queue', redisUrl, '--queue-name', queueName, '--format', 'json'], { env, timeoutMs: 120_000 });
    expect(view.code, `${view.stderr}\n${w.stderr()}`).toBe(0);
    // While it retried, the follower saw why; then the result says the finalization failed, why, and what to do.
    expect(view.stderr).toMatch(/; finalizing: attempt 1 of 4 failed: /);
    const v = JSON.parse(view.stdout) as { state: string; result: { reason: string; exit_code: number; line: string; next: string } };
    expect(v.state).toBe('finalization_failed');
    expect(v.result).toMatchObject({ reason: 'finalization_failed', exit_code: 3 });
    expect(v.result.line).toMatch(new RegExp(`^tree ${treeId} could not be finalized \\(.*${treeId}.*\\); gave up after 4 attempts in \\d+ s$`));
    expect(v.result.next).toMatch(new RegExp(`^quarry run --resume ${treeId} --queue redis://\\S+ --queue-name ${queueName} `));
    expect(w.stderr().split('\n').filter((l) => l.includes('finalization attempt'))).toHaveLength(3);
    // The spoiled object removed, the tree is resumed on the queue: finalized again, authoritative.
    await client.send(new DeleteObjectCommand({ Bucket: 'lake', Key }));
    client.destroy();
    const r = await quarry(['run', '--resume', treeId, '--queue', redisUrl, '--queue-name', queueName], { env, timeoutMs: 120_000 });
    expect(r.code, `${r.stderr}\n${w.stderr()}`).toBe(0);
    expect(r.stderr).toContain(`tree ${treeId}: its finalization had failed; a worker finalizes it again`);
    expect(r.stdout).toMatch(/admitted=1, succeeded=1, failed=0, .*authoritative=true, reason=promoted$/m);
    expect(runLines(w)).toHaveLength(1);
    // A flag that would change the tree is refused with one line.
    const bad = await quarry(['run', '--resume', treeId, '--queue', redisUrl, '--queue-name', queueName, '--depth', '2'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--depth cannot be given with --resume --queue/);
  });

  it('a worker whose script differs from the submitted one fails that run with one line; a job for other storage is refused with one line', async () => {
    site = await startCrawlSite({ details: 1, detailDelayMs: 10 });
    const mine = join(tmp.path, 'scripts-changed');
    cpSync(SCRIPTS, mine, { recursive: true });
    // The root is admitted by the submitter (children by the worker that runs their parent, §10): its SHA-256 is the submitter's.
    appendFileSync(join(mine, 'listing.mjs'), '\n// changed on this worker only\n');
    const w = startWorker(1, mine, 'lake/sha');
    const r = await submit(site, ['--depth', '1', '--max-runs', '5', '--storage-dataset', 'sha'], SCRIPTS, 'listing.mjs', 'lake/sha');
    // The root failed on this worker (script_error: exit 1) and nothing of the site was fetched.
    expect(r.code, `${r.stderr}\n${w.stderr()}`).toBe(1);
    const sha = w.stderr().split('\n').filter((l) => l.includes('not the') && l.includes('submitted'));
    expect(sha).toHaveLength(1);
    expect(sha[0]).toMatch(/^quarry: run \S+ of listing\.mjs failed: its script \S+listing\.mjs has SHA-256 [0-9a-f]{64}, not the [0-9a-f]{64} submitted; deploy the same scripts to every worker$/);
    expect(site.requests.size).toBe(0);

    // Submitted for other storage: the worker on lake/sha refuses the job (one line) and runs nothing of it.
    const before = runLines(w).length;
    const other = await submit(site, ['--detach', '--storage-dataset', 'other'], SCRIPTS, 'listing.mjs', 'lake/other');
    expect(other.code, other.stderr).toBe(0);
    await until('the refusal', () => w.stderr().includes('refused'), 60_000);
    const refused = w.stderr().split('\n').filter((l) => l.includes('refused'));
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatch(/^quarry worker: job \S+ of tree \S+ refused: it was submitted for storage s3:\/\/\S+\/lake\/other and ledger \S+, this worker has storage s3:\/\/\S+\/lake\/sha and ledger \S+$/);
    expect(runLines(w).length).toBe(before);
  });

  it('Ctrl-C stops only the waiting: the tree stays queued for the workers, and inspect run --no-follow shows it', async () => {
    // A queue of its own: no worker of the other tests takes this tree.
    let sent = false;
    const r = await quarry([
      'run', '--queue', redisUrl, '--queue-name', `${queueName}-wait`, '--script', 'listing.mjs', '--source', 'site', '--day', DAY,
      '--job', '{"base":"http://127.0.0.1:9"}', ...storeFlags(), '--storage-dataset', 'waiting',
    ], {
      cwd: SCRIPTS, env, timeoutMs: 120_000,
      // No worker runs this one: the submitter waits until it is interrupted.
      onSpawn: (child) => { setTimeout(() => { sent = true; child.kill('SIGINT'); }, 8_000); },
    });
    expect(sent).toBe(true);
    expect(r.code, r.stderr).toBe(130);
    const m = /stopped waiting; tree (\S+) goes on on the workers; follow it with: quarry inspect run \S+ --queue redis:\/\/\S+ --queue-name \S+$/m.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const view = await quarry(['inspect', 'run', m![1]!, '--queue', redisUrl, '--queue-name', `${queueName}-wait`, '--no-follow', '--format', 'json'], { env });
    expect(view.code, view.stderr).toBe(0);
    expect(JSON.parse(view.stdout)).toMatchObject({ tree_id: m![1], state: 'running', counters: { admitted: 1, queued: 1, running: 0 }, runs: 0, result: null });
  });

  it('two workers crawl the fixture site in Chromium: every detail once in the authoritative tree', async () => {
    site = await startCrawlSite({ details: 2, detailDelayMs: 10 });
    const a = startWorker(1);
    const b = startWorker(1);
    const r = await submit(site, ['--depth', '1', '--max-runs', '10', '--parallel', '2', '--storage-dataset', 'browser'], SCRIPTS, 'browser-listing.mjs');
    expect(r.code, `${r.stderr}\n${a.stderr()}\n${b.stderr()}`).toBe(0);
    expect(r.stdout).toMatch(/admitted=3, succeeded=3, failed=0/);
    const items = await quarry(['read', ...storeFlags(), '--storage-dataset', 'browser', '--type', 'item'], { env });
    const payloads = items.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { id: number } } }).payload);
    expect(ids(payloads, 'detail')).toEqual([1, 2]);
    expect(runLines(a).length + runLines(b).length).toBe(3);
    expect(await a.stop()).toBe(0);
    expect(await b.stop()).toBe(0);
    expect(taggedProcesses(tag.tag)).toEqual([]);
  });
});
