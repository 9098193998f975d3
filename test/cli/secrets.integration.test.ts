/**
 * Planted secrets (SPEC §8: no secret in any output): a PostgreSQL password
 * given as `?password=`, a token in `--browser-ws-endpoint` (echoed by a
 * failed connect), and credentials inside a URL of the job (echoed by the
 * script's error). Everything quarry produces is then searched: stdout,
 * stderr, the reports, every storage object, the SQLite ledger and its WAL,
 * and every PostgreSQL ledger table. The job's secret may appear only in the
 * stored job (manifest `job`, `run_history.job`), kept verbatim for retries;
 * the other secrets appear nowhere.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const JOB_SECRET = 'j0b-Secret-PLANTED-4711';
const WS_TOKEN = 'ws-T0ken-PLANTED-0815';
const script = join(REPO_ROOT, 'test/fixtures/run-scripts/leaky-error.ts');
const job = JSON.stringify({ url: `http://scraper:${JOB_SECRET}@127.0.0.1:9/catalog?page=1` });
const wsEndpoint = `ws://127.0.0.1:1/devtools/browser/abc?token=${WS_TOKEN}`;

let tmp: TempDir;
let db: TestDatabase;
let pgPassword: string;
let pgUrl: string;
let storage: string;
const outputs: Array<{ what: string; r: CliResult }> = [];

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

/** A stored JSON document without its `job` field: the one place a job's secret may be. */
function withoutJob(text: string): string {
  try {
    const doc = JSON.parse(text) as Record<string, unknown>;
    if (doc && typeof doc === 'object' && !Array.isArray(doc)) delete doc.job;
    return JSON.stringify(doc);
  } catch {
    return text;
  }
}

