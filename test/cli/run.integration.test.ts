import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FS_TMP_DIR, FsBackend } from '../../src/storage/fs-backend.js';
import { ownerTag } from '../../src/runtime/owner-tag.js';
import { parseManifest, type RunManifest } from '../../src/storage/manifest.js';
import { readArtifact, streamRecords } from '../../src/storage/reader.js';
import type { EventRecord, StoredRecord } from '../../src/storage/records.js';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
// @ts-expect-error the fixture site is plain JavaScript shared with the demo
import { startSite } from '../../examples/site/server.mjs';

const scripts = join(REPO_ROOT, 'test/fixtures/run-scripts');
let tmp: TempDir;
let site: { url: string; close(): Promise<void> };
let fs: FsBackend;

beforeAll(async () => {
  tmp = await makeTempDir('run');
  site = (await startSite(0)) as typeof site;
  fs = await FsBackend.create(tmp.path);
});
afterAll(async () => {
  await fs.close();
  await site.close();
  await tmp.remove();
});

/** Chromium processes whose parent is init: browsers whose executor died without closing them. */
function orphanChromium(): string[] {
  const out = execFileSync('ps', ['-eo', 'ppid=,args=']).toString();
  return out.split('\n').filter((l) => /^\s*1\s/.test(l) && l.includes('quarry-chromium-'));
}

const partitionDir = (runId: string) => join(tmp.path, 'datasets/quarry/partitions/source=it/category=default/day=2026-11-22', `run_id=${runId}`);

async function run(runId: string, script: string, extra: string[] = [], job: unknown = { url: site.url }, onSpawn?: (c: import('node:child_process').ChildProcess) => void): Promise<{ res: CliResult; manifest: RunManifest }> {
  const res = await quarry(['run', '--script', join(scripts, script), '--source', 'it', '--day', '2026-11-22', '--run-id', runId, '--job', JSON.stringify(job), '--storage-path', tmp.path, ...extra], onSpawn ? { onSpawn } : {});
  const manifest = parseManifest(await readFile(join(partitionDir(runId), '_manifest.json')));
  return { res, manifest };
}

async function records(m: RunManifest): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for await (const r of streamRecords(fs, m)) out.push(r);
  return out;
}

