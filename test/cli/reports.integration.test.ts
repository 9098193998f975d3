import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');
let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('reports');
});
afterAll(async () => {
  await tmp.remove();
});

describe('read commands agree with what quarry run reported', () => {
  it('list runs, inspect run and stats metrics match the --report of runs with different outcomes', async () => {
    const storage = join(tmp.path, 'data');
    const modes: Array<[string, string, number]> = [['r-ok', 'ok', 0], ['r-gap', 'seq_gap', 2], ['r-version', 'version', 3], ['r-ok2', 'ok', 0]];
    const reports: Record<string, Record<string, unknown>> = {};
    for (const [runId, mode, code] of modes) {
      const report = join(tmp.path, `${runId}.json`);
      const r = await quarry(['run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', runId, '--job', JSON.stringify({ mode }), '--storage-path', storage, '--report', report, '--quiet']);
      expect(r.code).toBe(code);
      reports[runId] = JSON.parse(await readFile(report, 'utf8')) as Record<string, unknown>;
    }

    const list = JSON.parse((await quarry(['list', 'runs', '--storage-path', storage, '--format', 'json'])).stdout) as Array<Record<string, unknown>>;
    expect(list.map((r) => r.run_id).sort()).toEqual(Object.keys(reports).sort());
    for (const row of list) {
      const rep = reports[row.run_id as string]!;
      expect(row).toMatchObject({ outcome: rep.outcome, exit_code: rep.exit_code, event_count: rep.event_count, message: rep.message });
    }

    for (const runId of Object.keys(reports)) {
      const inspect = JSON.parse((await quarry(['inspect', 'run', runId, '--storage-path', storage, '--format', 'json'])).stdout) as Record<string, unknown>;
      const rep = reports[runId]!;
      expect(inspect).toMatchObject({ run_id: runId, outcome: rep.outcome, message: rep.message, exit_code: rep.exit_code });
      expect((inspect.policy as Record<string, unknown>).events_persisted).toBe((rep.policy as Record<string, unknown>).events_persisted);
    }

    const stats = JSON.parse((await quarry(['stats', 'metrics', '--storage-path', storage, '--format', 'json'])).stdout) as Record<string, number>;
    const sum = (k: string) => Object.values(reports).reduce((n, r) => n + ((r.metrics as Record<string, number>)[k] ?? 0), 0);
    for (const k of ['runs_started_total', 'runs_completed_total', 'runs_failed_total', 'runs_crashed_total', 'events_received_total', 'events_persisted_total', 'ipc_decode_errors_total', 'lode_write_success_total']) {
      expect(stats[k], k).toBe(sum(k));
    }
    expect(stats.runs_started_total).toBe(4);
    expect(stats.runs_completed_total).toBe(2);
  });
});
