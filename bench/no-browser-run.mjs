// A no-browser run's fixed cost: wall time of `quarry run` of a one-item
// no-browser .ts script (bench/scripts/get-one.ts) that GETs one fixture page,
// against a bare node script doing the same GET and writing one file with
// fsync (bench/scripts/bare-get.mjs). Runs alternate, median of --repeat.
// Also times the parts a run is made of, so a miss can be explained:
// node start, the CLI's start (--help), the executor loading the script
// (--validate), and the runtime's own duration_ms from the report.
// CPU time (user + system, children included) is printed beside each wall
// time: on a shared machine it moves less than wall time does.
//   node bench/no-browser-run.mjs [--repeat 5] [--before /path/to/older/dist/cli/main.js]
// --before alternates a third row: another build's CLI (e.g. main before a
// change, built in a copy of the tree with its own node_modules link) on the same script.
// Needs a built dist/ (npm run build).
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
const CLI = join(root, 'dist/cli/main.js');
const EXECUTOR = join(root, 'dist/executor/main.js');
const SCRIPT = join(root, 'bench/scripts/get-one.ts');
const BEFORE = arg('before', undefined);

const site = await startSite(0);
const tmp = await mkdtemp(join(tmpdir(), 'quarry-bench-nobrowser-'));
try {
  const url = `${site.url}?page=1`;
  const bare = [];
  const quarry = [];
  const runtime = [];
  const before = [];
  for (let i = 0; i < REPEAT; i++) {
    bare.push(await timed([join(root, 'bench/scripts/bare-get.mjs'), url, join(tmp, `bare-${i}.json`)], root));
    const report = join(tmp, `report-${i}.json`);
    quarry.push(await timed([CLI, 'run', '--script', SCRIPT, '--source', 'bench', '--run-id', `nb-${i}`, '--job', JSON.stringify({ url }), '--storage-path', join(tmp, 'data'), '--report', report, '--quiet'], root));
    runtime.push(JSON.parse(await readFile(report, 'utf8')).duration_ms);
    if (BEFORE) before.push(await timed([BEFORE, 'run', '--script', SCRIPT, '--source', 'bench', '--run-id', `nb-before-${i}`, '--job', JSON.stringify({ url }), '--storage-path', join(tmp, 'data-before'), '--quiet'], root));
  }
  const parts = { node: [], help: [], validate: [], undici: [] };
  for (let i = 0; i < REPEAT; i++) {
    parts.node.push(await timed(['-e', '0'], root));
    parts.help.push(await timed([CLI, 'run', '--help'], root));
    parts.validate.push(await timed([EXECUTOR, '--validate', SCRIPT], root));
    parts.undici.push(await timed(['-e', "require('undici')"], root));
  }
  const ratio = median(quarry.map((r) => r.ms)) / median(bare.map((r) => r.ms));
  console.log(`${machine()}\n`);
  console.log(`| what | wall ms, median (min–max) of ${REPEAT} | CPU ms, median |`);
  console.log('|---|---|---|');
  console.log(`| bare node: GET + write + fsync (reference) | ${fmt(bare)} |`);
  console.log(`| \`quarry run\` of get-one.ts, no browser | ${fmt(quarry)} |`);
  console.log(`| ratio of wall medians (target ≤ 3) | ${ratio.toFixed(2)} | |`);
  if (BEFORE) console.log(`| before: \`quarry run\` of get-one.ts with ${BEFORE} (ratio ${(median(before.map((r) => r.ms)) / median(bare.map((r) => r.ms))).toFixed(2)}) | ${fmt(before)} |`);
  console.log(`| of which the runtime's duration_ms (claim → executor → finalize) | ${median(runtime).toFixed(0)} (${Math.min(...runtime)}–${Math.max(...runtime)}) | |`);
  console.log(`| parts: \`node -e 0\` | ${fmt(parts.node)} |`);
  console.log(`| parts: \`quarry run --help\` (CLI start) | ${fmt(parts.help)} |`);
  console.log(`| parts: executor \`--validate get-one.ts\` (node + executor modules + script load) | ${fmt(parts.validate)} |`);
  console.log(`| parts: node requiring undici's entry (a direct ctx.http request loads only its Agent and request) | ${fmt(parts.undici)} |`);
} finally {
  await site.close();
  await rm(tmp, { recursive: true, force: true });
}
