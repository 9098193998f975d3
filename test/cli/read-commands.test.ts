import { readdir } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectJobCommand, inspectRunCommand } from '../../src/cli/commands/inspect.js';
import { listJobsCommand, listRunsCommand } from '../../src/cli/commands/list.js';
import { statsJobsCommand, statsMetricsCommand, statsRunsCommand } from '../../src/cli/commands/stats.js';
import { UsageError } from '../../src/cli/flags.js';
import type { CliIO } from '../../src/cli/io.js';
import { sumMetrics } from '../../src/runtime/metrics.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { recordingIO } from './fake-io.js';
import { writeScenario, type Scenario } from './scenario.js';

type Command = (argv: readonly string[], io: CliIO) => Promise<number>;

let dir: TempDir;
let scenario: Scenario;
beforeAll(async () => {
  dir = await makeTempDir('cli-read');
  const backend = await FsBackend.create(dir.path);
  scenario = await writeScenario(backend);
  await backend.close();
});
afterAll(async () => {
  await dir.remove();
});

async function run(cmd: Command, argv: readonly string[], opts: { tty?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIO(dir.path, opts);
  const code = await cmd([...argv, '--storage-path', dir.path], io);
  return { code, out: io.out, err: io.err };
}

async function json<T = any>(cmd: Command, argv: readonly string[]): Promise<T> {
  const r = await run(cmd, [...argv, '--format', 'json']);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as T;
}

describe('list runs', () => {
  it('lists every claimed run newest first, finalized or not, with its state', async () => {
    const rows = await json<any[]>(listRunsCommand, []);
    expect(rows.map((r) => [r.run_id, r.state, r.outcome ?? null])).toEqual([
      ['r-stopped', 'failed', 'interrupted'],
      ['r-stream', 'succeeded', 'success'],
      ['r-open', 'unfinalized', null],
      ['r-crash', 'failed', 'executor_crash'],
      ['r-ok', 'succeeded', 'success'],
      ['r-fail', 'failed', 'script_error'],
    ]);
    const ok = rows.find((r) => r.run_id === 'r-ok');
    expect(ok).toMatchObject({ source: 'books', category: 'default', day: '2024-01-01', job_id: 'daily-books', attempt: 2, parent_run_id: 'r-fail', finalized: true, event_count: 5, policy: 'strict', exit_code: 0 });
    expect(Object.keys(ok).slice(0, 2)).toEqual(['run_id', 'state']);
  });

  it('filters by partition keys, outcome, state and finalization, and limits', async () => {
    const ids = async (argv: string[]): Promise<string[]> => (await json<any[]>(listRunsCommand, argv)).map((r) => r.run_id);
    expect(await ids(['--source', 'books'])).toEqual(['r-open', 'r-ok', 'r-fail']);
    expect(await ids(['--category', 'toys'])).toEqual(['r-stopped', 'r-stream']);
    expect(await ids(['--day', '2024-01-02'])).toEqual(['r-stopped', 'r-stream']);
    expect(await ids(['--outcome', 'success'])).toEqual(['r-stream', 'r-ok']);
    expect(await ids(['--unfinalized'])).toEqual(['r-open']);
    expect(await ids(['--state', 'running'])).toEqual(['r-open']);
    expect(await ids(['--state', 'failed'])).toEqual(['r-stopped', 'r-crash', 'r-fail']);
    expect(await ids(['--state', 'failed', '--limit', '2'])).toEqual(['r-stopped', 'r-crash']);
    expect(await ids(['--state', 'succeeded', '--source', 'books'])).toEqual(['r-ok']);
    expect(await ids(['--limit', '2'])).toEqual(['r-stopped', 'r-stream']);
    expect(await ids(['--limit', '0'])).toHaveLength(6);
    expect(await ids(['--source', 'nothing'])).toEqual([]);
  });

  it('refuses contradictory or malformed filters as usage errors, before reading', async () => {
    await expect(run(listRunsCommand, ['--unfinalized', '--outcome', 'success'])).rejects.toThrow(/contradict/);
    await expect(run(listRunsCommand, ['--state', 'succeeded', '--outcome', 'script_error'])).rejects.toThrow(UsageError);
    await expect(run(listRunsCommand, ['--day', '2024-13-01'])).rejects.toThrow(/--day/);
    await expect(run(listRunsCommand, ['--source', '../x'])).rejects.toThrow(/--source/);
    await expect(run(listRunsCommand, ['--limit', '-1'])).rejects.toThrow(/--limit/);
    await expect(run(listRunsCommand, ['--outcome', 'great'])).rejects.toThrow(/--outcome must be one of/);
    await expect(run(listRunsCommand, ['extra'])).rejects.toThrow(/unexpected argument/);
  });

  it('prints an aligned table on a terminal and JSON when piped', async () => {
    const table = await run(listRunsCommand, [], { tty: true });
    expect(table.code).toBe(0);
    const lines = table.out.replace(/\u001b\[[0-9;]*m/g, '').trimEnd().split('\n');
    expect(lines[0]).toMatch(/^RUN_ID\s+STATE\s+OUTCOME\s+SOURCE/);
    expect(lines).toHaveLength(7);
    expect(lines[1]!.indexOf('failed')).toBe(lines[0]!.indexOf('STATE'));
    expect(table.out).toContain('\u001b['); // colored on a terminal
    expect((await run(listRunsCommand, ['--no-color'], { tty: true })).out).not.toContain('\u001b[');
    expect(JSON.parse((await run(listRunsCommand, [])).out)).toHaveLength(6);
  });

  it('a storage path that does not exist is a one-line error, and nothing is created', async () => {
    const io = recordingIO(dir.path);
    const missing = `${dir.path}/nope`;
    expect(await listRunsCommand(['--storage-path', missing], io)).toBe(1);
    expect(io.err).toMatch(/^quarry list runs: no storage at .*nope \(it does not exist\).*\n$/);
    expect(io.out).toBe('');
    expect(await readdir(dir.path)).not.toContain('nope');
  });
});

describe('inspect run', () => {
  it('shows identity, lineage, outcome, policy counters, objects and timestamps of a finalized run', async () => {
    const m = scenario.manifests['r-ok']!;
    const v = await json(inspectRunCommand, ['r-ok']);
    expect(v).toMatchObject({
      run_id: 'r-ok',
      state: 'succeeded',
      finalized: true,
      partition: { dataset: 'quarry', source: 'books', category: 'default', day: '2024-01-01', key: 'datasets/quarry/partitions/source=books/category=default/day=2024-01-01/run_id=r-ok/' },
      lineage: { job_id: 'daily-books', attempt: 2, parent_run_id: 'r-fail', root_run_id: 'r-ok', depth: 0 },
      outcome: 'success',
      message: 'run completed',
      exit_code: 0,
      skipped: false,
      timestamps: { started_at: m.started_at, finalized_at: m.finalized_at, duration_ms: 1500 },
      script: m.script,
      contract_version: '1.0.0',
      job: m.job,
      policy: m.policy,
      events: { count: 5, first_seq: 1, last_seq: 5, records_by_type: { item: 3, log: 1, run_complete: 1 } },
      terminal_summary: { pages: 2 },
      objects: m.objects,
      orphaned_artifacts: [],
      superseded_objects: [],
    });
    expect(v.note).toBeUndefined();
  });

  it('lists sidecar files, committed and orphaned artifacts, and the policy drops', async () => {
    const v = await json(inspectRunCommand, ['r-stream']);
    expect(v.sidecar_files).toEqual([expect.objectContaining({ filename: 'page-1.html', path: 'files/page-1.html', bytes: 14, meta_path: 'files/page-1.html.meta.json' })]);
    expect(v.orphaned_artifacts).toEqual([expect.objectContaining({ artifact_id: 'half', bytes: 2 })]);
    expect(v.artifacts).toEqual({ total: 2, committed: 1, orphaned: 1, chunks: 2, bytes: 9 });
    expect(v.objects.filter((o: any) => o.kind === 'artifact').map((o: any) => o.artifact_id)).toEqual(['shot']);
    expect(v.policy).toMatchObject({ name: 'streaming', events_dropped: 3, dropped_by_type: { log: 2, enqueue: 1 }, flush_triggers: { count: 2, termination: 1 } });
  });

  it('an unfinalized run says so plainly, on stderr and in the data', async () => {
    const r = await run(inspectRunCommand, ['r-open', '--format', 'json']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^quarry inspect run: run r-open is not finalized: the run has no _manifest.json/);
    const v = JSON.parse(r.out);
    expect(v).toMatchObject({ run_id: 'r-open', state: 'unfinalized', finalized: false, outcome: null, policy: null, objects: [], timestamps: { finalized_at: null } });
    expect(v.note).toMatch(/not finalized/);
    expect(v.published_so_far.objects).toBeGreaterThan(0);
  });

  it('a run id that does not exist is a one-line error with exit 1', async () => {
    const r = await run(inspectRunCommand, ['no-such-run']);
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/^quarry inspect run: run "no-such-run" not found in dataset "quarry" at .*\n$/);
    expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  });

  it('a missing or unsafe run id is a usage error', async () => {
    await expect(run(inspectRunCommand, [])).rejects.toThrow(/missing <run-id>/);
    await expect(run(inspectRunCommand, ['../../etc'])).rejects.toThrow(/must match/);
  });

  it('renders nested lists as sub-tables in table format', async () => {
    const r = await run(inspectRunCommand, ['r-stream', '--format', 'table']);
    expect(r.out).toMatch(/^run_id: +r-stream$/m);
    expect(r.out).toMatch(/^policy\.dropped_by_type\.log: +2$/m);
    expect(r.out).toMatch(/^objects \(\d+\):$/m);
    expect(r.out).toMatch(/^sidecar_files \(1\):$/m);
  });
});

describe('jobs', () => {
  it('inspect job shows its attempts oldest first and the latest outcome', async () => {
    const v = await json(inspectJobCommand, ['daily-books']);
    expect(v).toMatchObject({ job_id: 'daily-books', state: 'succeeded', latest_outcome: 'success', latest_run_id: 'r-ok', attempts: 2, run_count: 2, run_ids: ['r-fail', 'r-ok'] });
    expect(v.runs.map((r: any) => [r.run_id, r.attempt, r.state])).toEqual([
      ['r-fail', 1, 'failed'],
      ['r-ok', 2, 'succeeded'],
    ]);
  });

  it('an unknown job is a one-line error with exit 1', async () => {
    const r = await run(inspectJobCommand, ['nope']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^quarry inspect job: job "nope" not found/);
  });

  it('list jobs and stats jobs group runs by job id', async () => {
    expect(await json(listJobsCommand, [])).toEqual([
      { job_id: 'news-1', state: 'failed', runs: 1, latest_attempt: 1, latest_run_id: 'r-crash', latest_outcome: 'executor_crash', latest_started_at: '2024-01-01T03:00:00.000Z' },
      { job_id: 'daily-books', state: 'succeeded', runs: 2, latest_attempt: 2, latest_run_id: 'r-ok', latest_outcome: 'success', latest_started_at: '2024-01-01T02:00:00.000Z' },
    ]);
    expect((await json<any[]>(listJobsCommand, ['--source', 'books'])).map((j) => j.job_id)).toEqual(['daily-books']);
    expect(await json(statsJobsCommand, [])).toEqual({ total: 2, succeeded: 1, failed: 1, unfinalized: 0, runs: 3, runs_without_job: 3 });
  });
});

describe('stats', () => {
  it('stats runs counts by state and outcome', async () => {
    expect(await json(statsRunsCommand, [])).toEqual({
      total: 6,
      finalized: 5,
      unfinalized: 1,
      succeeded: 2,
      failed: 3,
      skipped: 0,
      by_outcome: { success: 2, script_error: 1, executor_crash: 1, policy_failure: 0, version_mismatch: 0, interrupted: 1 },
    });
    expect((await json(statsRunsCommand, ['--source', 'shop'])).total).toBe(2);
  });

  it('stats metrics sums the stored run metrics over the filters', async () => {
    const all = Object.values(scenario.manifests);
    const v = await json(statsMetricsCommand, []);
    expect(v).toMatchObject({ filters: {}, runs_summed: 5, runs_unfinalized: 1, ...sumMetrics(all.map((m) => m.metrics)) });
    expect(v.runs_started_total).toBe(5);
    expect(v.runs_completed_total).toBe(2);
    expect(v.runs_crashed_total).toBe(1);
    expect(v.events_dropped_by_type).toEqual({ log: 2, enqueue: 1 });
    expect(v.dimensions).toEqual({ policy: { strict: 4, streaming: 1 }, executor: { node: 5 }, storage_backend: { fs: 5 } });

    const shop = await json(statsMetricsCommand, ['--source', 'shop']);
    expect(shop).toMatchObject({ filters: { source: 'shop' }, runs_summed: 2, ...sumMetrics([scenario.manifests['r-stream']!.metrics, scenario.manifests['r-stopped']!.metrics]) });
    const one = await json(statsMetricsCommand, ['--run-id', 'r-ok']);
    expect(one).toMatchObject({ filters: { run_id: 'r-ok' }, runs_summed: 1, ...sumMetrics([scenario.manifests['r-ok']!.metrics]) });
    expect((await json(statsMetricsCommand, ['--run-id', 'r-ok', '--source', 'news'])).runs_summed).toBe(0);
  });

  it('stats metrics of an unknown run is an error; of an unfinalized one says it has no metrics yet', async () => {
    const missing = await run(statsMetricsCommand, ['--run-id', 'ghost']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/run "ghost" not found/);
    const open = await run(statsMetricsCommand, ['--run-id', 'r-open', '--format', 'json']);
    expect(open.code).toBe(0);
    expect(open.err).toMatch(/not finalized/);
    expect(JSON.parse(open.out)).toMatchObject({ runs_summed: 0, runs_unfinalized: 1, runs_started_total: 0 });
  });
});

describe('--help', () => {
  it('lists exactly the flags the command parses', async () => {
    const io = recordingIO(dir.path);
    expect(await listRunsCommand(['--help'], io)).toBe(0);
    for (const flag of ['--source', '--category', '--day', '--outcome', '--state', '--unfinalized', '--limit', '--storage-path', '--format', '--no-color']) expect(io.out).toContain(flag);
    const stats = recordingIO(dir.path);
    await statsMetricsCommand(['--help'], stats);
    expect(stats.out).toContain('--run-id');
  });
});
