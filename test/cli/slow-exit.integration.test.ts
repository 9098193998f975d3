/**
 * An executor slow to exit after its result (docs/contracts/run.md): under
 * load a node process past its exit handlers can take seconds to end, and the
 * runtime stops one still there 10 s after its frame stream closed. A run
 * whose stream ended cleanly with its terminal event and run_result keeps the
 * outcome they state; without a run_result the kill is still a crash.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('slow-exit');
});
afterAll(async () => {
  await tmp.remove();
});

async function lingering(result: 'completed' | 'error' | 'none'): Promise<{ code: number | null; outcome: string; message: string; stderr: string }> {
  const storage = join(tmp.path, result);
  const report = join(tmp.path, `${result}.json`);
  const r = await quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', `slow-${result}`,
    '--job', JSON.stringify({ mode: 'linger', result }), '--storage-path', storage, '--report', report, '--quiet'], { timeoutMs: 120_000 });
  const rep = JSON.parse(await readFile(report, 'utf8')) as { outcome: string; message: string };
  return { code: r.code, outcome: rep.outcome, message: rep.message, stderr: r.stderr };
}

describe('an executor still exiting 10 s after its result', { timeout: 180_000 }, () => {
  it.concurrent('keeps a completed run a success, and its partition authoritative', async () => {
    const r = await lingering('completed');
    expect(r.outcome, r.stderr).toBe('success');
    expect(r.code, r.stderr).toBe(0);
    expect(r.message).toContain('the executor was still exiting 10s after its result and was stopped');
  });

  it.concurrent('keeps a failed run a script error', async () => {
    const r = await lingering('error');
    expect(r.outcome, r.stderr).toBe('script_error');
    expect(r.code, r.stderr).toBe(1);
    expect(r.message).toContain('the page had no books');
  });

  it.concurrent('is a crash when no run_result came before the stream closed', async () => {
    const r = await lingering('none');
    expect(r.outcome, r.stderr).toBe('executor_crash');
    expect(r.code, r.stderr).toBe(2);
    expect(r.message).toBe('executor killed by SIGKILL');
  });
});
