/**
 * Issue 9 as a whole (SPEC §8): 8 concurrent `quarry run`s over two datasets
 * (so two logical partitions) on one PostgreSQL ledger, with a run id reused
 * across the datasets, some runs failing, one skipped, and the validator's
 * connection cut once (pg_terminate_backend; the server itself is never
 * touched). Then: exactly one authoritative run per partition, the latest
 * valid one; exit 0 exactly for runs recorded valid (promoted or superseded)
 * or skipped, 3 for a success the ledger could not record, 1/2 for script
 * errors and crashes, 2 for the refused reuse of the run id; and
 * `validate --pending` afterwards records what was cut and changes nothing
 * that was right.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');

let tmp: TempDir;
let db: TestDatabase;
beforeAll(async () => {
  tmp = await makeTempDir('trust-cli');
  db = await createTestDatabase('quarry_trust');
});
afterAll(async () => {
  await db?.drop();
  await tmp?.remove();
});

interface Report { run_id: string; outcome: string; exit_code: number; authority?: { authoritative: boolean; reason: string } }
interface History { run_id: string; dataset: string; validation_status: string; skipped: boolean | null; finalized_at: Date | null; validated_at: Date }

const RUNS = [
  { ds: 'ds-a', id: 'a-ok-1', mode: 'ok' },
  { ds: 'ds-a', id: 'a-crash', mode: 'seq_gap' },
  { ds: 'ds-a', id: 'dup', mode: 'ok' },
  { ds: 'ds-a', id: 'a-skip', mode: 'skip' },
  { ds: 'ds-b', id: 'b-ok-1', mode: 'ok' },
  { ds: 'ds-b', id: 'b-error', mode: 'script_error' },
  { ds: 'ds-b', id: 'dup', mode: 'ok' },
  { ds: 'ds-b', id: 'b-ok-2', mode: 'ok' },
] as const;

describe('trust, end to end', () => {
  it('8 concurrent runs, two datasets, a reused run id, failures, a skip and one cut connection', { timeout: 240_000 }, async () => {
    const storage = join(tmp.path, 'lake');
    const common = ['--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--storage-path', storage, '--ledger', db.url, '--quiet'];
    // Schema first, so the test can lock the partition table before the runs validate.
    expect((await quarry(['run', ...common, '--storage-dataset', 'warm', '--job', '{"mode":"ok"}'])).code).toBe(0);

    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    let results: CliResult[];
    let cutPid: number;
    try {
      await admin.query('BEGIN');
      await admin.query('LOCK TABLE partition_state IN EXCLUSIVE MODE');
      const running = Promise.all(RUNS.map((r, i) => quarry(['run', ...common, '--storage-dataset', r.ds, '--run-id', r.id, '--job', JSON.stringify({ mode: r.mode }), '--report', join(tmp.path, `report-${i}.json`)], { timeoutMs: 180_000 })));
      const end = Date.now() + 120_000;
      for (;;) {
        await admin.query('SELECT pg_stat_clear_snapshot()');
        const { rows } = await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'relation' AND query LIKE '%partition_state%' AND pid <> pg_backend_pid() ORDER BY pid LIMIT 1");
        if (rows[0]) {
          cutPid = rows[0].pid;
          break;
        }
        if (Date.now() > end) throw new Error('no validator ever waited on the partition lock');
        await new Promise((r) => setTimeout(r, 50));
      }
      await admin.query('SELECT pg_terminate_backend($1)', [cutPid]);
      await admin.query('COMMIT');
      results = await running;
    } finally {
      await admin.end();
    }

    const reports = RUNS.map((_, i) => (existsSync(join(tmp.path, `report-${i}.json`)) ? (JSON.parse(readFileSync(join(tmp.path, `report-${i}.json`), 'utf8')) as Report) : undefined));
    const history = async (): Promise<History[]> => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        return (await c.query<History>("SELECT run_id, dataset, validation_status, skipped, finalized_at, validated_at FROM run_history WHERE dataset IN ('ds-a', 'ds-b') ORDER BY history_id")).rows;
      } finally {
        await c.end();
      }
    };
    const before = await history();
    const recorded = new Map(before.map((h) => [`${h.dataset}/${h.run_id}`, h]));

    // The reused run id ran in exactly one dataset; the other was refused before it started, claiming nothing.
    const dups = RUNS.map((r, i) => ({ r, i })).filter(({ r }) => r.id === 'dup');
    const refused = dups.filter(({ i }) => results[i]!.code === 2 && /refused before the run started: run id "dup"/.test(results[i]!.stderr));
    expect(refused, JSON.stringify(dups.map(({ i }) => results[i]))).toHaveLength(1);
    const loser = refused[0]!;
    expect(reports[loser.i]).toBeUndefined();
    expect(existsSync(join(storage, `datasets/${loser.r.ds}/runs/dup.json`))).toBe(false);

    let cut = 0;
    RUNS.forEach((r, i) => {
      if (i === loser.i) return;
      const rep = reports[i]!;
      const res = results[i]!;
      expect(res.code, `${r.ds}/${r.id}: ${res.stderr}`).toBe(rep.exit_code);
      const h = recorded.get(`${r.ds}/${r.id}`);
      if (r.mode === 'seq_gap') expect(res.code).toBe(2);
      else if (r.mode === 'script_error') expect(res.code).toBe(1);
      else if (h === undefined) {
        // The run whose validator was cut: stored, not recorded, exit 3 with the next command.
        cut++;
        expect(rep).toMatchObject({ outcome: 'success', exit_code: 3, authority: { authoritative: false, reason: 'ledger_unreachable' } });
        expect(res.stderr).toMatch(/the ledger could not record it .*; next: quarry validate --run /);
      } else {
        // Exit 0 exactly when recorded valid or skipped.
        expect(h.validation_status === 'valid' || h.skipped === true).toBe(true);
        expect(res.code).toBe(0);
        expect(rep.authority?.reason).toMatch(r.mode === 'skip' ? /^skipped$/ : /^(promoted|superseded)$/);
      }
    });
    // One validator was cut: unless it was a failing run's, exactly one success exited 3.
    const cutRun = RUNS.map((r, i) => ({ r, i })).find(({ r, i }) => i !== loser.i && !recorded.has(`${r.ds}/${r.id}`));
    expect(cutRun, 'the cut validator left one run unrecorded').toBeDefined();
    expect(cut).toBe(['ok', 'skip'].includes(cutRun!.r.mode) ? 1 : 0);

    const authoritative = async (ds: string) => {
      const st = await quarry(['state', 'inspect', '--storage-path', storage, '--ledger', db.url, '--storage-dataset', ds, '--format', 'json']);
      expect(st.code, st.stderr).toBe(0);
      return JSON.parse(st.stdout) as Array<{ status: string; current_run_id: string | null }>;
    };
    const latestValid = (hs: History[], ds: string) =>
      hs.filter((h) => h.dataset === ds && h.validation_status === 'valid').sort((x, y) => (x.finalized_at!.getTime() - y.finalized_at!.getTime()) || (x.run_id < y.run_id ? -1 : 1)).pop()?.run_id;
    for (const ds of ['ds-a', 'ds-b']) {
      const rows = await authoritative(ds);
      expect(rows).toHaveLength(1);
      // null when the cut validator's run was the dataset's only valid one
      // (ds-a when its "dup" was the refused one): nothing authoritative yet.
      expect(rows[0]!.current_run_id).toBe(latestValid(before, ds) ?? null);
    }

    // validate --pending records what the cut left, and changes nothing that was right.
    for (const ds of ['ds-a', 'ds-b']) {
      const p = await quarry(['validate', '--pending', '--storage-path', storage, '--ledger', db.url, '--storage-dataset', ds, '--format', 'json']);
      expect(p.code, p.stderr).toBe(0);
    }
    const after = await history();
    for (const h of before) expect(after.find((a) => a.run_id === h.run_id && a.dataset === h.dataset)).toEqual(h);
    expect(after.filter((h) => !recorded.has(`${h.dataset}/${h.run_id}`)).map((h) => `${h.dataset}/${h.run_id}`)).toEqual([`${cutRun!.r.ds}/${cutRun!.r.id}`]);
    for (const ds of ['ds-a', 'ds-b']) {
      const rows = await authoritative(ds);
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ status: 'success', current_run_id: latestValid(after, ds) });
    }
  });
});
