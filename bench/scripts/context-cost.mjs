// What a fresh BrowserContext per page costs in a bare puppeteer-core loop
// (issue 13, docs/benchmarks.md "What a BrowserContext costs"): N detail pages
// (~1 KB, answered after 50 ms) at a given parallelism, each in a new context
// and page (`context`) or in a tab reused per worker (`tab`), with Chromium's
// usual flags (src/runtime/chromium.ts) plus any given after `--`. Prints one
// JSON line: pages/s, the mean wall ms of each step, the CPU time of the whole
// browser tree (user + system of this process's waited-for children: Chromium
// reaps its helpers, so their time is in it) per page, and how many renderer
// processes Chromium started (sampled every 20 ms from /proc, so a short-lived
// one may be missed; `--count` turns that on, it costs CPU).
// `--quarry-flags`: only the flags quarry's shared browser is spawned with
// (src/runtime/shared-browser.ts), none of puppeteer's defaults.
//   node bench/scripts/context-cost.mjs [--pages 40] [--parallel 4] [--mode context|tab] [--count] [--quarry-flags] [-- extra chromium flags]
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import puppeteer from 'puppeteer-core';

const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const own = dash === -1 ? argv : argv.slice(0, dash);
const extra = dash === -1 ? [] : argv.slice(dash + 1);
const arg = (name, dflt) => {
  const i = own.indexOf(`--${name}`);
  return i === -1 ? dflt : own[i + 1];
};
const PAGES = Number(arg('pages', '40'));
const PARALLEL = Number(arg('parallel', '4'));
const MODE = arg('mode', 'context');
const COUNT = own.includes('--count');
/** Launch with quarry's shared-browser flags only (src/runtime/shared-browser.ts), not puppeteer's defaults. */
const QUARRY_FLAGS = own.includes('--quarry-flags');
const FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'];

const filler = 'x'.repeat(800);
const server = createServer((req, res) => {
  const m = /^\/detail\/(\d+)$/.exec(req.url ?? '');
  if (!m) return res.writeHead(404).end();
  setTimeout(() => res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>Detail ${m[1]}</title><h1>Detail ${m[1]}</h1><p class="price">${Number(m[1]) * 100}</p><p>${filler}</p>`), 50);
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${server.address().port}`;

/** user + system CPU ms of this process's waited-for children (fields 16 and 17 of /proc/self/stat, in ticks of 10 ms). */
const childCpuMs = () => {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * 10;
};

/** Renderer pids seen in the tree under `root`. */
const renderers = new Set();
const scan = (root) => {
  const kids = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(name));
    } catch {
      // gone
    }
  }
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop();
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'latin1').includes('--type=renderer')) renderers.add(p);
    } catch {
      // gone
    }
    stack.push(...(kids.get(p) ?? []));
  }
};

const cpu0 = childCpuMs();
const self0 = process.cpuUsage();
const t0 = performance.now();
const browser = await puppeteer.launch({
  executablePath: process.env.QUARRY_CHROMIUM_PATH ?? '/usr/bin/chromium', headless: true, pipe: true,
  ...(QUARRY_FLAGS ? { ignoreDefaultArgs: true, args: [...FLAGS, '--disable-breakpad', '--disable-crash-reporter', ...extra, 'about:blank'] } : { args: [...FLAGS, ...extra] }),
});
const launchMs = performance.now() - t0;
const sampler = COUNT ? setInterval(() => scan(browser.process().pid), 20) : undefined;
const steps = { context: 0, page: 0, goto: 0, extract: 0, close: 0 };
let items = 0;
const tRun = performance.now();
let next = 0;
await Promise.all(Array.from({ length: PARALLEL }, async () => {
  const tab = MODE === 'tab' ? await browser.newPage() : undefined;
  while (next < PAGES) {
    const url = `${base}/detail/${++next}`;
    let t = performance.now();
    const lap = (k) => {
      const now = performance.now();
      steps[k] += now - t;
      t = now;
    };
    const context = tab ? undefined : await browser.createBrowserContext();
    lap('context');
    const page = tab ?? (await context.newPage());
    lap('page');
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    lap('goto');
    if (Number(await page.$eval('p.price', (p) => p.textContent)) > 0) items++;
    lap('extract');
    await context?.close();
    lap('close');
  }
}));
const runMs = performance.now() - tRun;
if (sampler) clearInterval(sampler);
await browser.close();
server.close();
const self = process.cpuUsage(self0);
const cpu = childCpuMs() - cpu0;
const r = (x) => Math.round(x);
process.stdout.write(`${JSON.stringify({
  mode: MODE, parallel: PARALLEL, pages: PAGES, items, launch: QUARRY_FLAGS ? 'quarry flags' : 'puppeteer defaults', flags: extra.join(' '),
  pagesPerS: Number(((PAGES * 1000) / runMs).toFixed(2)), launchMs: r(launchMs),
  stepMs: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, r(v / PAGES)])),
  browserCpuMsPerPage: r(cpu / PAGES), nodeCpuMsPerPage: r((self.user + self.system) / 1000 / PAGES),
  ...(COUNT ? { renderers: renderers.size } : {}),
})}\n`);
