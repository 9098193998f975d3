// A crawl resumed after kills (issue 12): the wall times of the resumed
// invocations, summed, beside the same crawl run once without a kill in the
// same run of this benchmark (the reference). The crawl is the crawl-kill
// test's: the fixture site's listing → DETAILS detail pages → DETAILS asset
// pages (1 + 2 × DETAILS runs, no browser), --depth 2 --parallel 6. The first
// invocation starts the tree through the library entry with a 10-minute lease
// and dies (SIGKILL) right after its 5th admission; then `quarry run --resume`
// is killed at --kills seeded random moments 1.5-4.5 s in; a last resume runs
// the tree to its end. Nothing should wait on the dead invocations' leases:
// the sum is the crawl's remaining work plus one start per invocation, so the
// ratio to the reference says what resuming costs. The target is a sum
// under 2 minutes.
//   npx tsx bench/crawl-resume.ts [--details 150] [--kills 3]
// Needs a built dist/ (npm run build).
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCrawlSite } from '../test/_harness/crawl-site.js';
import { prng } from '../test/_harness/crash.js';
import { machine } from './lib/timing.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1]!;
};
const DETAILS = Number(arg('details', '150'));
const KILLS = Number(arg('kills', '3'));
const CLI = join(root, 'dist/cli/main.js');
const SCRIPTS = join(root, 'test/fixtures/crawl-site');
const DRIVER = join(root, 'test/scheduler/fixtures/tree-driver.mjs');
const DAY = '2026-11-23';

/** Runs node `args` in the scripts folder; with `killAfterMs`, SIGKILLs it that long after the start. Resolves with its wall ms. */
function invoke(args: string[], killAfterMs?: number): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: SCRIPTS, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      // A tree that did not become authoritative (exit 3) still timed its crawl: said, not fatal.
      if (signal === null && code !== 0) console.error(`node ${args.slice(0, 3).join(' ')} … exited ${code}: ${stderr.trim()}`);
      resolve({ ms: performance.now() - t0, code, signal });
    });
  });
}

const site = await startCrawlSite({ details: DETAILS });
const tmp = await mkdtemp(join(tmpdir(), 'quarry-bench-crawl-resume-'));
try {
  const crawl = (storage: string): string[] => [CLI, 'run', '--script', 'listing.mjs', '--source', 'site', '--day', DAY, '--job', JSON.stringify({ base: site.url }),
    '--storage-path', storage, '--depth', '2', '--max-runs', '1000', '--parallel', '6', '--quiet'];

  // The reference: the same crawl in one invocation.
  const reference = await invoke(crawl(join(tmp, 'reference')));

  // Killed and resumed.
  const storage = join(tmp, 'resumed');
  const treeId = 'bench-tree';
  const first = await invoke([DRIVER, JSON.stringify({
    scriptsRoot: SCRIPTS, storage, stateDir: join(storage, '.quarry'), treeId, day: DAY, job: { base: site.url }, depth: 2, maxRuns: 1000, parallel: 6,
    leaseMs: 600_000, killAtAdmit: 5,
  })]);
  if (first.signal !== 'SIGKILL') throw new Error('the first invocation was not killed at its 5th admission');
  const resume = [CLI, 'run', '--resume', treeId, '--storage-path', storage, '--quiet'];
  const rand = prng(12);
  const resumed: number[] = [];
  for (let i = 0; i < KILLS; i++) resumed.push((await invoke(resume, 1500 + Math.floor(rand() * 3000))).ms);
  const last = await invoke(resume);
  resumed.push(last.ms);
  const sum = resumed.reduce((a, b) => a + b, 0);

  console.log(machine());
  console.log(`crawl of ${1 + 2 * DETAILS} runs (no browser), --parallel 6, ${KILLS} kills + the first invocation's`);
  console.log('| measure | wall (s) |');
  console.log('|---|---|');
  console.log(`| reference: one uninterrupted invocation | ${(reference.ms / 1000).toFixed(1)} |`);
  console.log(`| resumed invocations, summed (${resumed.length}) | ${(sum / 1000).toFixed(1)} |`);
  console.log(`| each resumed invocation | ${resumed.map((ms) => (ms / 1000).toFixed(1)).join(', ')} |`);
  console.log(`ratio resumed sum / reference: ${(sum / reference.ms).toFixed(2)} (target: sum under 120 s); exit codes: reference ${reference.code}, last resume ${last.code}`);
} finally {
  await site.close();
  await rm(tmp, { recursive: true, force: true });
}
