/**
 * The read commands through the real binary (dist/cli/main.js, built by the
 * global setup) over runs written directly through the storage API.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sumMetrics } from '../../src/runtime/metrics.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { writeScenario, type Scenario } from './scenario.js';

const MAIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function quarry(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((done) => {
    execFile(process.execPath, [MAIN, ...args], { cwd, env: { PATH: process.env.PATH, ...env } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      done({ code, stdout, stderr });
    });
  });
}

/** Every file under `root` with its size and mtime: equal before and after means nothing was written. */
async function snapshot(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        out.push(`${p}/`);
        await walk(p);
      } else {
        const s = await stat(p);
        out.push(`${p} ${s.size} ${s.mtimeMs}`);
      }
    }
  };
  await walk(root);
  return out.sort();
}

let dir: TempDir;
let store: string;
let scenario: Scenario;
let before: string[];

beforeAll(async () => {
  dir = await makeTempDir('cli-int');
  store = join(dir.path, 'data');
  const backend = await FsBackend.create(store);
  scenario = await writeScenario(backend);
  await backend.close();
  await writeFile(join(dir.path, 's.ts'), 'export default async () => {};\n');
  before = await snapshot(store);
});
afterAll(async () => {
  await dir.remove();
});

const read = (args: readonly string[]): Promise<Result> => quarry([...args, '--storage-path', store], dir.path);

describe('quarry read commands over stored runs', () => {
  it('list runs --format json lists what was written, newest first', async () => {
    const r = await read(['list', 'runs', '--format', 'json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(rows.map((x) => x.run_id)).toEqual(['r-stopped', 'r-stream', 'r-open', 'r-crash', 'r-ok', 'r-fail']);
    for (const row of rows) {
      const m = scenario.manifests[row.run_id as string];
      if (m === undefined) {
        expect(row).toMatchObject({ state: 'unfinalized', finalized: false });
        continue;
      }
      expect(row).toMatchObject({ outcome: m.outcome, message: m.message, exit_code: m.exit_code, event_count: m.event_count, started_at: m.started_at, finalized_at: m.finalized_at, policy: m.policy.name });
      expect(row.bytes).toBe(m.objects.reduce((n, o) => n + o.bytes, 0));
    }
  });

  it('inspect run <id> --format json shows the manifest it read', async () => {
    const r = await read(['inspect', 'run', 'r-stream', '--format', 'json']);
    expect(r.code).toBe(0);
    const m = scenario.manifests['r-stream']!;
    const v = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(v).toMatchObject({ run_id: 'r-stream', state: 'succeeded', outcome: 'success', policy: m.policy, objects: m.objects, orphaned_artifacts: m.orphaned_artifacts, artifacts: m.artifacts, job: m.job });
    expect(v.location).toBe(store);
  });

  it('stats metrics --format json sums the metrics of the finalized runs', async () => {
    const r = await read(['stats', 'metrics', '--format', 'json']);
    expect(r.code).toBe(0);
    const v = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(v).toMatchObject({ runs_summed: 5, runs_unfinalized: 1, ...sumMetrics(Object.values(scenario.manifests).map((m) => m.metrics)) });
    const one = JSON.parse((await read(['stats', 'metrics', '--run-id', 'r-crash'])).stdout) as Record<string, unknown>;
    expect(one).toMatchObject({ runs_summed: 1, runs_crashed_total: 1, executor_crash_total: 1, runs_completed_total: 0 });
  });

  it('stats runs prints JSON when piped, without --format', async () => {
    const r = await read(['stats', 'runs']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ total: 6, finalized: 5, unfinalized: 1, succeeded: 2, failed: 3 });
  });

  it('inspect job shows the attempts and the latest outcome', async () => {
    const r = await read(['inspect', 'job', 'daily-books', '--format', 'json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ job_id: 'daily-books', state: 'succeeded', latest_outcome: 'success', attempts: 2, run_ids: ['r-fail', 'r-ok'] });
  });

  it('table and yaml render the same runs', async () => {
    const table = await read(['list', 'runs', '--format', 'table']);
    expect(table.stdout.split('\n')[0]).toMatch(/^RUN_ID +STATE +OUTCOME/);
    expect(table.stdout).not.toContain('\u001b['); // not a terminal: no color
    const yaml = await read(['list', 'runs', '--format', 'yaml', '--limit', '1']);
    expect(yaml.stdout).toMatch(/^- run_id: r-stopped\n {2}state: failed\n/);
  });

  it('list pools with no pools configured exits 0 with an empty list and says how to give pools', async () => {
    const r = await read(['list', 'pools']);
    expect(r).toMatchObject({ code: 0, stdout: '[]\n' });
    expect(r.stderr).toBe('quarry list pools: no proxy pools configured: give --config FILE (its proxies:) or --proxy-config FILE, as to quarry run\n');
  });
});

describe('bad input: one line naming what to fix, non-zero exit, nothing written', () => {
  const oneLine = (r: Result): void => {
    expect(r.stdout).toBe('');
    expect(r.stderr.endsWith('\n')).toBe(true);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  };

  it('an unknown run id', async () => {
    const r = await read(['inspect', 'run', 'r-nope']);
    expect(r.code).toBe(1);
    oneLine(r);
    expect(r.stderr).toMatch(/^quarry inspect run: run "r-nope" not found in dataset "quarry"/);
  });

  it('--format xml', async () => {
    const r = await read(['list', 'runs', '--format', 'xml']);
    expect(r.code).toBe(2);
    oneLine(r);
    expect(r.stderr).toBe('quarry list runs: --format must be one of json|table|yaml, got "xml"\n');
  });

  it('a config key that does not exist', async () => {
    await writeFile(join(dir.path, 'typo.yaml'), 'source: books\npolcy:\n  name: strict\n');
    const fresh = join(dir.path, 'fresh-store');
    const r = await quarry(['run', '--config', 'typo.yaml', '--script', 's.ts', '--storage-path', fresh], dir.path);
    expect(r.code).toBe(2);
    oneLine(r);
    expect(r.stderr).toBe('quarry run: config typo.yaml: unknown key "polcy" (did you mean "policy"?)\n');
    expect(existsSync(fresh)).toBe(false);
  });

  it('a malformed YAML file', async () => {
    await writeFile(join(dir.path, 'broken.yaml'), 'source: books\npolicy:\n  name: [strict\n');
    const r = await quarry(['run', '--config', 'broken.yaml', '--script', 's.ts', '--storage-path', store], dir.path);
    expect(r.code).toBe(2);
    oneLine(r);
    expect(r.stderr).toMatch(/^quarry run: config broken.yaml: malformed YAML at line \d+, column \d+: /);
  });

  it('an unset ${VAR} in the config', async () => {
    await writeFile(join(dir.path, 'env.yaml'), 'source: ${QUARRY_TEST_SOURCE}\n');
    const r = await quarry(['run', '--config', 'env.yaml', '--script', 's.ts', '--storage-path', store], dir.path);
    expect(r.code).toBe(2);
    oneLine(r);
    expect(r.stderr).toMatch(/environment variable QUARRY_TEST_SOURCE is not set/);
  });

  it('left the stored runs exactly as they were', async () => {
    expect(await snapshot(store)).toEqual(before);
  });
});
