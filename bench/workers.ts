// Queue workers (issue 15, SPEC §12): the 500-page no-browser crawl of the
// fixture site (a listing, DETAILS detail pages, DETAILS asset pages: 1 + 2 ×
// DETAILS runs) run by 1, 2 and 3 `quarry worker` processes (2 slots each,
// tree --parallel 6) over a private Redis, the local S3 server and a
// PostgreSQL database of its own, beside the same crawl run by one `quarry
// run` on this machine (fs storage, SQLite ledger, --parallel 2 = one
// worker's slots): the reference, in the same run. Per configuration: wall
// time from submit to the submitter's exit, pages/s, and per page the Redis
// commands (INFO commandstats of the private server, BullMQ's included), the
// S3 requests (the local server's log) and PostgreSQL transactions and rows
// written (pg_stat_database of the bench's database, read after the workers
// exit so every backend has flushed its counters).
//   npx tsx bench/workers.ts [--details 250] [--workers 1,2,3]
// Needs a built dist/ (npm run build).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { openLedger } from '../src/ledger/ledger.js';
import { startCrawlSite } from '../test/_harness/crawl-site.js';
import { createTestDatabase } from '../test/_harness/postgres.js';
import { startPrivateRedis } from '../test/_harness/redis.js';
import { startS3Server } from '../test/_harness/s3-server.js';
import { machine } from './lib/timing.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(root, 'dist/cli/main.js');
const SCRIPTS = join(root, 'test/fixtures/crawl-site');
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1]!;
};
const DETAILS = Number(arg('details', '250'));
const COUNTS = arg('workers', '1,2,3').split(',').map(Number);
const PAGES = 1 + 2 * DETAILS;

function run(args: string[], env: NodeJS.ProcessEnv, cwd = SCRIPTS): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - t0 }));
  });
}

async function redisCommands(r: Redis): Promise<number> {
  const info = await r.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)) n += Number(m[1]);
  return n;
}

const [redis, s3, db, site, dir] = await Promise.all([
  startPrivateRedis(), startS3Server(), createTestDatabase('quarry_bench_workers'), startCrawlSite({ details: DETAILS, detailDelayMs: 20 }),
  mkdtemp(join(tmpdir(), 'quarry-bench-workers-')),
]);
const admin = new Redis(redis.url);
const pgc = new pg.Client({ connectionString: db.url });
await pgc.connect();
await s3.createBucket('lake');
const env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: 'us-east-1' };
const store = (dataset: string): string[] => ['--storage-backend', 's3', '--storage-endpoint', s3.endpoint, '--storage-s3-path-style', '--storage-path', 'lake/bench', '--storage-dataset', dataset, '--ledger', db.url];
const crawlFlags = ['--script', 'listing.mjs', '--source', 'site', '--day', '2026-11-24', '--job', JSON.stringify({ base: site.url }), '--depth', '2', '--max-runs', String(PAGES + 10), '--quiet'];

async function pgStats(): Promise<{ xact: number; rows: number }> {
  await pgc.query('SELECT pg_stat_clear_snapshot()');
  const r = await pgc.query<{ x: string; w: string }>('SELECT xact_commit + xact_rollback AS x, tup_inserted + tup_updated + tup_deleted AS w FROM pg_stat_database WHERE datname = $1', [db.name]);
  return { xact: Number(r.rows[0]!.x), rows: Number(r.rows[0]!.w) };
}

// The ledger's schema is created before anything is measured: creating its 25 relations writes about 500
// rows into PostgreSQL's catalogs, which pg_stat_database counts as rows written (and a backend reports its
// counters late, often at its exit), so a first configuration whose workers migrate the fresh database would
// carry them (this is what made 1 worker read 2 rows per page in an earlier version of this bench).
await (await openLedger(db.url)).close();
await new Promise((r) => setTimeout(r, 1500));

const out: string[] = [];
try {
  console.log(machine());
  // The reference: one machine, one invocation, the same crawl, as many slots as one worker.
  const local = await run(['run', ...crawlFlags, '--parallel', '2', '--storage-path', join(dir, 'local')], {});
  if (local.code !== 0) throw new Error(`reference crawl failed: ${local.stderr}`);
  const refPps = PAGES / (local.ms / 1000);
  out.push(`reference (quarry run, fs + SQLite, --parallel 2): ${(local.ms / 1000).toFixed(1)} s, ${refPps.toFixed(2)} pages/s`);
  let onePps = NaN;
  for (const n of COUNTS) {
    const queueName = `bench${n}`;
    const workers: { child: ChildProcess; exited: Promise<unknown> }[] = [];
    for (let i = 0; i < n; i++) {
      const child = spawn(process.execPath, [CLI, 'worker', '--queue', redis.url, '--queue-name', queueName, '--slots', '2', '--scripts-dir', SCRIPTS, '--quiet',
        '--storage-backend', 's3', '--storage-endpoint', s3.endpoint, '--storage-s3-path-style', '--storage-path', 'lake/bench', '--ledger', db.url], { env: { ...process.env, ...env }, stdio: 'ignore' });
      workers.push({ child, exited: new Promise((r) => child.once('close', r)) });
    }
    // Let the workers connect before the clock starts (their start is not the crawl's cost).
    await new Promise((r) => setTimeout(r, 3000));
    const r0 = await redisCommands(admin);
    const s0 = s3.requests.length;
    const p0 = await pgStats();
    const res = await run(['run', '--queue', redis.url, '--queue-name', queueName, ...crawlFlags, '--parallel', '6', ...store(`w${n}`)], env);
    const r1 = await redisCommands(admin);
    const s1 = s3.requests.length;
    for (const w of workers) w.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await new Promise((r) => setTimeout(r, 1500));
    const p1 = await pgStats();
    if (res.code !== 0) throw new Error(`${n} worker(s): quarry run --queue exited ${res.code}: ${res.stderr}`);
    const pps = PAGES / (res.ms / 1000);
    if (n === 1) onePps = pps;
    const per = (x: number): string => (x / PAGES).toFixed(2);
    out.push(`${n} worker(s) × 2 slots: ${(res.ms / 1000).toFixed(1)} s, ${pps.toFixed(2)} pages/s (${(pps / refPps).toFixed(2)}x the reference${n > 1 ? `, ${(pps / onePps).toFixed(2)}x one worker` : ''}); per page: Redis ${per(r1 - r0)} commands, S3 ${per(s1 - s0)} requests, PostgreSQL ${per(p1.xact - p0.xact)} transactions and ${per(p1.rows - p0.rows)} rows written`);
  }
  out.push(`pages=${PAGES}, ${machine()}`);
  console.log(out.join('\n'));
} finally {
  admin.disconnect();
  await pgc.end();
  await site.close();
  await redis.stop();
  await s3.stop();
  await db.drop();
  await rm(dir, { recursive: true, force: true });
}
