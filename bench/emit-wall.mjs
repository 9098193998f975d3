// Emit throughput by wall clock (issue 16 item 2): items ÷ the wall time of
// `quarry run` from spawn to exit (start-up, finalize and validation into the
// ledger included) for a no-browser script awaiting N item emits
// (bench/scripts/emit-items-nobrowser.mjs), against the pipe ceiling measured
// the same way: a child writing the same frames (bench/pipe-child.mjs) to a
// parent that only decodes them, items ÷ the child's wall time from spawn to
// exit. Rounds alternate ceiling, then each policy; prints the median and the
// spread (min–max) of each, and the runtime's peak RSS (the `quarry` process's
// VmHWM; the executor is a separate process).
//   node bench/emit-wall.mjs [--n 1000000] [--rounds 3] [--policies strict,streaming] [--before /path/to/older/dist/cli/main.js]
// --before adds, per round and policy, a run of another build's CLI right
// after this build's (same script, same flags), so a change is compared with
// the build before it in the same minutes. Needs a built dist/ (npm run build).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameDecoder } from '../dist/protocol/codec.js';
import { machine, median } from './lib/timing.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const N = Number(arg('n', '1000000'));
const ROUNDS = Number(arg('rounds', '3'));
const policies = arg('policies', 'strict,streaming').split(',');
const BEFORE = arg('before', undefined);
const POLICY_FLAGS = {
  strict: ['--policy', 'strict'],
  buffered: ['--policy', 'buffered', '--buffer-events', '10000'],
  streaming: ['--policy', 'streaming', '--flush-count', '10000', '--flush-interval', '1s'],
};

function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Items ÷ wall seconds of a child writing n frames to this process, which only decodes them. */
async function pipeCeiling(n) {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [join(root, 'bench/pipe-child.mjs'), String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', r));
  const dec = new FrameDecoder();
  let count = 0;
  for await (const chunk of child.stdout) count += dec.push(chunk).length;
  dec.end();
  await exited;
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  if (count !== n) throw new Error(`pipe ceiling: got ${count} of ${n} frames`);
  return { perSec: n / secs, wall: secs };
}

/** Items ÷ wall seconds of `quarry run`, spawn to exit, and the runtime's peak RSS. */
async function quarryRun(policy, n, dir, round, cli = join(root, 'dist/cli/main.js')) {
  const args = [cli, 'run', '--script', join(root, 'bench/scripts/emit-items-nobrowser.mjs'), '--source', 'bench',
    '--run-id', `emit-${policy}-${round}${cli === join(root, 'dist/cli/main.js') ? '' : '-before'}`, '--job', JSON.stringify({ n }), '--storage-path', dir, '--quiet', ...POLICY_FLAGS[policy]];
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  let peak = 0;
  const poll = setInterval(() => (peak = Math.max(peak, peakRss(child.pid))), 50);
  const code = await new Promise((r) => child.on('exit', r));
  clearInterval(poll);
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`quarry run (${policy}, ${n}) exited ${code}`);
  return { perSec: n / secs, wall: secs, peakRss: peak };
}

const fmtRate = (xs) => `${Math.round(median(xs)).toLocaleString('en-US')} (${Math.round(Math.min(...xs)).toLocaleString('en-US')}–${Math.round(Math.max(...xs)).toLocaleString('en-US')})`;
const mb = (b) => `${(b / 1024 / 1024).toFixed(0)}`;
const dir = await mkdtemp(join(tmpdir(), 'quarry-bench-emit-wall-'));
console.log(`started ${new Date().toISOString()}, ${machine()}`);
try {
  const ceiling = [];
  const runs = Object.fromEntries(policies.map((p) => [p, []]));
  const before = Object.fromEntries(policies.map((p) => [p, []]));
  for (let round = 0; round < ROUNDS; round++) {
    ceiling.push(await pipeCeiling(N));
    for (const policy of policies) {
      runs[policy].push(await quarryRun(policy, N, dir, round));
      if (BEFORE) before[policy].push(await quarryRun(policy, N, dir, round, BEFORE));
    }
  }
  const c = median(ceiling.map((r) => r.perSec));
  console.log(`ended ${new Date().toISOString()}, ${machine()}, ${N.toLocaleString('en-US')} items, median (min–max) of ${ROUNDS} alternating rounds\n`);
  console.log('| what | items/s by wall clock | wall s, median | ratio to the pipe ceiling (medians) | runtime peak RSS MB, median (max) |');
  console.log('|---|---|---|---|---|');
  console.log(`| pipe ceiling (child writes frames, parent decodes) | ${fmtRate(ceiling.map((r) => r.perSec))} | ${median(ceiling.map((r) => r.wall)).toFixed(1)} | 1 | |`);
  const row = (what, rs) => {
    const rss = rs.map((r) => r.peakRss);
    console.log(`| ${what} | ${fmtRate(rs.map((r) => r.perSec))} | ${median(rs.map((r) => r.wall)).toFixed(1)} | ${(median(rs.map((r) => r.perSec)) / c).toFixed(2)} | ${mb(median(rss))} (${mb(Math.max(...rss))}) |`);
  };
  for (const policy of policies) {
    row(`\`quarry run\`, ${policy}`, runs[policy]);
    if (BEFORE) row(`before (${BEFORE}), ${policy}`, before[policy]);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
