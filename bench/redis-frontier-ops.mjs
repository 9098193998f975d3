// Redis round trips of the Redis frontier per run, for docs/scaling.md: three
// workers (2 slots each, tree --parallel 3) crawl the test crawl of
// test/fixtures/crawl with the no-browser executor over the machine's Redis.
// Usage: node bench/redis-frontier-ops.mjs [pages=50] [lease_ms=6000]
// (after `npx tsc -p tsconfig.build.json`; needs Redis on 127.0.0.1:6379).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisFrontier } from '../dist/scheduler/redis-frontier.js';
import { submitSharedTree, workSharedTree } from '../dist/scheduler/shared-tree.js';
import { FsBackend } from '../dist/storage/fs-backend.js';

const pages = Number(process.argv[2] ?? 50);
const leaseMs = Number(process.argv[3] ?? 6000);
const url = process.env.QUARRY_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const root = new URL('..', import.meta.url).pathname;
const scripts = join(root, 'test/fixtures/crawl');
const dir = mkdtempSync(join(tmpdir(), 'quarry-redis-ops-'));
const keyPrefix = `quarry-bench:${process.pid}:`;
const backend = await FsBackend.create(join(dir, 'data'));
const treeId = `01BENCH${Date.now()}`;
const opts = {
  tree_id: treeId, max_depth: 2, max_runs: 10_000, parallel: 3, retries: 1, lease_ms: leaseMs,
  run: { script: 'listing.mjs', job: { pages }, partition: { dataset: 'bench', source: 'web', category: 'p', day: '2026-01-01' }, policy: { name: 'strict' } },
};
const submitter = await RedisFrontier.create(url, opts, { keyPrefix });
await submitSharedTree(submitter, scripts);
const workers = await Promise.all([0, 1, 2].map(() => RedisFrontier.open(url, treeId, { keyPrefix })));
const t0 = Date.now();
const reports = await Promise.all(workers.map((f, i) => workSharedTree({
  owner: `w${i}`, scriptsRoot: scripts, backend, parallel: 2, executorPath: join(root, 'test/fixtures/executors/no-browser.mjs'), retryBackoffMs: () => 50,
}, f)));
const seconds = (Date.now() - t0) / 1000;
const runs = reports.reduce((n, r) => n + r.runs.length, 0);
const trips = workers.reduce((n, f) => n + f.roundTrips, 0);
const c = await submitter.counters();
console.log(JSON.stringify({ pages, lease_ms: leaseMs, runs, admitted: c.admitted, enqueues: c.admitted + c.deduplicated - 1, seconds, worker_round_trips: trips, per_run: +(trips / runs).toFixed(2) }));
for (const f of [submitter, ...workers]) await f.close();
const r = new Redis(url);
let cursor = '0';
do {
  const [next, keys] = await r.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
  cursor = next;
  if (keys.length) await r.del(...keys);
} while (cursor !== '0');
r.disconnect();
await backend.close();
rmSync(dir, { recursive: true, force: true });
