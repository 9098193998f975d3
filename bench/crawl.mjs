// A browser crawl's throughput and memory (issue 13): `quarry run --depth 1`
// of a listing and N detail pages (~1 KB each, answering after 50 ms), against
// two bare puppeteer-core loops over the same site at the same parallelism in
// the same run (bench/scripts/crawl-loop.mjs): one with a new BrowserContext
// per URL (what quarry gives each run), one reusing a tab per worker. Runs
// alternate; each figure is the median of --repeat. Whole-tree PSS is the
// peak, sampled every 250 ms, of the sum of /proc/<pid>/smaps_rollup Pss over
// the measured process and its descendants (Chromium and its helpers, quarry's
// executors and browser host). Every quarry run must end with every page
// stored, the tree validated and promoted (exit 0, authoritative), or the
// bench fails. CPU is user + system time of the measured process and every
// descendant it waited for (this process's cutime and cstime over the run);
// the PSS sampler's own CPU (it reads /proc in this process) is reported apart.
// --before alternates another build's quarry (a dist/ folder with node_modules
// reachable from it) as a fourth row. --same-flags adds the new-context loop
// with Chromium on quarry's own flags (no spare renderer, no omnibox popups):
// the plain loop is what a user writes with the usual flags; this one shows
// how much of quarry's lead over it is the flags rather than the run slots.
//   node bench/crawl.mjs [--pages 500] [--parallel 1,2,4] [--repeat 3] [--before /path/to/dist] [--same-flags]
// Needs a built dist/ (npm run build) and Chromium (QUARRY_CHROMIUM_PATH, default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machine, median } from './lib/timing.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(root, 'dist/cli/main.js');
const SCRIPTS = join(root, 'bench/scripts/crawl');
const LOOP = join(root, 'bench/scripts/crawl-loop.mjs');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const PAGES = Number(arg('pages', '500'));
const PARALLEL = arg('parallel', '1,2,4').split(',').map(Number);
const REPEAT = Number(arg('repeat', '3'));
const BEFORE = arg('before', undefined);
const SAME_FLAGS = process.argv.includes('--same-flags');
const DELAY_MS = 50;

/** The fixture site: /list links every detail; /detail/N is ~1 KB, sent after 50 ms. */
function startSite() {
  const filler = 'x'.repeat(800);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const detail = /^\/detail\/(\d+)$/.exec(path);
    if (path === '/list') {
      const links = Array.from({ length: PAGES }, (_, i) => `<a class="detail" href="/detail/${i + 1}">${i + 1}</a>`).join('');
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>list</title>${links}`);
    } else if (detail) {
      setTimeout(() => res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>Detail ${detail[1]}</title><h1>Detail ${detail[1]}</h1><p class="price">${Number(detail[1]) * 100}</p><p>${filler}</p>`), DELAY_MS);
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) })));
}

/** Sum of Pss (kB) over `pid` and every descendant alive now. */
function treePssKb(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // exited
    }
  }
  let kb = 0;
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop();
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch {
      // exited, or a zombie
    }
    stack.push(...(children.get(p) ?? []));
  }
  return kb;
}

/** CPU ms (user + system) of this process's children that were waited for: fields 16 and 17 of /proc/self/stat, in ticks. */
function childrenCpuMs() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