describe('quarry run with a real browser', () => {
  it('stores every event type with its envelope intact and seq 1..N, and the report matches the manifest', async () => {
    const report = join(tmp.path, 'every.json');
    const { res, manifest } = await run('every', 'every-event.ts', ['--report', report]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^run_id=every, attempt=1, outcome=success, duration=[\d.]+s, items=2, events=8, policy=strict/m);
    expect(res.stdout).toMatch(/ledger: this run is authoritative/);
    const recs = (await records(manifest)) as EventRecord[];
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(recs.map((r) => r.event_type)).toEqual(['item', 'artifact', 'checkpoint', 'enqueue', 'rotate_proxy', 'log', 'item', 'run_complete']);
    for (const r of recs) {
      expect(r).toMatchObject({ run_id: 'every', attempt: 1, contract_version: '1.0.0', source: 'it', category: 'default', day: '2026-11-22', dataset: 'quarry' });
      expect(Date.parse(r.ts)).not.toBeNaN();
      expect(r.event_id).toMatch(/^[0-9A-Z]{26}$/);
    }
    expect(new Set(recs.map((r) => r.event_id)).size).toBe(8);
    expect(recs[0]!.payload).toEqual({ item_type: 'page', data: { title: 'Books, page 1 of 3' } });
    expect(recs[2]!.payload).toEqual({ checkpoint_id: 'after-artifact', note: 'half way' });
    expect(recs[3]!.payload).toEqual({ target: 'next.ts', params: { page: 2 } });
    expect(recs[5]!.payload).toEqual({ level: 'info', message: 'logged', fields: { k: 1 } });
    expect(recs[1]!.record_kind).toBe('artifact_event');

    // The report is what was stored.
    const rep = JSON.parse(await readFile(report, 'utf8')) as Record<string, unknown>;
    expect(rep).toMatchObject({ run_id: 'every', outcome: 'success', exit_code: 0, event_count: 8, items: 2 });
    expect(rep.policy).toEqual({ name: 'strict', events_received: 8, events_persisted: 8, events_dropped: 0, dropped_by_type: {} });
    expect(rep.policy).toMatchObject({ events_persisted: manifest.policy.events_persisted });
    expect(rep.artifacts).toEqual(manifest.artifacts);
    expect(rep.metrics).toEqual(manifest.metrics);
    expect(rep.terminal_summary).toEqual({ done: true });

    // Stray stdout from the script went to stderr, not into the frame stream.
    expect(res.stderr).toContain('stdout noise from the script');
  });

  it('storage.put returns the key, writes the file and its meta; ../x and a/b are refused', async () => {
    const { manifest } = await run('sidecar', 'every-event.ts');
    const recs = (await records(manifest)) as EventRecord[];
    const sidecar = recs.find((r) => (r.payload as { item_type?: string }).item_type === 'sidecar')!.payload as { data: { key: string; refused: string[] } };
    expect(sidecar.data.key).toBe('datasets/quarry/partitions/source=it/category=default/day=2026-11-22/run_id=sidecar/files/page.html');
    expect(sidecar.data.refused).toEqual(['../x: StorageFilenameError', 'a/b: StorageFilenameError']);
    const html = await readFile(join(tmp.path, sidecar.data.key), 'utf8');
    expect(html).toContain('Books, page 1 of 3');
    const meta = JSON.parse(await readFile(join(partitionDir('sidecar'), 'files/page.html.meta.json'), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ filename: 'page.html', content_type: 'text/html', bytes: Buffer.byteLength(html) });
    expect(manifest.objects.map((o) => o.path)).toEqual(expect.arrayContaining(['files/page.html', 'files/page.html.meta.json']));
  });

  it('a 20 MiB artifact travels in several chunks and reads back byte-identical', async () => {
    const { res, manifest } = await run('big-artifact', 'every-event.ts', [], { url: site.url, artifact_mib: 20 });
    expect(res.code, res.stderr).toBe(0);
    expect(manifest.artifacts).toMatchObject({ total: 1, committed: 1, orphaned: 0, bytes: 20 * 1024 * 1024 });
    expect(manifest.artifacts.chunks).toBeGreaterThanOrEqual(3);
    const expected = Buffer.alloc(20 * 1024 * 1024);
    for (let i = 0; i < expected.length; i++) expected[i] = (i * 31 + 7) % 251;
    const recs = (await records(manifest)) as EventRecord[];
    const artifactId = (recs.find((r) => r.event_type === 'artifact')!.payload as { artifact_id: string }).artifact_id;
    const h = createHash('sha256');
    for await (const chunk of readArtifact(fs, manifest, artifactId).chunks) h.update(chunk);
    expect(h.digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
    expect((await stat(join(partitionDir('big-artifact'), 'artifacts', artifactId))).size).toBe(expected.length);
  });

  it('a throwing script exits 1 and stores run_error', async () => {
    const { res, manifest } = await run('throws', 'throws.ts');
    expect(res.code).toBe(1);
    expect(manifest.outcome).toBe('script_error');
    const recs = (await records(manifest)) as EventRecord[];
    expect(recs.map((r) => r.event_type)).toEqual(['item', 'run_error']);
    expect(recs[1]!.payload).toMatchObject({ error_type: 'script_error', message: expect.stringContaining('the page changed') });
    expect(res.stdout).toMatch(/ledger: not authoritative/);
  });

  it('an executor killed with SIGKILL mid-run gives exit 2 and a manifest saying executor_crash', async () => {
    let child: import('node:child_process').ChildProcess | undefined;
    // Kill only once events are on disk: the open item segment of this quarry run (its temp file is
    // named by the run's pid) holds bytes on two polls in a row, which a short-lived put's temp file
    // does not. A fixed wait failed under load with nothing persisted yet. The script must also have
    // said READY: the executor starts before the claim, and on a loaded machine the claim's temp
    // file can hold bytes across two polls too.
    let ready = false;
    let seen = new Set<string>();
    const persisted = async (pid: number): Promise<boolean> => {
      const dir = join(tmp.path, FS_TMP_DIR);
      const now = new Set<string>();
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name.startsWith(`${ownerTag(pid)}-`) && (await stat(join(dir, name)).catch(() => undefined))?.size) now.add(name);
      }
      const again = [...now].some((n) => seen.has(n));
      seen = now;
      return again;
    };
    const killer = (async () => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 50));
        if (!ready || !child?.pid || !(await persisted(child.pid))) continue;
        let pids = '';
        try {
          pids = execFileSync('pgrep', ['-P', String(child.pid), '-f', 'executor/main.js']).toString().trim();
        } catch {
          continue;
        }
        for (const pid of pids.split('\n')) process.kill(Number(pid), 'SIGKILL');
        return;
      }
    })();
    const done = run('killed', 'slow.ts', [], {}, (c) => {
      child = c;
      c.stderr!.on('data', (d: Buffer) => {
        if (d.toString().includes('READY')) ready = true;
      });
    });
    await killer;
    const { res, manifest } = await done;
    expect(res.code).toBe(2);
    expect(manifest.outcome).toBe('executor_crash');
    expect(manifest.message).toMatch(/SIGKILL/);
    expect(manifest.policy.events_persisted).toBeGreaterThan(0);
    // Its browser does not live on as an orphan: Chromium exits when the executor's pipe closes.
    let orphans = orphanChromium();
    for (let i = 0; i < 50 && orphans.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      orphans = orphanChromium();
    }
    expect(orphans).toEqual([]);
  });

  it('SIGTERM to quarry run mid-run exits 143 and finalizes the run as interrupted, keeping what arrived', async () => {
    let child: import('node:child_process').ChildProcess | undefined;
    const done = run('sigterm', 'slow.ts', [], {}, (c) => {
      child = c;
      c.stderr!.on('data', (d: Buffer) => {
        if (d.toString().includes('READY')) c.kill('SIGTERM');
      });
    });
    const { res, manifest } = await done;
    expect(child).toBeDefined();
    expect(res.code).toBe(143);
    expect(manifest.outcome).toBe('interrupted');
    const recs = await records(manifest);
    expect(recs.length).toBeGreaterThanOrEqual(4);
    expect(manifest.policy.events_persisted).toBe(recs.length);
    expect(res.stdout).toMatch(/outcome=interrupted/);
  });

  it('--dry-run accepts a valid script and rejects one without a default export, without a browser or storage', async () => {
    const empty = await makeTempDir('dry');
    try {
      const ok = await quarry(['run', '--dry-run', '--script', join(scripts, 'throws.ts'), '--source', 'it', '--storage-path', empty.path]);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/valid script/);
      const bad = await quarry(['run', '--dry-run', '--script', join(scripts, 'no-default.ts'), '--source', 'it', '--storage-path', empty.path]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/default export/);
      // Nothing was stored: not even the storage root's contents.
      await expect(stat(join(empty.path, 'datasets'))).rejects.toThrow(/ENOENT/);
    } finally {
      await empty.remove();
    }
  });
});

