// The fast no-browser crawl (issue 16 item 3): wall time from spawn to exit
// of `quarry run --depth 1 --parallel 8` over a listing of N detail pages
// (~1 KB, answering after 50 ms; bench/lib/crawl-site.mjs), every page its own
// run stored, validated and promoted, against a bare loop at the same
// parallelism (bench/scripts/bare-crawl.mjs: undici + cheerio, each page's
// item in its own file with fsync, one SQLite row per page with
// synchronous=FULL). Pages per second each, the ratio of medians (target
// ≥ 0.5), the runtime's peak RSS (the `quarry` process's VmHWM) and the CPU
// time of each invocation with every process it waited for (its executor
// slots; read from this process's cutime and cstime, so nothing else may run
// from here meanwhile).
//   node bench/crawl-http.mjs [--pages 500] [--parallel 8] [--rounds 3] [--before /path/to/older/dist/cli/main.js]
// --before alternates a third row: another build's CLI on the same crawl
// (its dist/ needs a node_modules beside it, e.g. a symlink to this one's).
// Needs a built dist/ (npm run build).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCrawlSite } from './lib/crawl-site.mjs';
import { machine, median } from './lib/timing.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const PAGES = Number(arg('pages', '500'));
const PARALLEL = Number(arg('parallel', '8'));
const ROUNDS = Number(arg('rounds', '3'));
const BEFORE = arg('before', undefined);

function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) of the children this process has waited for, from /proc/self/stat. */
function childrenCpu() {
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /s, '').split(' ');
  // After "(comm) ": state is field 3, so cutime (16) and cstime (17) are at 13 and 14 here.
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

async function timedChild(args, cwd = root) {
  const cpu0 = childrenCpu();
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  let peak = 0;
  const poll = setInterval(() => (peak = Math.max(peak, peakRss(child.pid))), 100);
  const code = await new Promise((r) => child.on('close', r));
  clearInterval(poll);
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = childrenCpu() - cpu0;
  if (code !== 0) throw new Error(`node ${args.slice(0, 3).join(' ')} exited ${code}: ${stderr.slice(-2000)}`);
  return { secs, peak, cpu };
}

const site = await startCrawlSite({ pages: PAGES });
const tmp = await mkdtemp(join(tmpdir(), 'quarry-bench-crawl-'));
try {
  const bare = [];
  const quarry = [];
  const before = [];
  // Enqueue targets resolve under the scripts root, the working folder.
  const crawl = async (cli, name) => {
    const report = join(tmp, `report-${name}.json`);
    const r = await timedChild([cli, 'run', '--script', 'crawl-listing.mjs', '--source', 'bench', '--job', JSON.stringify({ base: site.url }),
      '--depth', '1', '--max-runs', String(PAGES + 1), '--parallel', String(PARALLEL), '--storage-path', join(tmp, `data-${name}`), '--report', report, '--quiet'], join(root, 'bench/scripts'));
    const tree = JSON.parse(await readFile(report, 'utf8')).tree;
    if (tree?.succeeded !== PAGES + 1 || tree?.authoritative !== true) throw new Error(`quarry crawl (${cli}): ${JSON.stringify(tree)}`);
    return r;
  };
  for (let round = 0; round < ROUNDS; round++) {
    bare.push(await timedChild([join(root, 'bench/scripts/bare-crawl.mjs'), site.url, join(tmp, `bare-${round}`), String(PARALLEL)]));
    quarry.push(await crawl(join(root, 'dist/cli/main.js'), `${round}`));
    if (BEFORE) before.push(await crawl(BEFORE, `before-${round}`));
  }
  const rate = (rs) => rs.map((r) => PAGES / r.secs);
  const fmt = (xs) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;
  console.log(`${machine()}, ${PAGES} pages at parallel ${PARALLEL}, median (min–max) of ${ROUNDS} alternating rounds\n`);
  const cpu = (rs) => median(rs.map((r) => r.cpu)).toFixed(1);
  console.log('| what | pages/s by wall clock | wall s, median | CPU s, all processes, median | peak RSS MB, median (max) |');
  console.log('|---|---|---|---|---|');
  console.log(`| bare loop: undici + cheerio, file + fsync, SQLite row (FULL) | ${fmt(rate(bare))} | ${median(bare.map((r) => r.secs)).toFixed(1)} | ${cpu(bare)} | |`);
  const row = (label, rs) => {
    const rss = rs.map((r) => r.peak / 1024 / 1024);
    console.log(`| ${label} | ${fmt(rate(rs))} | ${median(rs.map((r) => r.secs)).toFixed(1)} | ${cpu(rs)} | ${median(rss).toFixed(0)} (${Math.max(...rss).toFixed(0)}) |`);
  };
  row(`\`quarry run --depth 1 --parallel ${PARALLEL}\`, every page a validated, promoted run`, quarry);
  if (BEFORE) row(`the same with ${BEFORE}`, before);
  console.log(`| ratio of medians (target ≥ 0.5) | ${(median(rate(quarry)) / median(rate(bare))).toFixed(2)}${BEFORE ? `; before: ${(median(rate(before)) / median(rate(bare))).toFixed(2)}` : ''} | | | |`);
} finally {
  await site.close();
  await rm(tmp, { recursive: true, force: true });
}
