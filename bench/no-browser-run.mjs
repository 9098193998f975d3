// A no-browser run's fixed cost: wall time of `quarry run` of a one-item
// no-browser .ts script (bench/scripts/get-one.ts) that GETs one fixture page,
// against a bare node script doing the same GET and writing one file with
// fsync (bench/scripts/bare-get.mjs). Runs alternate, median of --repeat.
// Also times the parts a run is made of, so a miss can be explained:
// node start, the CLI's start (--help), the executor loading the script
// through tsx (--validate), and the runtime's own duration_ms from the report.
//   node bench/no-browser-run.mjs [--repeat 5]
// Needs a built dist/ (npm run build).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSite } from '../examples/site/server.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const REPEAT = Number(arg('repeat', '5'));
const CLI = join(root, 'dist/cli/main.js');
const EXECUTOR = join(root, 'dist/executor/main.js');
const SCRIPT = join(root, 'bench/scripts/get-one.ts');

/**
 * Runs a command to the end; resolves with its wall time in ms. Asynchronous on
 * purpose: the fixture site answers from this process's event loop.
 */
function timed(args) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) reject(new Error(`node ${args.join(' ')} exited ${code}: ${stderr}`));
      else resolve(ms);
    });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs) => `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;

const site = await startSite(0);
const tmp = await mkdtemp(join(tmpdir(), 'quarry-bench-nobrowser-'));
try {
  const url = `${site.url}?page=1`;
  const bare = [];
  const quarry = [];
  const runtime = [];
  for (let i = 0; i < REPEAT; i++) {
    bare.push(await timed([join(root, 'bench/scripts/bare-get.mjs'), url, join(tmp, `bare-${i}.json`)]));
    const report = join(tmp, `report-${i}.json`);
    quarry.push(await timed([CLI, 'run', '--script', SCRIPT, '--source', 'bench', '--run-id', `nb-${i}`, '--job', JSON.stringify({ url }), '--storage-path', join(tmp, 'data'), '--report', report, '--quiet']));
    runtime.push(JSON.parse(await readFile(report, 'utf8')).duration_ms);
  }
  const parts = { node: [], help: [], validate: [], puppeteer: [], tsx: [] };
  for (let i = 0; i < REPEAT; i++) {
    parts.node.push(await timed(['-e', '0']));
    parts.help.push(await timed([CLI, 'run', '--help']));
    parts.validate.push(await timed([EXECUTOR, '--validate', SCRIPT]));
    parts.puppeteer.push(await timed(['--input-type=module', '-e', "await import('puppeteer-core')"]));
    parts.tsx.push(await timed(['--input-type=module', '-e', "await import('tsx/esm/api')"]));
  }
  const ratio = median(quarry) / median(bare);
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
  console.log('| what | median ms (min–max), ' + REPEAT + ' runs |');
  console.log('|---|---|');
  console.log(`| bare node: GET + write + fsync (reference) | ${fmt(bare)} |`);
  console.log(`| \`quarry run\` of get-one.ts, no browser | ${fmt(quarry)} |`);
  console.log(`| ratio of medians (target ≤ 3) | ${ratio.toFixed(2)} |`);
  console.log(`| of which the runtime's duration_ms (claim → executor → finalize) | ${fmt(runtime)} |`);
  console.log(`| parts: \`node -e 0\` | ${fmt(parts.node)} |`);
  console.log(`| parts: \`quarry run --help\` (CLI start) | ${fmt(parts.help)} |`);
  console.log(`| parts: executor \`--validate get-one.ts\` (node + executor modules + tsx + script load) | ${fmt(parts.validate)} |`);
  console.log(`| parts: node importing \`puppeteer-core\` alone (loaded only when a browser is launched or connected) | ${fmt(parts.puppeteer)} |`);
  console.log(`| parts: node importing \`tsx/esm/api\` alone | ${fmt(parts.tsx)} |`);
} finally {
  await site.close();
  await rm(tmp, { recursive: true, force: true });
}
