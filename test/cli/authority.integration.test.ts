/**
 * SPEC §8 "Authority and the exit code" and "Binding and writers", end to end
 * through the built CLI: exit 0 only when the run's data is authoritative,
 * superseded by a later valid run, or a skip; exit 3 with one line saying why
 * and what to run next otherwise; a run against another storage location, or
 * with a run id used in another dataset, is refused before it starts; an
 * unreachable ledger exits 3 before anything is written.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { flipByte } from '../_harness/run-fixtures.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');
const PART = 'datasets/quarry/partitions/source=shop/category=default/day=2026-11-20';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('authority-cli');
});
afterAll(async () => {
  await tmp.remove();
});

interface Report {
  run_id: string;
  outcome: string;
  exit_code: number;
  attempt: number;
  authority?: { authoritative: boolean; reason: string; next: string | null };
}

const runArgs = (storage: string, runId: string, job: Record<string, unknown>, extra: string[] = []) => [
  'run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', runId,
  '--job', JSON.stringify(job), '--storage-path', storage, '--quiet', ...extra,
];

async function runWithReport(storage: string, runId: string, job: Record<string, unknown>, extra: string[] = [], onSpawn?: () => void) {
  const file = join(tmp.path, `${runId}.report.json`);
  const res = await quarry([...runArgs(storage, runId, job, extra), '--report', file], onSpawn ? { onSpawn } : {});
  const lines = res.stderr.split('\n').filter(Boolean);
  return { res, report: JSON.parse(readFileSync(file, 'utf8')) as Report, lines };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the exit code tells the authority', () => {
  it('an authoritative run exits 0 with authority promoted; a skip exits 0 with authority skipped', async () => {
    const storage = join(tmp.path, 'ok');
    const ok = await runWithReport(storage, 'a-ok', { mode: 'ok' });
    expect(ok.res.code).toBe(0);
    expect(ok.report.authority).toEqual({ authoritative: true, reason: 'promoted', next: null });
    const skip = await runWithReport(storage, 'a-skip', { mode: 'skip' }, ['--day', '2026-11-21']);
    expect(skip.res.code).toBe(0);
    expect(skip.report).toMatchObject({ outcome: 'success', exit_code: 0, authority: { authoritative: false, reason: 'skipped', next: null } });
  });

  it('a success whose data validation rejects exits 3, outcome kept success, one line with what to run next; --retries runs it again', async () => {
    const storage = join(tmp.path, 'rejected');
    const release = join(tmp.path, 'rejected.release');
    const runDir = join(storage, PART, 'run_id=rej-1');
    // Streaming with --flush-count 1 publishes the first item's segment while the run is held open.
    const done = runWithReport(storage, 'rej-1', { mode: 'wait_release', release }, ['--policy', 'streaming', '--flush-count', '1', '--retries', '1']);
    const seg = await waitFor('the published item segment', async () => {
      const dir = join(runDir, 'event_type=item');
      if (!existsSync(dir)) return undefined;
      const files = (await readdir(dir)).filter((f) => f.endsWith('.jsonl'));
      return files[0];
    });
    await flipByte(storage, `${PART}/run_id=rej-1/event_type=item/${seg}`, 5);
    writeFileSync(release, '');
    const { res, report, lines } = await done;
    // The first attempt was rejected; the retry (attempt 2) stored good data and became authoritative.
    const first = lines.find((l) => l.includes('rej-1') && l.includes('validation rejected'));
    expect(first, res.stderr).toMatch(/^quarry run: run rej-1 finished but validation rejected its data \(object_sha256_mismatch: .*\), so it is not authoritative; next: quarry inspect run rej-1 --storage-path /);
    expect(report).toMatchObject({ attempt: 2, outcome: 'success', exit_code: 0, authority: { authoritative: true, reason: 'promoted' } });
    expect(res.code).toBe(0);
  });

  it('without retries the rejected run exits 3 and its report says rejected', async () => {
    const storage = join(tmp.path, 'rejected-once');
    const release = join(tmp.path, 'rejected-once.release');
    const done = runWithReport(storage, 'rej-2', { mode: 'wait_release', release }, ['--policy', 'streaming', '--flush-count', '1']);
    const dir = join(storage, PART, 'run_id=rej-2', 'event_type=item');
    const seg = await waitFor('the published item segment', () => (existsSync(dir) ? readdirSync(dir).find((f) => f.endsWith('.jsonl')) : undefined));
    await flipByte(storage, `${PART}/run_id=rej-2/event_type=item/${seg}`, 5);
    writeFileSync(release, '');
    const { res, report } = await done;
    expect(res.code).toBe(3);
    expect(report).toMatchObject({ outcome: 'success', exit_code: 3, authority: { authoritative: false, reason: 'rejected' } });
    expect(report.authority?.next).toMatch(/^quarry inspect run rej-2 /);
  });
});

describe('one storage per dataset per ledger', () => {
  it('a run id reused in another dataset of one ledger is refused before it starts: exit 2, no claim, nothing for validate --pending', async () => {
    const storage = join(tmp.path, 'reuse');
    expect((await quarry(runArgs(storage, 'dup', { mode: 'ok' }))).code).toBe(0);
    const again = await quarry(runArgs(storage, 'dup', { mode: 'ok' }, ['--storage-dataset', 'other']));
    expect(again.code).toBe(2);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/^quarry run: refused before the run started: run id "dup" is already used by a recorded run of quarry\/shop\/default\/2026-11-20/);
    expect(existsSync(join(storage, 'datasets/other'))).toBe(false);
    const pending = await quarry(['validate', '--pending', '--storage-path', storage, '--storage-dataset', 'other', '--format', 'json']);
    expect(JSON.parse(pending.stdout)).toMatchObject({ validated: [] });
  });

  it('a second storage location for a dataset of a shared ledger is refused naming both; the first keeps working', async () => {
    const ledger = join(tmp.path, 'shared.sqlite');
    const a = join(tmp.path, 'loc-a');
    const b = join(tmp.path, 'loc-b');
    expect((await quarry(runArgs(a, 'loc-1', { mode: 'ok' }, ['--ledger', ledger]))).code).toBe(0);
    const refused = await quarry(runArgs(b, 'loc-2', { mode: 'ok' }, ['--ledger', ledger]));
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain(`dataset "quarry" is bound to fs:${a} in this ledger, not fs:${b}`);
    expect(existsSync(join(b, 'datasets'))).toBe(false);
    expect((await quarry(runArgs(a, 'loc-3', { mode: 'ok' }, ['--ledger', ledger, '--day', '2026-11-21']))).code).toBe(0);
  });

  it('an unreachable ledger exits 3 before the claim with one line, the password redacted, nothing written', async () => {
    const storage = join(tmp.path, 'unreachable');
    const r = await quarry(runArgs(storage, 'nowhere', { mode: 'ok' }, ['--ledger', 'postgres://quarry:s3cret-pw@127.0.0.1:1/quarry']));
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^quarry run: cannot reach the ledger postgres:\/\/quarry:\*\*\*@127\.0\.0\.1:1\/quarry: .*nothing was run or written/);
    expect(r.stderr + r.stdout).not.toContain('s3cret-pw');
    expect(existsSync(join(storage, 'datasets'))).toBe(false);
  });
});

describe('PostgreSQL connection cut mid-validation', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('quarry_authority');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('the run exits 3 (outcome success, ledger_unreachable) and validate --pending then records it authoritative', { timeout: 120_000 }, async () => {
    const storage = join(tmp.path, 'cut');
    // A first run creates the schema, so the test can lock the partition table.
    expect((await quarry(runArgs(storage, 'cut-0', { mode: 'ok' }, ['--ledger', db.url, '--day', '2026-11-19']))).code).toBe(0);
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE partition_state IN EXCLUSIVE MODE');
      const done = runWithReport(storage, 'cut-1', { mode: 'ok' }, ['--ledger', db.url]);
      // The validator's transaction waits on the lock: cut exactly that connection.
      const pid = await waitFor('the validator waiting on the lock', async () => {
        // pg_stat_activity is a snapshot per transaction: clear it, the lock's transaction is still open.
        await admin.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'relation' AND query LIKE '%partition_state%' AND pid <> pg_backend_pid()");
        return rows[0]?.pid;
      });
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await admin.query('COMMIT');
      const { res, report, lines } = await done;
      expect(res.code).toBe(3);
      expect(report).toMatchObject({ outcome: 'success', exit_code: 3, authority: { authoritative: false, reason: 'ledger_unreachable' } });
      expect(report.authority?.next).toMatch(/^quarry validate --run cut-1 --storage-path .* --ledger postgres:/);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^quarry run: run cut-1 finished and its data is stored, but the ledger could not record it .*; next: quarry validate --run cut-1/);
    } finally {
      await admin.end();
    }
    const pending = await quarry(['validate', '--pending', '--storage-path', storage, '--ledger', db.url, '--format', 'json']);
    expect(pending.code, pending.stderr).toBe(0);
    expect((JSON.parse(pending.stdout) as { validated: Array<{ run_id: string }> }).validated.map((v) => v.run_id)).toEqual(['cut-1']);
    const st = await quarry(['state', 'inspect', '--storage-path', storage, '--ledger', db.url, '--day', '2026-11-20', '--format', 'json']);
    expect(JSON.parse(st.stdout)).toEqual([expect.objectContaining({ status: 'success', current_run_id: 'cut-1' })]);
  });
});
