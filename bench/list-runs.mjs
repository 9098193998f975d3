// Read-side benchmark on the fs backend: `quarry list runs` over many stored
// runs (the SPEC §9 target: 10k runs under 2 s), and reading one run of 1M
// records back through streamRecords (records/s). Prints a Markdown table.
//   node bench/list-runs.mjs [--runs 10000] [--records 1000000] [--repeat 3] [--keep]
// Data is generated once under bench/.out/ with the real layout, claim,
// manifest and record-line serializers (dist/), written with plain fs calls so
// setup is quick; --keep reuses it on the next run. Needs a built dist/ (npm run build).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsBackend } from '../dist/storage/fs-backend.js';
import { manifestKey, runClaimKey, runPrefix, segmentName } from '../dist/storage/layout.js';
import { serializeManifest } from '../dist/storage/manifest.js';
import { listRuns, readManifest, streamRecords } from '../dist/storage/reader.js';
import { eventRecordLine } from '../dist/storage/records.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const RUNS = Number(arg('runs', '10000'));
const RECORDS = Number(arg('records', '1000000'));
const REPEAT = Number(arg('repeat', '3'));
const KEEP = process.argv.includes('--keep');
const OUT = join(root, 'bench/.out');
const sha = (s) => createHash('sha256').update(s).digest('hex');
const OUTCOMES = ['success', 'success', 'success', 'success', 'success', 'success', 'success', 'script_error', 'executor_crash', 'policy_failure'];

function metrics(outcome) {
  return {
    runs_started_total: 1, runs_completed_total: outcome === 'success' ? 1 : 0, runs_failed_total: outcome === 'script_error' || outcome === 'policy_failure' ? 1 : 0,
    runs_crashed_total: outcome === 'executor_crash' ? 1 : 0, events_received_total: 12, events_persisted_total: 12, events_dropped_total: 0, events_dropped_by_type: {},
    flush_triggers: {}, executor_launch_success_total: 1, executor_launch_failure_total: 0, executor_crash_total: outcome === 'executor_crash' ? 1 : 0,
    ipc_decode_errors_total: 0, lode_write_success_total: 3, lode_write_failure_total: 0, lode_write_retry_total: 0,
    dimensions: { policy: 'strict', executor: 'node', storage_backend: 'fs' },
  };
}

async function put(base, key, text) {
  const abs = join(base, ...key.split('/'));
  await mkdir(dirname(abs), { recursive: true });
  await writeFile(abs, text);
}

/** Runs `fn(i)` for i < n, `limit` at a time. */
async function pool(n, limit, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < n) await fn(next++);
  }));
}

function runSpec(i) {
  const started = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toISOString();
  const p = { dataset: 'quarry', source: `src${i % 20}`, category: 'default', day: started.slice(0, 10), run_id: `run-${String(i).padStart(6, '0')}` };
  return { p, started };
}

async function makeManyRuns(base, n) {
  await pool(n, 64, async (i) => {
    const { p, started } = runSpec(i);
    const claim = { claim_version: 1, ...p, started_at: started, job_id: `job-${i % 1000}`, attempt: 1, root_run_id: p.run_id, depth: 0, script_path: '/bench/s.ts' };
    await put(base, runClaimKey(p.dataset, p.run_id), serializeManifest(claim));
    if (i % 50 === 49) return; // 2% never finalized
    const body = Array.from({ length: 10 }, (_, k) => eventRecordLine(p, { contract_version: '1.0.0', event_id: `e${k + 1}`, run_id: p.run_id, seq: k + 1, type: 'item', ts: started, attempt: 1, payload: { item_type: 'row', data: { k } } })).join('');
    const seg = segmentName('item', 1);
    await put(base, `${runPrefix(p)}${seg}`, body);
    const outcome = OUTCOMES[i % OUTCOMES.length];
    const manifest = {
      manifest_version: 1, contract_version: '1.0.0', ...p, job_id: claim.job_id, attempt: 1, root_run_id: p.run_id, depth: 0,
      script: { path: '/bench/s.ts', sha256: sha('s') }, job: { page: i }, started_at: started, finalized_at: new Date(Date.parse(started) + 2000).toISOString(),
      outcome, message: outcome === 'success' ? 'run completed' : 'run failed', exit_code: outcome === 'success' ? 0 : 1, skipped: false,
      policy: { name: 'strict', events_received: 10, events_persisted: 10, events_dropped: 0, dropped_by_type: {} },
      objects: [{ path: seg, kind: 'records', event_type: 'item', bytes: Buffer.byteLength(body), records: 10, sha256: sha(body), first_seq: 1, last_seq: 10 }],
      seq: { first: 1, last: 10 }, event_count: 10, artifacts: { total: 0, committed: 0, orphaned: 0, chunks: 0, bytes: 0 }, orphaned_artifacts: [],
      metrics: metrics(outcome), storage_backend: 'fs',
    };
    await put(base, manifestKey(p), serializeManifest(manifest));
  });
}