/** Runs `node args` in `cwd`; resolves with wall ms, CPU ms of the whole tree, peak whole-tree PSS (MB), the sampler's CPU ms and stdout. */
function measured(args, cwd) {
  return new Promise((resolve, reject) => {
    const cpu0 = childrenCpuMs();
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    let peakKb = 0;
    let samplerUs = 0;
    const sample = setInterval(() => {
      const c = process.cpuUsage();
      peakKb = Math.max(peakKb, treePssKb(child.pid));
      const d = process.cpuUsage(c);
      samplerUs += d.user + d.system;
    }, 250);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(sample);
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`node ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      else resolve({ ms, cpuMs: childrenCpuMs() - cpu0, pssMb: peakKb / 1024, samplerMs: samplerUs / 1000, out });
    });
  });
}

async function quarryCrawl(site, parallel, tmp, n, cli = CLI) {
  const report = join(tmp, `report-${parallel}-${n}-${cli === CLI ? 'now' : 'before'}.json`);
  const r = await measured([cli, 'run', '--script', 'listing.mjs', '--source', 'bench', '--job', JSON.stringify({ base: site.url }), '--storage-path', join(tmp, `data-${parallel}-${n}-${cli === CLI ? 'now' : 'before'}`),
    '--depth', '1', '--max-runs', String(PAGES + 1), '--parallel', String(parallel), '--quiet', '--report', report], SCRIPTS);
  const rep = JSON.parse(await readFile(report, 'utf8'));
  const items = rep.runs.reduce((s, run) => s + (run.outcome === 'success' ? run.items : 0), 0);
  if (rep.exit_code !== 0 || rep.tree.authoritative !== true || rep.tree.succeeded !== PAGES + 1 || items !== PAGES) {
    throw new Error(`quarry crawl at parallel ${parallel}: exit ${rep.exit_code}, authoritative ${rep.tree.authoritative}, ${rep.tree.succeeded} runs succeeded, ${items} items (want ${PAGES + 1} runs, ${PAGES} items)`);
  }
  return { ...r, runs: rep.tree.succeeded };
}

async function loop(site, parallel, mode) {
  const r = await measured([LOOP, site.url, String(parallel), mode], root);
  const { items } = JSON.parse(r.out);
  if (items !== PAGES) throw new Error(`${mode} loop at parallel ${parallel}: ${items} items, want ${PAGES}`);
  return r;
}

const loadAtStart = loadavg().map((l) => l.toFixed(1)).join(' ');
const site = await startSite();
const tmp = await mkdtemp(join(tmpdir(), 'quarry-bench-crawl-'));
try {
  const rows = [];
  for (const p of PARALLEL) {
    const got = { quarry: [], context: [], tab: [], before: [], flags: [] };
    for (let n = 0; n < REPEAT; n++) {
      // Alternate who goes first, so a machine getting busier or quieter weighs on each alike.
      const order = [['quarry', () => quarryCrawl(site, p, tmp, n)], ['context', () => loop(site, p, 'context')], ['tab', () => loop(site, p, 'tab')]];
      if (BEFORE) order.splice(1, 0, ['before', () => quarryCrawl(site, p, tmp, n, join(BEFORE, 'cli/main.js'))]);
      if (SAME_FLAGS) order.push(['flags', () => loop(site, p, 'context-flags')]);
      for (let k = 0; k < order.length; k++) {
        const [name, fn] = order[(k + n) % order.length];
        got[name].push(await fn());
      }
    }
    rows.push({ p, got });
  }
  const pagesPerS = (rs) => median(rs.map((r) => ((PAGES + 1) * 1000) / r.ms));
  const pss = (rs) => median(rs.map((r) => r.pssMb));
  const cpuPerPage = (rs) => median(rs.map((r) => r.cpuMs / (PAGES + 1)));
  const samplerShare = (rs) => median(rs.map((r) => (100 * r.samplerMs) / r.ms));
  console.log(`${machine()} at the end (${loadAtStart} at the start)\n${PAGES} detail pages + 1 listing, ${DELAY_MS} ms per detail answer, median of ${REPEAT} alternating runs\n`);
  console.log('| parallel | quarry pages/s | new-context loop pages/s | tab-reuse loop pages/s | quarry ÷ new-context (target ≥ 0.8 at 4) | per-run overhead ms (quarry − new-context, per slot) | quarry PSS MB | new-context loop PSS MB | PSS budget MB (loop + 100 + 60 × parallel) |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const { p, got } of rows) {
    const q = pagesPerS(got.quarry);
    const c = pagesPerS(got.context);
    const overhead = (p * 1000) / q - (p * 1000) / c;
    console.log(`| ${p} | ${q.toFixed(2)} | ${c.toFixed(2)} | ${pagesPerS(got.tab).toFixed(2)} | ${(q / c).toFixed(2)} | ${overhead.toFixed(0)} | ${pss(got.quarry).toFixed(0)} | ${pss(got.context).toFixed(0)} | ${(pss(got.context) + 100 + 60 * p).toFixed(0)} |`);
  }
  console.log('\n| parallel | what | pages/s | ÷ new-context | wall s | CPU ms per page (whole tree) | PSS sampler CPU, % of wall |');
  console.log('|---|---|---|---|---|---|---|');
  for (const { p, got } of rows) {
    for (const [name, rs] of Object.entries(got)) {
      if (rs.length === 0) continue;
      const label = { quarry: 'quarry', before: `quarry before (${BEFORE})`, context: 'new-context loop', tab: 'tab-reuse loop', flags: "new-context loop on quarry's Chromium flags" }[name];
      console.log(`| ${p} | ${label} | ${pagesPerS(rs).toFixed(2)} | ${(pagesPerS(rs) / pagesPerS(got.context)).toFixed(2)} | ${(median(rs.map((r) => r.ms)) / 1000).toFixed(1)} | ${cpuPerPage(rs).toFixed(0)} | ${samplerShare(rs).toFixed(1)} |`);
    }
  }
} finally {
  await site.close();
  await rm(tmp, { recursive: true, force: true });
}
