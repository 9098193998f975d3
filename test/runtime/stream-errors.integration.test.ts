import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/storage/manifest.js';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');
let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('stream');
});
afterAll(async () => {
  await tmp.remove();
});

async function runMode(mode: string) {
  const runId = `stream-${mode}`;
  const report = join(tmp.path, `${runId}.json`);
  const res = await quarry(['run', '--script', script, '--source', 'fake', '--day', '2026-11-22', '--run-id', runId, '--executor', executor,
    '--job', JSON.stringify({ mode }), '--storage-path', tmp.path, '--report', report, '--quiet']);
  const manifestPath = join(tmp.path, 'datasets/quarry/partitions/source=fake/category=default/day=2026-11-22', `run_id=${runId}`, '_manifest.json');
  const manifest = parseManifest(await readFile(manifestPath));
  return { res, manifest, report: JSON.parse(await readFile(report, 'utf8')) as Record<string, unknown> };
}

describe('fatal stream errors end the run with exit 2 and a message naming the problem', () => {
  const cases: Array<[string, RegExp]> = [
    ['malformed', /malformed frame at byte \d+/],
    ['oversize', /oversize frame at byte \d+/],
    ['truncated', /truncated frame at byte \d+/],
    ['seq_gap', /seq gap: got event seq 3, expected 2/],
    ['wrong_run', /run_id someone-else, expected stream-wrong_run/],
  ];
  for (const [mode, message] of cases) {
    it(`${mode}`, async () => {
      const { res, manifest, report } = await runMode(mode);
      expect(res.code).toBe(2);
      expect(manifest.outcome).toBe('executor_crash');
      expect(manifest.message).toMatch(message);
      expect(report.message).toBe(manifest.message);
      // What arrived before the bad frame is kept.
      expect(manifest.policy.events_persisted).toBe(1);
      expect(manifest.seq).toEqual({ first: 1, last: 1 });
    });
  }

  it('an unknown contract major is a version_mismatch with exit 3', async () => {
    const { res, manifest } = await runMode('version');
    expect(res.code).toBe(3);
    expect(manifest.outcome).toBe('version_mismatch');
    expect(manifest.message).toMatch(/contract_version 2\.0\.0/);
  });

  it('an executor that exits 0 without a terminal event is a crash', async () => {
    const { res, manifest } = await runMode('no_terminal');
    expect(res.code).toBe(2);
    expect(manifest.message).toMatch(/without a terminal event/);
  });

  it('a well-behaved stand-in executor gives success and metrics that match', async () => {
    const { res, manifest, report } = await runMode('ok');
    expect(res.code).toBe(0);
    expect(manifest.outcome).toBe('success');
    expect(manifest.metrics).toMatchObject({ runs_started_total: 1, runs_completed_total: 1, events_received_total: 2, events_persisted_total: 2, ipc_decode_errors_total: 0, executor_launch_success_total: 1 });
    expect(report.metrics).toEqual(manifest.metrics);
    expect(report.event_count).toBe(2);
  });

  it('a taken --run-id is refused before anything runs', async () => {
    const res = await quarry(['run', '--script', script, '--source', 'fake', '--day', '2026-11-22', '--run-id', 'stream-ok', '--executor', executor, '--job', '{"mode":"ok"}', '--storage-path', tmp.path]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/run id "stream-ok" is already used by a recorded run/);
  });
});

describe('an executor that cannot start', () => {
  it('is an executor_crash, not a script error', async () => {
    const { runOnce } = await import('../../src/runtime/run.js');
    const { FsBackend } = await import('../../src/storage/fs-backend.js');
    const backend = await FsBackend.create(tmp.path);
    try {
      const report = await runOnce({
        scriptPath: script, runId: 'no-executor', attempt: 1, job: {}, partition: { dataset: 'quarry', source: 'fake', category: 'default', day: '2026-11-22' },
        policy: { name: 'strict' }, backend, executorPath: join(tmp.path, 'missing-executor.js'),
      });
      expect(report.outcome).toBe('executor_crash');
      expect(report.exit_code).toBe(2);
      expect(report.message).toMatch(/executor could not start: executor entry .* does not exist/);
      expect(report.metrics.executor_launch_failure_total).toBe(1);
      expect(report.storage.finalized).toBe(true);
    } finally {
      await backend.close();
    }
  });
});
