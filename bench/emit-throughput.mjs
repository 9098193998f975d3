// Emit throughput, end to end through `quarry run`, per policy, beside the bare
// pipe ceiling measured in the same run. Prints a Markdown table.
//   node bench/emit-throughput.mjs [--n 100000,1000000] [--policies strict,buffered,streaming]
// Items/s counts from the first to the last item's executor timestamp, so the
// browser launch is left out; wall time includes everything.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameDecoder } from '../dist/protocol/codec.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const sizes = arg('n', '100000,1000000').split(',').map(Number);
const policies = arg('policies', 'strict,buffered,streaming').split(',');
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

async function pipeCeiling(n) {
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [join(root, 'bench/pipe-child.mjs'), String(n)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const dec = new FrameDecoder();
  let count = 0;
  for await (const chunk of child.stdout) count += dec.push(chunk).length;
  dec.end();
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  if (count !== n) throw new Error(`pipe ceiling: got ${count} of ${n} frames`);
  return n / secs;
}

async function quarryRun(policy, n, dir) {
  const report = join(dir, `${policy}-${n}.json`);
  const args = [join(root, 'dist/cli/main.js'), 'run', '--script', join(root, 'bench/scripts/emit-items.mjs'), '--source', 'bench',
    '--job', JSON.stringify({ n }), '--storage-path', dir, '--report', report, '--quiet', ...POLICY_FLAGS[policy]];
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  let peak = 0;
  const poll = setInterval(() => (peak = Math.max(peak, peakRss(child.pid))), 50);
  const code = await new Promise((r) => child.on('exit', r));
  clearInterval(poll);
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`quarry run (${policy}, ${n}) exited ${code}`);
  const r = JSON.parse(await readFile(report, 'utf8'));
  // First and last item timestamps, from the stored records.
  const { readManifest, streamRecords } = await import('../dist/storage/reader.js');
  const { FsBackend } = await import('../dist/storage/fs-backend.js');
  const fs = await FsBackend.create(dir);
  const m = await readManifest(fs, parseRun(r.storage.partition));
  let first, last, items = 0;
  for await (const rec of streamRecords(fs, m, { eventTypes: ['item'] })) {
    first ??= rec.ts;
    last = rec.ts;
    items++;
  }
  await fs.close();
  if (items !== n) throw new Error(`${policy}: stored ${items} of ${n} items`);
  const secs = (Date.parse(last) - Date.parse(first)) / 1000;
  return { itemsPerSec: n / Math.max(secs, 0.001), wall, peakRss: peak };
}

function parseRun(prefix) {
  const m = /^datasets\/([^/]+)\/partitions\/source=([^/]+)\/category=([^/]+)\/day=([^/]+)\/run_id=([^/]+)\//.exec(prefix);
  return { dataset: m[1], source: m[2], category: m[3], day: m[4], run_id: m[5] };
}

const fmt = (x) => Math.round(x).toLocaleString('en-US');
const mb = (b) => `${(b / 1024 / 1024).toFixed(0)} MB`;
const dir = await mkdtemp(join(tmpdir(), 'quarry-bench-'));
try {
  process.stdout.write(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${mb(totalmem())} RAM, node ${process.versions.node}\n\n`);
  process.stdout.write('| policy | items | items/s (end to end) | bare pipe items/s | ratio to pipe | wall (s) | runtime peak RSS |\n|---|---|---|---|---|---|---|\n');
  for (const n of sizes) {
    const ceiling = await pipeCeiling(n);
    for (const policy of policies) {
      const r = await quarryRun(policy, n, dir);
      process.stdout.write(`| ${policy} | ${fmt(n)} | ${fmt(r.itemsPerSec)} | ${fmt(ceiling)} | ${(r.itemsPerSec / ceiling).toFixed(2)} | ${r.wall.toFixed(1)} | ${mb(r.peakRss)} |\n`);
    }
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
