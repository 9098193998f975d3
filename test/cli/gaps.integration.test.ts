import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

// A stand-in executor keeps these tests about the ledger, not the browser.
const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');

// Days relative to today, so "stale" means the same thing whenever the test runs.
const dayAgo = (n: number): string => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);
const [D1, D2, D3, D4] = [dayAgo(6), dayAgo(5), dayAgo(4), dayAgo(3)] as [string, string, string, string];

let tmp: TempDir;
let storage: string;
const range = (from: string, to: string) => ['--source', 'shop', '--category', 'default', '--from-day', from, '--to-day', to];

beforeAll(async () => {
  tmp = await makeTempDir('gaps');
  storage = join(tmp.path, 'data');
  // D1 success, D2 failed (a seq gap fails validation), D3 never ran, D4 skipped by prepare.
  for (const [day, mode] of [[D1, 'ok'], [D2, 'seq_gap'], [D4, 'skip']] as const) {
    await quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', day, '--job', JSON.stringify({ mode }), '--storage-path', storage, '--quiet']);
  }
});
afterAll(async () => {
  await tmp.remove();
});

describe('consumers are told about gaps before they read (SPEC §8, §9 exit 4)', () => {
  it('read --require-complete over a range with a failed and a missing day prints nothing, lists both, exits 4', async () => {
    const r = await quarry(['read', '--storage-path', storage, '--require-complete', ...range(D1, D4)]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`shop/default/${D2}: failed`);
    expect(r.stderr).toContain(`shop/default/${D3}: pending`);
    // A day whose only run was a prepare skip counts as complete by default.
    expect(r.stderr).not.toContain(D4);
  });

  it('--include-skipped counts the skipped day as a gap too', async () => {
    const r = await quarry(['read', '--storage-path', storage, '--require-complete', '--include-skipped', ...range(D1, D4)]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(new RegExp(`shop/default/${D4}: \\w+, skipped: `));
  });

  it('a complete range reads normally', async () => {
    const r = await quarry(['read', '--storage-path', storage, '--require-complete', ...range(D1, D1)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean).length).toBeGreaterThan(0);
  });

  it('export --require-complete over an incomplete range loads nothing: the warehouse is not even created', async () => {
    const wh = join(tmp.path, 'wh.duckdb');
    const r = await quarry(['export', '--storage-path', storage, '--to', `duckdb:${wh}`, '--require-complete', ...range(D1, D3)]);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`shop/default/${D3}: pending`);
    expect(existsSync(wh)).toBe(false);
  });

  it('--require-complete without a category or a range is a usage error naming what is missing', async () => {
    const r = await quarry(['read', '--storage-path', storage, '--require-complete', '--source', 'shop']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--category');
    expect(r.stderr).toContain('--from-day/--to-day');
  });
});

describe('state inspect --expect-all --stale-after alerts from cron', () => {
  it('exits 4 when a day that ended more than D ago is not success, listing the partitions', async () => {
    const r = await quarry(['state', 'inspect', '--storage-path', storage, ...range(D1, D4), '--expect-all', '--stale-after', '1d', '-f', 'json']);
    expect(r.code, r.stderr).toBe(4);
    const rows = JSON.parse(r.stdout) as Array<{ day: string; status: string; skipped: string | null }>;
    expect(rows.map((x) => x.day)).toEqual([D1, D2, D3, D4]);
    expect(rows.find((x) => x.day === D3)?.status).toBe('pending');
    expect(rows.find((x) => x.day === D4)?.skipped).toBeTruthy();
    expect(r.stderr).toContain(`shop/default/${D2}: failed`);
    expect(r.stderr).toContain(`shop/default/${D3}: pending`);
    expect(r.stderr).not.toContain(`${D4}:`);
  });

  it('exits 0 while the gaps are younger than D', async () => {
    const r = await quarry(['state', 'inspect', '--storage-path', storage, ...range(D1, D4), '--expect-all', '--stale-after', '10d', '-f', 'json']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('--expect-days FROM..TO stays an alias of --from-day/--to-day --expect-all', async () => {
    const r = await quarry(['state', 'inspect', '--storage-path', storage, '--source', 'shop', '--expect-days', `${D1}..${D4}`, '--stale-after', '1d', '-f', 'json']);
    expect(r.code, r.stderr).toBe(4);
    expect((JSON.parse(r.stdout) as unknown[]).length).toBe(4);
  });
});

describe('day ranges are --from-day/--to-day in every command (SPEC §9)', () => {
  it('list runs and stats runs take the range; the old --from/--to still work where they existed', async () => {
    const list = await quarry(['list', 'runs', '--storage-path', storage, '--from-day', D2, '--to-day', D4, '-f', 'json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ day: string }>).map((r) => r.day).sort()).toEqual([D2, D4]);
    const stats = await quarry(['stats', 'runs', '--storage-path', storage, '--to-day', D1, '-f', 'json']);
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toMatch(/"total": 1\b/);
    const old = await quarry(['state', 'inspect', '--storage-path', storage, '--from', D2, '--to', D2, '-f', 'json']);
    expect(old.code, old.stderr).toBe(0);
    expect((JSON.parse(old.stdout) as Array<{ day: string }>).map((r) => r.day)).toEqual([D2]);
  });
});