describe('quarry run under each policy', () => {
  const POLICIES: Record<string, string[]> = {
    strict: ['--policy', 'strict'],
    buffered: ['--policy', 'buffered', '--buffer-events', '100'],
    streaming: ['--policy', 'streaming', '--flush-count', '2'],
  };

  it('the same script gives the same records in the same order and the same layout under all three', async () => {
    const seen: unknown[] = [];
    for (const [name, flags] of Object.entries(POLICIES)) {
      const { res, manifest } = await run(`same-${name}`, 'every-event.ts', flags);
      expect(res.code, res.stderr).toBe(0);
      const recs = (await records(manifest)) as EventRecord[];
      const kept = recs.filter((r) => ['item', 'artifact', 'checkpoint', 'run_complete'].includes(r.event_type));
      const artifact = kept.find((r) => r.event_type === 'artifact')!;
      const id = (artifact.payload as { artifact_id: string }).artifact_id;
      seen.push({
        // Run identity (run_id, event ids, timestamps, artifact ids, storage keys) differs; nothing else may.
        records: kept.map((r) => ({ seq: r.seq, type: r.event_type, kind: r.record_kind, payload: JSON.parse(JSON.stringify(r.payload).replaceAll(id, '<artifact>').replaceAll(`run_id=same-${name}`, 'run_id=<run>')) })),
        folders: [...new Set(manifest.objects.map((o) => o.path.split('/')[0]))].sort(),
      });
    }
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[2]).toEqual(seen[0]);
  });

  it('SIGTERM during a streaming run persists everything received, finalizes and exits non-zero', async () => {
    const report = join(tmp.path, 'stream-term.json');
    const { res, manifest } = await run('stream-term', 'slow.ts', ['--policy', 'streaming', '--flush-count', '1000', '--report', report], {}, (c) => {
      c.stderr!.on('data', (d: Buffer) => {
        if (d.toString().includes('READY')) setTimeout(() => c.kill('SIGTERM'), 300);
      });
    });
    expect(res.code).toBe(143);
    expect(manifest.outcome).toBe('interrupted');
    const recs = await records(manifest);
    expect(recs.length).toBeGreaterThanOrEqual(4);
    expect(manifest.policy.events_received).toBe(recs.length);
    expect(manifest.policy.events_persisted).toBe(recs.length);
    expect(manifest.policy.flush_triggers).toMatchObject({ termination: 1 });
  });
});