/** One run of `n` records: items with a log every 10th seq, in segments of 100k records per type, so streamRecords merges two types. */
async function makeBigRun(base, n) {
  const p = { dataset: 'quarry', source: 'big', category: 'default', day: '2024-06-01', run_id: 'big-run' };
  const started = '2024-06-01T00:00:00.000Z';
  await put(base, runClaimKey(p.dataset, p.run_id), serializeManifest({ claim_version: 1, ...p, started_at: started, attempt: 1, root_run_id: p.run_id, depth: 0, script_path: '/bench/s.ts' }));
  const PER_SEGMENT = 100_000;
  const objects = [];
  const open = new Map(); // type -> { stream, n, records, first, last, hash, bytes }
  const seal = async (type) => {
    const s = open.get(type);
    open.delete(type);
    await new Promise((r) => s.stream.end(r));
    objects.push({ path: s.path, kind: 'records', event_type: type, bytes: s.bytes, records: s.records, sha256: s.hash.digest('hex'), first_seq: s.first, last_seq: s.last });
  };
  const counters = new Map();
  for (let seq = 1; seq <= n; seq++) {
    const type = seq % 10 === 0 ? 'log' : 'item';
    let s = open.get(type);
    if (!s) {
      const k = (counters.get(type) ?? 0) + 1;
      counters.set(type, k);
      const path = segmentName(type, k);
      const abs = join(base, ...`${runPrefix(p)}${path}`.split('/'));
      await mkdir(dirname(abs), { recursive: true });
      s = { stream: createWriteStream(abs), path, records: 0, first: seq, last: seq, hash: createHash('sha256'), bytes: 0 };
      open.set(type, s);
    }
    const payload = type === 'item' ? { item_type: 'product', data: { sku: `sku-${seq}`, name: 'A reasonably named product', price_cents: 1299, tags: ['a', 'b'] } } : { level: 'info', message: `page ${seq / 10} done` };
    const line = eventRecordLine(p, { contract_version: '1.0.0', event_id: `e${seq}`, run_id: p.run_id, seq, type, ts: started, attempt: 1, payload });
    s.hash.update(line);
    s.bytes += Buffer.byteLength(line);
    s.records++;
    s.last = seq;
    if (!s.stream.write(line)) await new Promise((r) => s.stream.once('drain', r));
    if (s.records >= PER_SEGMENT) await seal(type);
  }
  for (const type of [...open.keys()]) await seal(type);
  const manifest = {
    manifest_version: 1, contract_version: '1.0.0', ...p, attempt: 1, root_run_id: p.run_id, depth: 0, script: { path: '/bench/s.ts', sha256: sha('s') }, job: {},
    started_at: started, finalized_at: '2024-06-01T00:10:00.000Z', outcome: 'success', message: 'run completed', exit_code: 0, skipped: false,
    policy: { name: 'strict', events_received: n, events_persisted: n, events_dropped: 0, dropped_by_type: {} }, objects, seq: { first: 1, last: n }, event_count: n,
    artifacts: { total: 0, committed: 0, orphaned: 0, chunks: 0, bytes: 0 }, orphaned_artifacts: [], metrics: metrics('success'), storage_backend: 'fs',
  };
  await put(base, manifestKey(p), serializeManifest(manifest));
  return objects.reduce((b, o) => b + o.bytes, 0);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function timeCli(args) {
  const times = [];
  let stdout = '';
  for (let i = 0; i < REPEAT; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [join(root, 'dist/cli/main.js'), ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 0) throw new Error(`quarry ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    stdout = r.stdout;
  }
  return { ms: median(times), stdout };
}

async function main() {
  const manyDir = join(OUT, `list-runs-${RUNS}`);
  const bigDir = join(OUT, `big-run-${RECORDS}`);
  if (!KEEP || !existsSync(manyDir)) {
    await rm(manyDir, { recursive: true, force: true });
    const t0 = Date.now();
    await makeManyRuns(manyDir, RUNS);
    process.stderr.write(`[bench] wrote ${RUNS} runs in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  let bigBytes;
  if (!KEEP || !existsSync(bigDir)) {
    await rm(bigDir, { recursive: true, force: true });
    const t0 = Date.now();
    bigBytes = await makeBigRun(bigDir, RECORDS);
    process.stderr.write(`[bench] wrote a run of ${RECORDS} records (${(bigBytes / 2 ** 20).toFixed(0)} MiB) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }

  const rows = [];
  const storage = ['--storage-path', manyDir];
  const list = timeCli(['list', 'runs', '--format', 'json', ...storage]);
  const listed = JSON.parse(list.stdout).length;
  if (listed !== RUNS) throw new Error(`list runs returned ${listed} rows, expected ${RUNS}`);
  rows.push([`quarry list runs --format json (${RUNS} runs, wall, incl. node start)`, `${list.ms.toFixed(0)} ms`]);
  rows.push([`quarry list runs --limit 20 (${RUNS} runs)`, `${timeCli(['list', 'runs', '--limit', '20', '--format', 'json', ...storage]).ms.toFixed(0)} ms`]);
  rows.push([`quarry list runs --format table (${RUNS} runs)`, `${timeCli(['list', 'runs', '--format', 'table', ...storage]).ms.toFixed(0)} ms`]);
  rows.push([`quarry stats runs (${RUNS} runs)`, `${timeCli(['stats', 'runs', ...storage]).ms.toFixed(0)} ms`]);
  rows.push([`quarry stats metrics (${RUNS} runs)`, `${timeCli(['stats', 'metrics', ...storage]).ms.toFixed(0)} ms`]);
  rows.push(['quarry version (node start floor)', `${timeCli(['version']).ms.toFixed(0)} ms`]);

  const many = await FsBackend.create(manyDir);
  const inproc = [];
  for (let i = 0; i < REPEAT; i++) {
    const t0 = process.hrtime.bigint();
    await listRuns(many, 'quarry');
    inproc.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  rows.push([`listRuns() in process (${RUNS} runs)`, `${median(inproc).toFixed(0)} ms`]);

  const big = await FsBackend.create(bigDir);
  const manifest = await readManifest(big, { dataset: 'quarry', source: 'big', category: 'default', day: '2024-06-01', run_id: 'big-run' });
  bigBytes ??= manifest.objects.reduce((b, o) => b + o.bytes, 0);
  const rates = [];
  for (let i = 0; i < REPEAT; i++) {
    let n = 0;
    let last = 0;
    const t0 = process.hrtime.bigint();
    for await (const rec of streamRecords(big, manifest)) {
      if (rec.seq <= last) throw new Error('records out of order');
      last = rec.seq;
      n++;
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (n !== RECORDS) throw new Error(`streamRecords yielded ${n} records, expected ${RECORDS}`);
    rates.push(n / secs);
  }
  const rate = median(rates);
  rows.push([`streamRecords, one run of ${RECORDS} records (${(bigBytes / 2 ** 20).toFixed(0)} MiB, item+log merged by seq)`, `${Math.round(rate).toLocaleString('en-US')} records/s (${(RECORDS / rate).toFixed(2)} s)`]);

  console.log(`Node ${process.versions.node}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM; median of ${REPEAT}\n`);
  console.log('| measurement | result |\n|---|---|');
  for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
}

await main();
