/**
 * Nothing left running, whatever kills us (SPEC §5): a `quarry run` killed by
 * SIGKILL takes its executor and browser with it; an executor stuck in an
 * emit stops on SIGTERM; leftovers of dead owners are swept at the next start,
 * never a live concurrent run's.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FS_TMP_DIR } from '../../src/storage/fs-backend.js';
import { CHROMIUM_PROFILE_PREFIX, ownerTag } from '../../src/runtime/owner-tag.js';
import { CLI, quarry, REPO_ROOT } from '../_harness/cli.js';
import { EXECUTOR } from '../_harness/executor-harness.js';
import { killTagged, newTag, taggedProcesses, waitUntilGone } from '../_harness/proc-tag.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const fixture = (name: string): string => join(REPO_ROOT, 'test/fixtures/lifecycle', name);
const tags: string[] = [];
let tmp: TempDir;

beforeAll(async () => {
  tmp = await makeTempDir('lifecycle');
});
afterAll(async () => {
  for (const t of tags) killTagged(t);
  await tmp.remove();
});

/** Resolves once `child`'s stderr has printed `marker`. */
function stderrSays(child: ChildProcess, marker: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    child.stderr!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(marker)) resolve();
    });
    child.once('exit', () => reject(new Error(`exited before printing ${marker}:\n${seen}`)));
  });
}

/** A pid that is certainly dead: a process that already exited. */
async function deadPid(): Promise<number> {
  const c = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => c.once('exit', r));
  return c.pid!;
}

