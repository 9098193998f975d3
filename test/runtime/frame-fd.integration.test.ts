import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { parseManifest } from '../../src/storage/manifest.js';
import { streamRecords } from '../../src/storage/reader.js';
import type { EventRecord } from '../../src/storage/records.js';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

let tmp: TempDir;
let fs: FsBackend;
beforeAll(async () => {
  tmp = await makeTempDir('frame-fd');
  fs = await FsBackend.create(tmp.path);
});
afterAll(async () => {
  await fs.close();
  await tmp.remove();
});

async function run(runId: string, script: string, extra: string[] = [], job: unknown = {}) {
  const res = await quarry(['run', '--script', join(REPO_ROOT, script), '--source', 'fd', '--day', '2026-11-23', '--run-id', runId, '--job', JSON.stringify(job), '--storage-path', tmp.path, ...extra]);
  const dir = join(tmp.path, 'datasets/quarry/partitions/source=fd/category=default/day=2026-11-23', `run_id=${runId}`);
  const manifest = parseManifest(await readFile(join(dir, '_manifest.json')));
  const records: EventRecord[] = [];
  for await (const r of streamRecords(fs, manifest)) if (r.record_kind !== 'metrics') records.push(r);
  return { res, records };
}

const items = (records: EventRecord[]): unknown[] => records.filter((r) => r.event_type === 'item').map((r) => (r.payload as { data: unknown }).data);

describe('frames travel on their own fd, so raw writes to fd 1 cannot corrupt them (SPEC §3)', () => {
  it('a script writing to fd 1 with fs.writeSync succeeds with its items intact, the writes on stderr and in the report', async () => {
    const report = join(tmp.path, 'raw-fd1.json');
    const { res, records } = await run('raw-fd1', 'test/fixtures/stray/raw-fd1.ts', ['--report', report]);
    expect(res.code, res.stderr).toBe(0);
    expect(items(records)).toEqual([{ i: 1 }, { i: 2 }]);
    expect(records.map((r) => r.event_type)).toEqual(['item', 'item', 'run_complete']);
    expect(res.stderr).toContain('garbage on fd 1 before');
    expect(res.stderr).toContain('garbage on fd 1 after');
    expect(res.stdout).not.toContain('garbage');
    const r = JSON.parse(await readFile(report, 'utf8')) as { stderr?: string };
    expect(r.stderr).toContain('garbage on fd 1 after');
  });

  it('a script spawning a child with inherited stdio succeeds with its items intact, the child output on stderr', async () => {
    const { res, records } = await run('inherit-child', 'test/fixtures/stray/inherit-child.ts');
    expect(res.code, res.stderr).toBe(0);
    expect(items(records)).toEqual([{ i: 1 }, { i: 2 }, { i: 3 }]);
    expect(res.stderr).toContain('hi from an inherited child');
    expect(res.stderr).toContain('child stderr line');
    expect(res.stdout).not.toContain('hi from');
  });
});

describe('the handshake decides where the runtime reads frames', () => {
  const executor = join(REPO_ROOT, 'test/fixtures/executors/frame-fd.mjs');
  const books = 'examples/books.ts';

  it('a custom executor that takes the offer gets its frames read on fd 3 and its stdout treated as log output', async () => {
    const { res, records } = await run('custom-fd', books, ['--executor', executor]);
    expect(res.code, res.stderr).toBe(0);
    expect(items(records)).toEqual([{ n: 1 }]);
    expect(res.stderr).toContain('noise right after the handshake');
  });

  it('a handshake naming another fd than the one offered is no handshake: stdout is read as frames and fails on the noise', async () => {
    const { res, records } = await run('custom-fd-wrong', books, ['--executor', executor], { handshake_fd: 4 });
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(/malformed frame #1: unknown frame type "frame_fd"/);
    expect(items(records)).toEqual([]);
  });

  it('a custom executor that does not opt in still has its frames read on stdout', async () => {
    const { res, records } = await run('custom-stdout', books, ['--executor', join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs')], { mode: 'ok' });
    expect(res.code, res.stderr).toBe(0);
    expect(items(records)).toEqual([{ n: 1 }]);
  });
});
