/**
 * SPEC §5 lineage: a job id is generated only for fan-out trees. `quarry run
 * --retries N` without `--job-id` keeps none on any attempt (they are linked
 * by parent_run_id and root_run_id); with `--job-id` every attempt carries it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('retries-job-id');
});
afterAll(async () => {
  await tmp.remove();
});

interface Manifest { run_id: string; attempt: number; job_id?: string | null; parent_run_id?: string | null }

async function failTwice(name: string, extra: string[]): Promise<Manifest[]> {
  const storage = join(tmp.path, name);
  const r = await quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', `${name}-1`,
    '--job', JSON.stringify({ mode: 'script_error' }), '--retries', '1', '--storage-path', storage, '--quiet', ...extra]);
  expect(r.code, r.stderr).toBe(1);
  const day = join(storage, 'datasets/quarry/partitions/source=shop/category=default/day=2026-11-20');
  return readdirSync(day).map((d) => JSON.parse(readFileSync(join(day, d, '_manifest.json'), 'utf8')) as Manifest).sort((a, b) => a.attempt - b.attempt);
}

describe('--retries and the job id', () => {
  it.concurrent('without --job-id, no attempt gets a made-up one; the retry names its parent', async () => {
    const m = await failTwice('nojob', []);
    expect(m.map((x) => [x.attempt, x.job_id ?? null, x.parent_run_id ?? null])).toEqual([[1, null, null], [2, null, 'nojob-1']]);
  });

  it.concurrent('with --job-id, every attempt carries it', async () => {
    const m = await failTwice('job', ['--job-id', 'nightly']);
    expect(m.map((x) => [x.attempt, x.job_id])).toEqual([[1, 'nightly'], [2, 'nightly']]);
  });
});