describe('the executor and its browser end with their runtime', () => {
  it('kill -9 of quarry run while the script emits every 1 ms leaves no process of the run behind', async () => {
    const { tag, env } = newTag();
    tags.push(tag);
    const child = spawn(process.execPath, [CLI, 'run', '--script', fixture('emit-fast.ts'), '--source', 'lc', '--storage-path', join(tmp.path, 'kill9')], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    await stderrSays(child, 'EMITTING');
    const before = taggedProcesses(tag);
    // quarry run, the executor and Chromium (with its helpers) all carry the tag.
    expect(before.some((l) => l.includes('executor/main.js'))).toBe(true);
    expect(before.some((l) => l.includes('chromium'))).toBe(true);
    child.kill('SIGKILL');
    const { left } = await waitUntilGone(tag, 5_000);
    expect(left).toEqual([]);
  });

  it('an executor blocked on a full frame pipe stops on SIGTERM, closing its browser', async () => {
    const { tag, env } = newTag();
    tags.push(tag);
    const child = spawn(process.execPath, [EXECUTOR, fixture('emit-fast.ts')], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin!.write(`${JSON.stringify({ run_id: 'blocked', attempt: 1, job: null })}\n`);
    // Nobody reads stdout: after 64 KiB the script's emit waits on the pipe.
    child.stdout!.pause();
    await stderrSays(child, 'EMITTING');
    await new Promise((r) => setTimeout(r, 500));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
    const { left } = await waitUntilGone(tag, 5_000);
    expect(left).toEqual([]);
    child.stdin!.destroy();
    child.stdout!.destroy();
  });
});

describe('leftovers of killed runs', () => {
  it('quarry run sweeps dead owners\' profiles and temp files older than an hour, never a live run\'s', async () => {
    const storage = join(tmp.path, 'sweep');
    const profiles = await makeTempDir('sweep-tmpdir');
    try {
      const dead = await deadPid();
      const old = new Date(Date.now() - 2 * 3600_000);
      const plant = async (path: string, mtime: Date, dir: boolean): Promise<string> => {
        if (dir) await mkdir(join(path, 'Default'), { recursive: true });
        else await writeFile(path, 'partial');
        await utimes(path, mtime, mtime);
        return path;
      };
      const deadOld = await plant(join(profiles.path, `${CHROMIUM_PROFILE_PREFIX}${ownerTag(dead)}-aaaaaa`), old, true);
      const deadYoung = await plant(join(profiles.path, `${CHROMIUM_PROFILE_PREFIX}${ownerTag(dead)}-bbbbbb`), new Date(), true);
      const otherHost = await plant(join(profiles.path, `${CHROMIUM_PROFILE_PREFIX}${ownerTag(dead, 'elsewhere')}-cccccc`), old, true);
      const legacy = await plant(join(profiles.path, `${CHROMIUM_PROFILE_PREFIX}dddddd`), old, true);
      await mkdir(join(storage, FS_TMP_DIR), { recursive: true });
      const tmpOld = await plant(join(storage, FS_TMP_DIR, `${ownerTag(dead)}-1.tmp`), old, false);

      // A live run beside, whose profile looks old: its owner is alive, so it stays.
      const { tag, env } = newTag();
      tags.push(tag);
      const env2 = { ...process.env, ...env, TMPDIR: profiles.path };
      const beside = spawn(process.execPath, [CLI, 'run', '--script', fixture('emit-fast.ts'), '--source', 'lc', '--storage-path', join(tmp.path, 'beside')], { cwd: REPO_ROOT, env: env2, stdio: ['ignore', 'ignore', 'pipe'] });
      await stderrSays(beside, 'EMITTING');
      const planted = new Set([deadOld, deadYoung, otherHost, legacy]);
      const liveProfiles = (await readdir(profiles.path)).filter((n) => n.startsWith(CHROMIUM_PROFILE_PREFIX) && !planted.has(join(profiles.path, n)));
      expect(liveProfiles.length).toBe(1);
      const live = join(profiles.path, liveProfiles[0]!);
      await utimes(live, old, old);

      const res = await quarry(['run', '--script', fixture('quick.ts'), '--source', 'lc', '--storage-path', storage], { env: { TMPDIR: profiles.path } });
      expect(res.code, res.stderr).toBe(0);
      const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);
      expect(await exists(live)).toBe(true);
      const besideExit = new Promise((r) => beside.once('exit', r));
      beside.kill('SIGTERM');
      await besideExit;
      // Interrupted, the live run removes its own profile on its way out.
      expect(await exists(live)).toBe(false);

      expect(await exists(deadOld)).toBe(false);
      expect(await exists(tmpOld)).toBe(false);
      // Young, another host's, and names without an owner are not ours to judge.
      expect(await exists(deadYoung)).toBe(true);
      expect(await exists(otherHost)).toBe(true);
      expect(await exists(legacy)).toBe(true);
    } finally {
      await profiles.remove();
    }
  });
});

describe('--run-timeout', () => {
  it('a run whose cleanup hook hangs past --run-timeout ends script_error, error_type timeout, its browser closed', async () => {
    const { tag, env } = newTag();
    tags.push(tag);
    const report = join(tmp.path, 'timeout-report.json');
    const started = Date.now();
    const res = await quarry(['run', '--script', fixture('hang-in-cleanup.ts'), '--source', 'lc', '--storage-path', join(tmp.path, 'timeout'), '--run-timeout', '20s', '--report', report], { env });
    expect(res.code, res.stderr).toBe(1);
    // It did get to the hanging hook, and it was the deadline that ended it, not the hook.
    expect(res.stderr).toContain('CLEANUP HANGS');
    expect(Date.now() - started).toBeGreaterThanOrEqual(20_000);
    expect(res.stdout).toMatch(/outcome=script_error/);
    expect(res.stdout).toMatch(/message: timeout: the run took longer than --run-timeout 20s/);
    const rep = JSON.parse(await readFile(report, 'utf8')) as Record<string, unknown>;
    expect(rep).toMatchObject({ outcome: 'script_error', error_type: 'timeout', exit_code: 1, items: 1 });
    expect(rep.storage).toMatchObject({ finalized: true });
    const { left } = await waitUntilGone(tag, 5_000);
    expect(left).toEqual([]);
  });

  it('refuses a zero or malformed --run-timeout before anything runs', async () => {
    for (const bad of ['0s', 'soon']) {
      const res = await quarry(['run', '--script', fixture('quick.ts'), '--source', 'lc', '--storage-path', join(tmp.path, 'bad-timeout'), '--run-timeout', bad]);
      expect(res.code).toBe(2);
      expect(res.stderr).toMatch(/--run-timeout/);
      expect(res.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('signals stop read commands', () => {
  it('list runs stuck on a stalled S3 endpoint stops on SIGINT with 130 and on SIGTERM with 143', async () => {
    // Accepts connections and never answers: the command waits on its first request.
    const stalled = createServer(() => undefined);
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
    const port = (stalled.address() as AddressInfo).port;
    try {
      for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
        let child: ChildProcess | undefined;
        const done = quarry(['list', 'runs', '--storage-backend', 's3', '--storage-endpoint', `http://127.0.0.1:${port}`, '--storage-s3-path-style', '--storage-path', 'bucket/p'], {
          env: { AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's', AWS_REGION: 'us-east-1' },
          onSpawn: (c) => (child = c),
          timeoutMs: 30_000,
        });
        await new Promise((r) => setTimeout(r, 3_000));
        // Still waiting on the endpoint: the signal is what ends it.
        expect(child!.exitCode).toBeNull();
        child!.kill(sig);
        const res = await done;
        expect(res.code, res.stderr).toBe(code);
        expect(res.stderr).toMatch(new RegExp(`interrupted by ${sig}`));
      }
    } finally {
      stalled.closeAllConnections();
      stalled.close();
    }
  });
});