beforeAll(async () => {
  tmp = await makeTempDir('secrets');
  storage = join(tmp.path, 'data');
  db = await createTestDatabase('quarry_secrets');
  const u = new URL(db.url);
  // The password goes in the query string; with trust authentication any value is accepted.
  pgPassword = u.password !== '' ? decodeURIComponent(u.password) : 'pg-Passw0rd-PLANTED-1234';
  u.password = '';
  u.searchParams.set('password', pgPassword);
  pgUrl = u.toString();
  const run = async (what: string, args: string[]) => outputs.push({ what, r: await quarry(['run', '--script', script, '--source', 'shop', '--storage-path', storage, '--job', job, ...args], { cwd: tmp.path }) });
  await Promise.all([
    // The script runs and fails with the job's URL in its error (SQLite ledger).
    run('run: job url in the error', ['--day', '2026-11-01', '--job-id', 'job-1', '--report', 'r1.json']),
    // The browser endpoint refuses, echoing the token (PostgreSQL ledger by ?password=).
    run('run: ws token, pg ledger', ['--day', '2026-11-02', '--job-id', 'job-2', '--browser-ws-endpoint', wsEndpoint, '--ledger', pgUrl, '--report', 'r2.json']),
    // The same refusal into the SQLite ledger.
    run('run: ws token, sqlite ledger', ['--day', '2026-11-03', '--browser-ws-endpoint', wsEndpoint, '--report', 'r3.json']),
  ]);
  const read = async (what: string, args: string[]) => outputs.push({ what, r: await quarry(args, { cwd: tmp.path }) });
  const runIds = (await readdir(join(storage, 'datasets/quarry/runs'))).map((f) => f.replace(/\.json$/, ''));
  await Promise.all([
    read('list runs', ['list', 'runs', '--storage-path', storage, '-f', 'json']),
    read('list runs table', ['list', 'runs', '--storage-path', storage, '-f', 'table']),
    read('list jobs', ['list', 'jobs', '--storage-path', storage, '-f', 'yaml']),
    read('inspect job', ['inspect', 'job', 'job-1', '--storage-path', storage, '-f', 'json']),
    ...runIds.map((id) => read(`inspect run ${id}`, ['inspect', 'run', id, '--storage-path', storage, '-f', 'json'])),
    read('state inspect sqlite', ['state', 'inspect', '--storage-path', storage, '-f', 'json']),
    read('state inspect pg', ['state', 'inspect', '--storage-path', storage, '--ledger', pgUrl, '-f', 'table']),
    read('retry plan', ['retry', '--dry-run', '--storage-path', storage, '-f', 'json']),
    read('retry plan pg', ['retry', '--dry-run', '--storage-path', storage, '--ledger', pgUrl, '-f', 'yaml']),
    read('bad job json', ['run', '--script', script, '--source', 'shop', '--job', job.slice(0, -1)]),
    read('pg down', ['state', 'inspect', '--storage-path', storage, '--ledger', pgUrl.replace(/:\d+\//, ':1/')]),
  ]);
}, 180_000);

afterAll(async () => {
  await db?.drop();
  await tmp?.remove();
});

describe('planted secrets never come back out (SPEC §8)', () => {
  it('the runs ended as expected, so the secrets went through the paths that echo them', () => {
    const codes = Object.fromEntries(outputs.filter((o) => o.what.startsWith('run:')).map((o) => [o.what, o.r.code]));
    expect(codes).toEqual({ 'run: job url in the error': 1, 'run: ws token, pg ledger': 2, 'run: ws token, sqlite ledger': 2 });
    const all = outputs.map((o) => o.r.stdout + o.r.stderr).join('\n');
    expect(all).toContain('token=***');
    expect(all).toContain('scraper:***@127.0.0.1:9');
    expect(all).toContain('password=***');
  });

  it('no secret in any stdout or stderr', () => {
    for (const { what, r } of outputs) {
      for (const secret of [JOB_SECRET, WS_TOKEN, pgPassword]) {
        expect(r.stdout, `${what} stdout`).not.toContain(secret);
        expect(r.stderr, `${what} stderr`).not.toContain(secret);
      }
    }
  });

  it('no secret in the reports', async () => {
    for (const f of ['r1.json', 'r2.json', 'r3.json']) {
      const text = await readFile(join(tmp.path, f), 'utf8');
      for (const secret of [JOB_SECRET, WS_TOKEN, pgPassword]) expect(text, f).not.toContain(secret);
    }
  });

  it('storage and the SQLite ledger files (and WAL) hold no token or password; the job secret only in the stored job', async () => {
    const all = await files(storage);
    expect(all.some((f) => f.endsWith('ledger.sqlite'))).toBe(true);
    let jobKept = 0;
    for (const f of all) {
      const bytes = await readFile(f);
      for (const secret of [WS_TOKEN, pgPassword]) expect(bytes.includes(secret), f).toBe(false);
      if (/ledger\.sqlite(-wal|-shm|-journal)?$/.test(f)) continue; // the job secret in SQLite is checked row by row below
      const text = bytes.toString('utf8');
      if (text.includes(JOB_SECRET)) jobKept++;
      expect(f.endsWith('.json') ? withoutJob(text) : text, f).not.toContain(JOB_SECRET);
    }
    // The manifests keep the job verbatim: a retry runs the real one.
    expect(jobKept).toBeGreaterThanOrEqual(3);
  });

  it('SQLite ledger rows: the job secret only in run_history.job', () => {
    const file = join(storage, 'ledger.sqlite');
    expect(existsSync(file)).toBe(true);
    const sqlite = new Database(file, { readonly: true });
    try {
      const tables = sqlite.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>;
      let kept = 0;
      for (const { name } of tables) {
        for (const row of sqlite.prepare(`SELECT * FROM "${name}"`).all() as Array<Record<string, unknown>>) {
          if (name === 'run_history' && String(row.job).includes(JOB_SECRET)) kept++;
          if (name === 'run_history') delete row.job;
          const text = JSON.stringify(row);
          for (const secret of [JOB_SECRET, WS_TOKEN, pgPassword]) expect(text, `${name} row`).not.toContain(secret);
        }
      }
      expect(kept).toBe(2);
    } finally {
      sqlite.close();
    }
  });

  it('PostgreSQL ledger tables: the job secret only in run_history.job, nothing else anywhere', async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const { rows: tables } = await c.query<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'");
      expect(tables.length).toBeGreaterThan(0);
      let kept = 0;
      for (const { table_name } of tables) {
        const { rows } = await c.query<Record<string, unknown>>(`SELECT * FROM "${table_name}"`);
        for (const row of rows) {
          if (table_name === 'run_history' && JSON.stringify(row.job).includes(JOB_SECRET)) kept++;
          if (table_name === 'run_history') delete row.job;
          const text = JSON.stringify(row);
          for (const secret of [JOB_SECRET, WS_TOKEN, pgPassword]) expect(text, `${table_name} row`).not.toContain(secret);
        }
      }
      expect(kept).toBe(1);
    } finally {
      await c.end();
    }
  });
});
