/**
 * SPEC §8 skip rule, end to end: a `prepare` skip leaves its partition pending
 * ("pending, skipped: <reason>"), never failed; `retry` leaves it alone unless
 * `--include-skipped`.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('skip-cli');
});
afterAll(async () => {
  await tmp.remove();
});

const run = (storage: string, runId: string, day: string, job: Record<string, unknown>) =>
  quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', day, '--run-id', runId, '--job', JSON.stringify(job), '--storage-path', storage, '--quiet']);

describe('a prepare skip', () => {
  it('leaves the partition pending and shown as skipped; retry leaves it unless --include-skipped', async () => {
    const storage = join(tmp.path, 'skip');
    expect((await run(storage, 'sk-1', '2026-11-20', { mode: 'skip', reason: 'holiday' })).code).toBe(0);
    expect((await run(storage, 'ok-1', '2026-11-22', { mode: 'ok' })).code).toBe(0);

    const st = await quarry(['state', 'inspect', '--storage-path', storage, '--format', 'json']);
    expect(st.code, st.stderr).toBe(0);
    const rows = JSON.parse(st.stdout) as Array<Record<string, unknown>>;
    expect(rows.map((r) => [r.day, r.status, r.state])).toEqual([
      ['2026-11-20', 'pending', 'pending, skipped: holiday'],
      ['2026-11-22', 'success', 'success'],
    ]);
    expect(rows[0]).toMatchObject({ last_run_id: 'sk-1', skipped: 'skipped: holiday', current_run_id: null });

    const table = await quarry(['state', 'inspect', '--storage-path', storage, '--format', 'table']);
    expect(table.stdout).toMatch(/2026-11-20\s+pending, skipped: holiday/);
    const failed = await quarry(['state', 'inspect', '--storage-path', storage, '--status', 'failed', '--format', 'json']);
    expect(JSON.parse(failed.stdout)).toEqual([]);

    const plain = await quarry(['retry', '--storage-path', storage, '--dry-run', '--format', 'json']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout)).toEqual([]);
    const expected = await quarry(['retry', '--storage-path', storage, '--dry-run', '--format', 'json', '--expect-days', '2026-11-20..2026-11-21', '--source', 'shop', '--script', script, '--job', '{"mode":"ok"}']);
    expect((JSON.parse(expected.stdout) as Array<{ day: string; reason: string }>).map((t) => [t.day, t.reason])).toEqual([['2026-11-21', 'pending']]);
    const incl = await quarry(['retry', '--storage-path', storage, '--dry-run', '--format', 'json', '--include-skipped']);
    expect(JSON.parse(incl.stdout)).toEqual([expect.objectContaining({ day: '2026-11-20', reason: 'skipped', parent_run_id: 'sk-1', attempt: 2, job: { mode: 'skip', reason: 'holiday' } })]);
  });
});
