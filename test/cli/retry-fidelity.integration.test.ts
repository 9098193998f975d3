/**
 * SPEC §8 state-driven retry, what `retry` keeps from the run it retries: the
 * recorded script only while its SHA-256 is unchanged (refused showing both
 * hashes unless --script), the job id or none (§5), and a usable --limit.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const PART = 'datasets/quarry/partitions/source=shop/category=default/day=2026-11-20';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('retry-fidelity');
});
afterAll(async () => {
  await tmp.remove();
});

describe('retry fidelity', () => {
  it('keeps no job id when the run had none, refuses a changed script showing both hashes, and refuses --limit below 1', async () => {
    const storage = join(tmp.path, 'lake');
    const script = join(tmp.path, 'books.ts');
    copyFileSync(join(REPO_ROOT, 'examples/books.ts'), script);
    const before = createHash('sha256').update(readFileSync(script)).digest('hex');
    const failed = await quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', 'f-1', '--job', '{"mode":"seq_gap"}', '--storage-path', storage, '--quiet']);
    expect(failed.code).toBe(2);

    const plan = await quarry(['retry', '--storage-path', storage, '--dry-run', '--format', 'json']);
    expect(JSON.parse(plan.stdout)).toEqual([expect.objectContaining({ day: '2026-11-20', reason: 'failed', job_id: null, parent_run_id: 'f-1', attempt: 2, script_sha256: before })]);

    const limit = await quarry(['retry', '--storage-path', storage, '--limit', '-1']);
    expect(limit.code).toBe(2);
    expect(limit.stderr).toBe('quarry retry: --limit must be 1 or more, got -1\n');

    writeFileSync(script, `${readFileSync(script, 'utf8')}\n// edited after the run\n`);
    const after = createHash('sha256').update(readFileSync(script)).digest('hex');
    const r = await quarry(['retry', '--storage-path', storage]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`quarry retry: shop/default/2026-11-20: recorded script ${script} changed since its last run (SHA-256 then ${before}, now ${after}); not re-run: give --script to run the current file`);
    // Nothing ran: the partition still holds only the failed run.
    expect(readdirSync(join(storage, PART))).toEqual(['run_id=f-1']);
    expect(existsSync(join(storage, 'datasets/quarry/runs'))).toBe(true);
    expect(readdirSync(join(storage, 'datasets/quarry/runs'))).toEqual(['f-1.json']);
  });
});
