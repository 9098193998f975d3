/**
 * SPEC §8 state-driven retry: `quarry retry` re-runs a partition under the
 * settings its last run recorded — policy and its options, run-timeout,
 * retries, browser — read back from that run's manifest; a browser endpoint is
 * recorded without its credentials and reused only when given again; no
 * secret is ever stored.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest, type RunManifest } from '../../src/storage/manifest.js';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const script = join(REPO_ROOT, 'test/fixtures/no-browser/until-flag.ts');
const partition = (storage: string, day: string): string => join(storage, 'datasets/quarry/partitions/source=shop/category=default', `day=${day}`);

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('retry-settings');
});
afterAll(async () => {
  await tmp.remove();
});

/** The manifests of a partition's runs, oldest attempt first. */
function manifests(storage: string, day: string): RunManifest[] {
  const dir = partition(storage, day);
  return readdirSync(dir)
    .map((d) => parseManifest(readFileSync(join(dir, d, '_manifest.json'))))
    .sort((a, b) => a.attempt - b.attempt);
}

/** Every file under a folder, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('retry reuses the recorded settings', () => {
  it('a failed run under buffered with options is retried under the same policy, options, run-timeout and retries', async () => {
    const storage = join(tmp.path, 'lake');
    const flag = join(tmp.path, 'flag-1');
    const day = '2026-11-21';
    const first = await quarry(['run', '--script', script, '--source', 'shop', '--day', day, '--run-id', 'b-1', '--job', JSON.stringify({ flag }),
      '--policy', 'buffered', '--buffer-events', '2', '--buffer-bytes', '100000', '--flush-mode', 'two_phase', '--run-timeout', '45s', '--retries', '1',
      '--storage-path', storage, '--quiet']);
    expect(first.code).toBe(1);
    const expected = {
      policy: { name: 'buffered', flush_mode: 'two_phase', buffer_events: 2, buffer_bytes: 100000 },
      run_timeout_ms: 45_000, retries: 1, browser: { mode: 'launch' }, proxy: null, adapter: null, event_sinks: [],
    };
    const before = manifests(storage, day);
    // --retries 1: the run and one retry, both failed, both recording what they ran with.
    expect(before.map((m) => [m.attempt, m.outcome, m.settings])).toEqual([[1, 'script_error', expected], [2, 'script_error', expected]]);
    const claim = JSON.parse(readFileSync(join(storage, 'datasets/quarry/runs/b-1.json'), 'utf8')) as { settings: unknown };
    expect(claim.settings).toEqual(expected);

    const plan = await quarry(['retry', '--storage-path', storage, '--dry-run', '--format', 'json']);
    expect(plan.code).toBe(0);
    expect(JSON.parse(plan.stdout)).toEqual([expect.objectContaining({ day, parent_run_id: before[1]!.run_id, attempt: 3, settings: expected })]);

    // Still failing: the retry runs twice again (recorded retries 1), each under the recorded settings.
    const retried = await quarry(['retry', '--storage-path', storage, '--quiet']);
    expect(retried.code).toBe(1);
    const again = manifests(storage, day);
    expect(again.map((m) => [m.attempt, m.outcome, m.parent_run_id ?? null, m.settings])).toEqual([
      [1, 'script_error', null, expected], [2, 'script_error', 'b-1', expected],
      [3, 'script_error', again[1]!.run_id, expected], [4, 'script_error', again[2]!.run_id, expected],
    ]);
    expect(new Set(again.map((m) => m.job_id)).size).toBe(1);

    // Now it can succeed: the retry runs under buffered with a 2-event buffer, so its 3 items land in 2 segments (strict would write 1).
    writeFileSync(flag, 'go');
    const ok = await quarry(['retry', '--storage-path', storage, '--quiet']);
    expect(ok.stderr).toBe('quarry retry: 1 of 1 run(s) succeeded\n');
    expect(ok.code).toBe(0);
    const last = manifests(storage, day)[4]!;
    expect(last).toMatchObject({ attempt: 5, outcome: 'success', parent_run_id: again[3]!.run_id, settings: expected });
    expect(last.policy).toMatchObject({ name: 'buffered', options: expect.objectContaining({ flushMode: 'two_phase' }) });
    const itemSegments = last.objects.filter((o) => o.kind === 'records' && o.event_type === 'item');
    expect(itemSegments.map((o) => o.records)).toEqual([2, 1]);
  });

  it('a run ended by its run-timeout is retried under that timeout; --run-timeout given to retry beats it and is recorded', async () => {
    const storage = join(tmp.path, 'lake-2');
    const flag = join(tmp.path, 'flag-2');
    const day = '2026-11-24';
    // The flag never appears: every run hangs until its timeout stops it.
    const first = await quarry(['run', '--script', script, '--source', 'shop', '--day', day, '--run-id', 't-1', '--job', JSON.stringify({ flag, hang: true }),
      '--run-timeout', '3s', '--storage-path', storage, '--quiet']);
    expect(first.code).toBe(1);
    expect(manifests(storage, day)[0]!.settings).toMatchObject({ policy: { name: 'strict' }, run_timeout_ms: 3000, retries: 0 });

    const recorded = await quarry(['retry', '--storage-path', storage, '--quiet'], { timeoutMs: 60_000 });
    expect(recorded.code).toBe(1);
    const given = await quarry(['retry', '--storage-path', storage, '--run-timeout', '2500ms', '--quiet'], { timeoutMs: 60_000 });
    expect(given.code).toBe(1);
    const runs = manifests(storage, day);
    expect(runs.map((m) => [m.attempt, m.outcome, m.settings?.run_timeout_ms])).toEqual([[1, 'script_error', 3000], [2, 'script_error', 3000], [3, 'script_error', 2500]]);
    // The message names the timeout that stopped each run.
    expect(runs[1]!.message).toContain('--run-timeout 3s');
    expect(runs[2]!.message).toContain('--run-timeout 2.5s');
  });

  it('a browser endpoint is recorded without its credentials, and a retry reuses it only when it is given again', async () => {
    const storage = join(tmp.path, 'lake-3');
    const flag = join(tmp.path, 'flag-3');
    const day = '2026-11-22';
    // The script needs no browser, so the endpoint is never dialled: what is under test is what is recorded and passed on.
    const endpoint = 'ws://alice:hunter2@127.0.0.1:9/devtools/browser/x?token=s3cret';
    const redacted = 'ws://127.0.0.1:9/devtools/browser/x?token=***';
    const first = await quarry(['run', '--script', script, '--source', 'shop', '--day', day, '--run-id', 'e-1', '--job', JSON.stringify({ flag }),
      '--browser-ws-endpoint', endpoint, '--storage-path', storage, '--quiet', '--report', join(tmp.path, 'report-3.json')]);
    expect(first.code).toBe(1);
    expect(manifests(storage, day)[0]!.settings?.browser).toEqual({ mode: 'endpoint', endpoint: redacted });

    writeFileSync(flag, 'go');
    const refused = await quarry(['retry', '--storage-path', storage]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(`quarry retry: shop/default/${day}: not re-run: its last run used the browser at ${redacted}, whose credentials are never recorded; give --browser-ws-endpoint to reuse it\nquarry retry: 0 of 1 run(s) succeeded\n`);
    expect(readdirSync(partition(storage, day))).toEqual(['run_id=e-1']);

    const ok = await quarry(['retry', '--storage-path', storage, '--browser-ws-endpoint', endpoint, '--quiet']);
    expect(ok.code).toBe(0);
    const runs = manifests(storage, day);
    expect(runs.map((m) => [m.outcome, m.settings?.browser])).toEqual([['script_error', { mode: 'endpoint', endpoint: redacted }], ['success', { mode: 'endpoint', endpoint: redacted }]]);

    // No secret anywhere in storage: claims, manifests, records, the ledger and its WAL.
    const files = filesUnder(storage);
    expect(files.some((f) => f.endsWith('ledger.sqlite'))).toBe(true);
    expect(files.filter((f) => f.endsWith('_manifest.json'))).toHaveLength(2);
    for (const f of files) {
      const text = readFileSync(f).toString('latin1');
      for (const secret of ['hunter2', 's3cret', 'alice']) expect(text.includes(secret), `${secret} in ${f}`).toBe(false);
    }
    expect(existsSync(join(storage, 'datasets/quarry/runs/e-1.json'))).toBe(true);
  });
});
