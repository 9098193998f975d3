import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');
let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('export-cli');
});
afterAll(async () => {
  await tmp.remove();
});

const run = (storage: string, runId: string, day: string, mode: 'ok' | 'seq_gap') =>
  quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', day, '--run-id', runId, '--job', JSON.stringify({ mode }), '--storage-path', storage, '--quiet']);

async function rows(file: string): Promise<Array<{ day: string; run_id: string }>> {
  const db = await DuckDBInstance.create(file);
  const conn = await db.connect();
  const r = await conn.runAndReadAll("SELECT strftime(day, '%Y-%m-%d') AS day, run_id FROM quarry_items ORDER BY day, run_id");
  const out = r.getRowObjectsJS() as Array<{ day: string; run_id: string }>;
  conn.closeSync();
  db.closeSync();
  return out;
}

describe('quarry export', () => {
  it('loads only authoritative records, is idempotent, and a reprocess replaces only its partition', async () => {
    const storage = join(tmp.path, 'data');
    const wh = join(tmp.path, 'wh.duckdb');
    expect((await run(storage, 'a1', '2026-11-01', 'ok')).code).toBe(0);
    expect((await run(storage, 'b1', '2026-11-02', 'ok')).code).toBe(0);
    expect((await run(storage, 'c1', '2026-11-03', 'seq_gap')).code).toBe(2);

    const first = await quarry(['export', '--storage-path', storage, '--to', `duckdb:${wh}`, '--format', 'json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ partitions_matched: 2, partitions_loaded: 2, partitions_skipped: 0 });
    expect(await rows(wh)).toEqual([{ day: '2026-11-01', run_id: 'a1' }, { day: '2026-11-02', run_id: 'b1' }]);

    const again = await quarry(['export', '--storage-path', storage, '--to', `duckdb:${wh}`, '--format', 'json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ partitions_loaded: 0, partitions_skipped: 2 });
    expect(await rows(wh)).toHaveLength(2);

    expect((await run(storage, 'a2', '2026-11-01', 'ok')).code).toBe(0);
    const third = await quarry(['export', '--storage-path', storage, '--to', `duckdb:${wh}`, '--format', 'json']);
    expect(JSON.parse(third.stdout)).toMatchObject({ partitions_loaded: 1, partitions_skipped: 1, loaded: [expect.objectContaining({ day: '2026-11-01', run_id: 'a2', action: 'replaced', previous_run_id: 'a1' })] });
    expect(await rows(wh)).toEqual([{ day: '2026-11-01', run_id: 'a2' }, { day: '2026-11-02', run_id: 'b1' }]);
  });

  it('a bad target is a usage error', async () => {
    const r = await quarry(['export', '--storage-path', tmp.path, '--to', 'mysql://x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/quarry export: /);
  });
});
