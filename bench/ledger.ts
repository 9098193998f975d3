// Ledger benchmarks (SPEC §8), rerunnable: `npx tsx bench/ledger.ts [--runs 10000] [--partitions 100000]`.
// 1. Validating and promoting N small finalized runs on SQLite (validatePending, in-process).
// 2. `state inspect` with a filter over P partitions: the ledger query in-process and the CLI end to end.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLedger } from '../src/ledger/ledger.js';
import { toRunId, type RunHistoryInput } from '../src/ledger/types.js';
import { validatePending } from '../src/ledger/validator.js';
import { FsBackend } from '../src/storage/fs-backend.js';
import { writeRunFixture } from '../test/_harness/run-fixtures.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(process.argv[i + 1]);
};
const RUNS = arg('runs', 10_000);
const PARTS = arg('partitions', 100_000);
const dir = await mkdtemp(join(tmpdir(), 'quarry-bench-ledger-'));
const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');

try {
  // 1. N finalized runs, one per day over many sources, then one validatePending.
  const storage = await FsBackend.create(join(dir, 'data'));
  for (let i = 0; i < RUNS; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, RUNS - i) }, (_, j) => {
      const n = i + j;
      return writeRunFixture(storage, { run_id: `r${String(n).padStart(6, '0')}`, source: `s${n % 100}`, day: new Date(Date.UTC(2020, 0, 1) + Math.floor(n / 100) * 86_400_000).toISOString().slice(0, 10), items: 3, logs: 1, artifact: null });
    }));
  }
  const ledger = await openLedger(join(dir, 'data', 'ledger.sqlite'));
  const t0 = performance.now();
  const r = await validatePending(storage, ledger, 'quarry');
  const secs = (performance.now() - t0) / 1000;
  if (r.validated.length !== RUNS || r.validated.some((v) => v.status !== 'valid')) throw new Error('not every run validated valid');
  process.stdout.write(`| validate + promote ${fmt(RUNS)} small finalized runs (SQLite, validatePending) | ${secs.toFixed(2)} s | ${fmt(RUNS / secs)} runs/s |\n`);
  await ledger.close();
  await storage.close();

  // 2. P partitions in a fresh ledger, recorded in batches, then filtered reads.
  const big = await openLedger(join(dir, 'big.sqlite'));
  const now = new Date('2026-01-01T00:00:00Z');
  for (let i = 0; i < PARTS; i += 2000) {
    const rows: RunHistoryInput[] = [];
    for (let n = i; n < Math.min(PARTS, i + 2000); n++) {
      const id = toRunId(`p${String(n).padStart(7, '0')}`);
      rows.push({
        dataset: 'quarry', source: `src-${n % 50}`, category: 'default', day: new Date(Date.UTC(2000, 0, 1) + Math.floor(n / 50) * 86_400_000).toISOString().slice(0, 10),
        run_id: id, job_id: null, attempt: 1, parent_run_id: null, root_run_id: id, depth: 0, job: {}, script_path: 's.ts', script_sha256: null, manifest_sha256: null,
        outcome: n % 7 === 0 ? 'script_error' : 'success', message: null, skipped: false, started_at: now.toISOString(), finalized_at: now.toISOString(),
        validation_status: n % 7 === 0 ? 'invalid' : 'valid', validation_reasons: [], validated_at: now.toISOString(),
      });
    }
    await big.recordRuns(rows, now);
  }
  const filters = { dataset: 'quarry', source: 'src-7', from: '2001-01-01', to: '2001-12-31', status: 'success' as const };
  await big.listPartitions(filters);
  const q0 = performance.now();
  const rows = await big.listPartitions(filters);
  const qms = performance.now() - q0;
  await big.close();
  process.stdout.write(`| ledger query: ${fmt(rows.length)} rows of ${fmt(PARTS)} partitions (source + day range + status) | ${qms.toFixed(1)} ms | |\n`);
  const c0 = performance.now();
  const out = execFileSync(process.execPath, ['dist/cli/main.js', 'state', 'inspect', '--ledger', join(dir, 'big.sqlite'), '--source', 'src-7', '--from', '2001-01-01', '--to', '2001-12-31', '--status', 'success', '--format', 'json'], { encoding: 'utf8' });
  const cms = performance.now() - c0;
  if ((JSON.parse(out) as unknown[]).length !== rows.length) throw new Error('CLI and ledger disagree');
  process.stdout.write(`| \`quarry state inspect\` with that filter, end to end (process start included) | ${cms.toFixed(0)} ms | |\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
