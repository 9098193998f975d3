// The Redis Streams event sink's cost (issue 14, SPEC §11): items ÷ the wall
// time of `quarry run` (spawn to exit) of a no-browser script awaiting N item
// emits (bench/scripts/emit-items-nobrowser.mjs), strict policy, with and
// without a best_effort `--event-sink redis`, in alternating rounds against a
// private redis-server this bench starts on a free port (and stops by its pid).
// Odd rounds run in reverse order (ABBA). Then, with the sink on: a paced script (bench/scripts/emit-items-paced.mjs)
// offering 0.25× the strict rate just measured must lose nothing to the sink,
// and at full speed the sink's drops must be counted (report
// `event_sinks[].dropped`, sent + dropped = events). Prints medians and the
// spread (min–max), CPU time of `quarry run` (user + system, its executor
// included) and, apart, the redis-server's CPU time during each run.
//   node bench/event-sink.mjs [--n 200000] [--rounds 3] [--paced-seconds 20] [--paced-rates 0.25[,0.5,...]] [--before /path/to/older/dist/cli/main.js]
// --paced-rates adds paced runs at other fractions of the strict rate (where loss begins); the target is at 0.25.
// --before alternates a third run per round: another build's CLI with the
// sink (its dist/ needs node_modules and package.json beside it, e.g.
// /tmp/x/{dist,node_modules,package.json}), against the same strict reference.
// Needs a built dist/ and redis-server on PATH.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine, median } from './lib/timing.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const N = Number(arg('n', '200000'));
const ROUNDS = Number(arg('rounds', '3'));
const PACED_SECONDS = Number(arg('paced-seconds', '20'));
const BEFORE = arg('before', undefined);
const PACED_RATES = arg('paced-rates', '0.25').split(',').map(Number);
if (!PACED_RATES.includes(0.25) || PACED_RATES.some((x) => !(x > 0))) throw new Error('--paced-rates: fractions of the strict rate, more than 0, 0.25 among them (the target)');

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A private redis-server (no persistence) on a free port; never the machine's shared one. */
async function startRedis(dir) {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
  });
  child.stdout.resume();
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid, stop: () => new Promise((r) => { child.once('exit', r); child.kill('SIGKILL'); }) };
}

