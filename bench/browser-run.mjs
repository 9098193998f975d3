// A browser run's fixed cost: wall time of `quarry run` of a one-item browser
// script (bench/scripts/browser-one.ts: open one fixture page, emit its title)
// against a bare puppeteer-core script that launches Chromium, opens the same
// page and exits (bench/scripts/bare-browser.mjs). Runs alternate, median of
// --repeat; CPU time (user + system, Chromium included) beside each.
//   node bench/browser-run.mjs [--repeat 5] [--before /path/to/older/dist/cli/main.js]
// --before alternates a third row: another build's CLI on the same script (as in no-browser-run.mjs).
// Needs a built dist/ (npm run build) and Chromium (QUARRY_CHROMIUM_PATH, default /usr/bin/chromium).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSite } from '../examples/site/server.mjs';
import { fmt, machine, median, timed } from './lib/timing.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const REPEAT = Number(arg('repeat', '5'));
const BEFORE = arg('before', undefined);
const CLI = join(root, 'dist/cli/main.js');

const site = await startSite(0);
const tmp = await mkdtemp(join(tmpdir(), 'quarry-bench-browser-'));
try {
  const url = `${site.url}?page=1`;
  const bare = [];
  const quarry = [];
  const runtime = [];
  const before = [];
  for (let n = 0; n < REPEAT; n++) {
    bare.push(await timed([join(root, 'bench/scripts/bare-browser.mjs'), url], root));
    const report = join(tmp, `report-${n}.json`);
    quarry.push(await timed([CLI, 'run', '--script', join(root, 'bench/scripts/browser-one.ts'), '--source', 'bench', '--run-id', `br-${n}`, '--job', JSON.stringify({ url }), '--storage-path', join(tmp, 'data'), '--report', report, '--quiet'], root));
    runtime.push(JSON.parse(await readFile(report, 'utf8')).duration_ms);
    if (BEFORE) before.push(await timed([BEFORE, 'run', '--script', join(root, 'bench/scripts/browser-one.ts'), '--source', 'bench', '--run-id', `br-before-${n}`, '--job', JSON.stringify({ url }), '--storage-path', join(tmp, 'data-before'), '--quiet'], root));
  }
  console.log(`${machine()}\n`);
  console.log(`| what | wall ms, median (min–max) of ${REPEAT} | CPU ms, median |`);
  console.log('|---|---|---|');
  console.log(`| bare puppeteer-core: launch Chromium, open the page, exit (reference) | ${fmt(bare)} |`);
  console.log(`| \`quarry run\` of browser-one.ts | ${fmt(quarry)} |`);
  console.log(`| ratio of wall medians (target ≤ 1.5) | ${(median(quarry.map((r) => r.ms)) / median(bare.map((r) => r.ms))).toFixed(2)} | |`);
  if (BEFORE) console.log(`| before: \`quarry run\` of browser-one.ts with ${BEFORE} (ratio ${(median(before.map((r) => r.ms)) / median(bare.map((r) => r.ms))).toFixed(2)}) | ${fmt(before)} |`);
  console.log(`| of which the runtime's duration_ms (claim → executor → finalize) | ${median(runtime).toFixed(0)} (${Math.min(...runtime)}–${Math.max(...runtime)}) | |`);
} finally {
  await site.close();
  await rm(tmp, { recursive: true, force: true });
}
