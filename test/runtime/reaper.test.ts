/**
 * The runtime's reaper (src/runtime/reaper.ts) with real processes: it kills
 * its targets when the runtime dies even while the runtime's pipe stays open
 * (it looks at the runtime's /proc entry, not only for end of file), takes an
 * executor's own child process group along, and kills an owner's targets at
 * once on `end()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Reaper, reaperPid } from '../../src/runtime/reaper.js';
import { procStat } from '../_harness/proc-tag.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const RUNTIME = fileURLToPath(new URL('../fixtures/reaper/runtime.mjs', import.meta.url));
const BUILT_REAPER = fileURLToPath(new URL('../../dist/runtime/reaper.js', import.meta.url));

const started: number[] = [];
let tmp: TempDir | undefined;
afterEach(async () => {
  await tmp?.remove();
  tmp = undefined;
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
});

/** Polls until every pid is gone or a zombie, or `ms` passes; returns those still alive. */
async function aliveAfter(pids: readonly number[], ms: number): Promise<number[]> {
  const end = Date.now() + ms;
  let alive = pids.filter((p) => procStat(p) !== undefined);
  while (alive.length > 0 && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    alive = alive.filter((p) => procStat(p) !== undefined);
  }
  return alive;
}

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

describe('reaper', { timeout: 60_000 }, () => {
  it('SIGKILLs the targets of a SIGKILLed runtime whose pipe stays open, with the process group of each pid target\'s children, and deletes their Chromium profiles', async () => {
    tmp = await makeTempDir('reaper');
    const rt: ChildProcess = spawn(process.execPath, [RUNTIME, BUILT_REAPER], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TMPDIR: tmp.path } });
    started.push(rt.pid!);
    const line = await new Promise<string>((resolve, reject) => {
      let out = '';
      rt.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.split('\n')[0]!);
      });
      rt.once('exit', () => reject(new Error('the stand-in runtime exited')));
    });
    const p = JSON.parse(line) as { parent: number; group: number; holder: number; reaper: number; profile: string };
    expect(existsSync(p.profile)).toBe(true);
    const [grandchild] = childrenOf(p.parent);
    expect(grandchild).toBeDefined();
    started.push(p.parent, p.group, p.holder, grandchild!);
    // The grandchild leads a process group of its own (as puppeteer's Chromium does).
    expect(procStat(grandchild!)!.pgid).toBe(grandchild);
    rt.kill('SIGKILL');
    // Without the look at /proc nothing would be killed before the holder exits (300 s): no end of file comes.
    expect(await aliveAfter([p.parent, p.group, grandchild!, p.reaper], 20_000)).toEqual([]);
    expect(procStat(p.holder), 'the pipe stayed open: the holder lives').toBeDefined();
    expect(existsSync(p.profile)).toBe(false);
  });

  it('end() SIGKILLs an owner\'s targets at once and leaves another owner\'s', async () => {
    const a = spawn('sleep', ['300'], { stdio: 'ignore' });
    const b = spawn('sleep', ['300'], { stdio: 'ignore' });
    started.push(a.pid!, b.pid!);
    const mine = new Reaper();
    const other = new Reaper();
    mine.add({ pid: a.pid! });
    other.add({ pid: b.pid! });
    expect(reaperPid()).toBeDefined();
    const exited = new Promise((r) => a.once('exit', (_code, signal) => r(signal)));
    mine.end();
    expect(await exited).toBe('SIGKILL');
    expect(procStat(b.pid!)).toBeDefined();
    other.remove({ pid: b.pid! });
    // Removed: the shell no longer holds it (this process, its runtime, lives on).
    expect(procStat(b.pid!)).toBeDefined();
  });
});