/** CPU seconds (user + system) a process has used so far, from /proc (NaN elsewhere). */
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Items ÷ wall seconds of one `quarry run`, and its report. */
async function quarryRun(dir, id, script, job, extra, cli = join(root, 'dist/cli/main.js')) {
  const report = join(dir, `${id}.json`);
  const redisCpu = cpuOf(redis.pid);
  const args = [cli, 'run', '--script', join(root, script), '--source', 'bench', '--run-id', id,
    '--job', JSON.stringify(job), '--storage-path', join(dir, 'data'), '--policy', 'strict', '--report', report, '--quiet', ...extra];
  const started = process.hrtime.bigint();
  // CPU time (user + system, the executor included) through /usr/bin/time: on a shared machine it says what the sink costs when wall time is noise.
  const child = spawn('/usr/bin/time', ['-f', 'QUARRY_BENCH_CPU %U %S', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise((r) => child.on('close', r));
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`quarry run ${id} exited ${code}: ${stderr}`);
  const m = /QUARRY_BENCH_CPU ([\d.]+) ([\d.]+)/.exec(stderr);
  const r = JSON.parse(await readFile(report, 'utf8'));
  return { perSec: job.n / secs, wall: secs, cpu: m ? Number(m[1]) + Number(m[2]) : NaN, redisCpu: cpuOf(redis.pid) - redisCpu, events: r.event_count, sink: r.event_sinks?.[0], policyDropped: r.policy.events_dropped };
}

const rate = (x) => Math.round(x).toLocaleString('en-US');
const fmtRate = (xs) => `${rate(median(xs))} (${rate(Math.min(...xs))}–${rate(Math.max(...xs))})`;
const dir = await mkdtemp(join(tmpdir(), 'quarry-bench-event-sink-'));
const redis = await startRedis(dir);
try {
  const sink = (key) => ['--event-sink', 'redis', '--event-sink-redis-url', redis.url, '--event-sink-redis-stream-key', key];
  const plain = [];
  const sinked = [];
  const before = [];
  const loadAtStart = loadavg();
  for (let round = 0; round < ROUNDS; round++) {
    const runs = [
      async () => plain.push(await quarryRun(dir, `plain-${round}`, 'bench/scripts/emit-items-nobrowser.mjs', { n: N }, [])),
      async () => sinked.push(await quarryRun(dir, `sink-${round}`, 'bench/scripts/emit-items-nobrowser.mjs', { n: N }, sink(`bench:full:${round}`))),
      ...(BEFORE ? [async () => before.push(await quarryRun(dir, `before-${round}`, 'bench/scripts/emit-items-nobrowser.mjs', { n: N }, sink(`bench:before:${round}`), BEFORE))] : []),
    ];
    // ABBA: every other round runs in reverse order, so no variant always goes first (after a pause) or last.
    for (const run of round % 2 === 0 ? runs : runs.reverse()) await run();
  }
  const strictRate = median(plain.map((r) => r.perSec));
  const pacedRuns = [];
  for (const f of PACED_RATES) {
    const offered = Math.floor(strictRate * f);
    pacedRuns.push({ f, offered, r: await quarryRun(dir, `paced-${f}`, 'bench/scripts/emit-items-paced.mjs', { n: offered * PACED_SECONDS, rate: offered }, sink(`bench:paced:${f}`)) });
  }
  const paced = pacedRuns.find((p) => p.f === 0.25).r;
  const ratio = median(sinked.map((r) => r.perSec)) / strictRate;
  const drops = (rs) => rs.map((r) => r.sink.dropped);
  console.log(`${machine()}, ${N.toLocaleString('en-US')} items, median (min–max) of ${ROUNDS} alternating rounds\n`);
  const cpu = (rs) => median(rs.map((r) => r.cpu)).toFixed(2);
  const rcpu = (rs) => median(rs.map((r) => r.redisCpu)).toFixed(2);
  console.log('| what | items/s by wall clock | wall s, median | CPU s (user+sys), median | redis-server CPU s, median | sink sent | sink dropped | policy dropped |');
  console.log('|---|---|---|---|---|---|---|---|');
  console.log(`| \`quarry run\`, strict (reference) | ${fmtRate(plain.map((r) => r.perSec))} | ${median(plain.map((r) => r.wall)).toFixed(2)} | ${cpu(plain)} | ${rcpu(plain)} | | | ${plain.map((r) => r.policyDropped).join(', ')} |`);
  const sinkRow = (what, rs) => `| ${what} | ${fmtRate(rs.map((r) => r.perSec))} | ${median(rs.map((r) => r.wall)).toFixed(2)} | ${cpu(rs)} | ${rcpu(rs)} | ${rs.map((r) => r.sink.sent).join(', ')} | ${drops(rs).join(', ')} | ${rs.map((r) => r.policyDropped).join(', ')} |`;
  console.log(sinkRow('strict + best_effort Redis Streams sink, full speed', sinked));
  if (BEFORE) console.log(sinkRow(`before: the same with ${BEFORE}`, before));
  for (const { f, offered, r } of pacedRuns) console.log(`| strict + sink, paced at ${rate(offered)}/s (${f}× strict) for ${PACED_SECONDS} s | ${rate(r.perSec)} | ${r.wall.toFixed(2)} | ${r.cpu.toFixed(2)} | ${r.redisCpu.toFixed(2)} | ${r.sink.sent} | ${r.sink.dropped} | ${r.policyDropped} |`);
  console.log(`\nratio of medians, sink / strict: ${ratio.toFixed(2)} (target ≥ 0.9)`);
  if (BEFORE) console.log(`ratio of medians, before's sink / strict: ${(median(before.map((r) => r.perSec)) / strictRate).toFixed(2)}`);
  console.log(`load average ${loadAtStart.map((x) => x.toFixed(1)).join(' ')} at the start, ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`);
  const counted = [...sinked, ...before, ...pacedRuns.map((p) => p.r)].every((r) => r.sink.sent + r.sink.dropped === r.events);
  console.log(`every event counted (sent + dropped = events) in every sink run: ${counted ? 'yes' : 'NO'}`);
  console.log(`paced at 0.25× (the target): ${paced.sink.dropped === 0 && paced.sink.sent === paced.events ? 'no drops' : `${paced.sink.dropped} DROPPED`}`);
} finally {
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
}
