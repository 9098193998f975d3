// How long each process of a `quarry run` outlives a SIGKILL of the runtime
// (SPEC §5, issue 13: "nothing left within a second"), timed per pid.
//
//   node bench/kill-after.mjs [--mode crawl|run|browser-run] [--repeat 3] [--dist DIR]
//     [--kill-point after_claim | --kill-after-ms N | --kill-after-executor-ms N | --kill-after-browser-ms N]
//
// crawl (default): a browser crawl at --parallel 3 whose detail pages never
// answer; the runtime is SIGKILLed once two details are in flight (three
// slots, their reaper, the shared Chromium, its helpers, its reaper).
// run / browser-run: one standalone `quarry run` of a no-browser (or browser)
// script, SIGKILLed at a test-only kill point (default after_claim, as the
// crash campaign does: the executor may still be loading), --kill-after-ms
// after its spawn, or --kill-after-executor-ms after its executor was first
// seen (the executor is then loading its modules), or --kill-after-browser-ms
// after a Chromium of the run was first seen.
//
// Every process carrying the run's environment tag (or in a Chromium's
// process group) is polled every 10 ms through its own /proc/<pid>/stat:
// "killed" is the first poll that saw it unable to run another instruction of
// its own (SIGKILL pending, or exiting: PF_EXITING), "ended" the first that
// saw it a zombie or gone. Times are ms after the kill (the first poll that saw
// the runtime killed, for a kill point). Prints one line per pid and each
// trial's last; needs a built dist/ and, for the browser modes, Chromium.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// --dist: another build (e.g. main's, copied aside) to measure it the same way.
const CLI = join(arg0('dist') ?? join(root, 'dist'), 'cli/main.js');
function arg0(name) {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
}
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? dflt : process.argv[i + 1];
};
const MODE = arg('mode', 'crawl');
const REPEAT = Number(arg('repeat', '3'));
const KILL_POINT = arg('kill-point', 'after_claim');
const KILL_AFTER_MS = arg('kill-after-ms', undefined);
const KILL_AFTER_EXECUTOR_MS = arg('kill-after-executor-ms', undefined);
const KILL_AFTER_BROWSER_MS = arg('kill-after-browser-ms', undefined);
const TAG_VAR = 'QUARRY_BENCH_KILL_TAG';

const sleepSync = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** State of `pid` from its /proc stat: 'run', 'killed', 'zombie' or 'gone'; with its pgid. */
function look(pid) {
  let stat;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return { state: 'gone' };
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const pgid = Number(f[2]);
  if (f[0] === 'Z' || f[0] === 'X') return { state: 'zombie', pgid };
  // flags (field 9): PF_EXITING; signal (field 31): the thread's pending signals, SIGKILL is bit 9.
  if ((Number(f[6]) & 0x4) !== 0 || (Number(f[28]) & 0x100) !== 0) return { state: 'killed', pgid };
  return { state: 'run', pgid };
}

/** What a process is, for the table. */
function role(pid) {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    const comm = readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
    if (comm.startsWith('chrome_crashpad')) return 'crashpad';
    if (/chrom/.test(argv[0] ?? '')) {
      // Chromium's helpers rewrite their command line into one string.
      const type = /--type=(\S+)/.exec(argv.join(' '))?.[1];
      return type ? `chromium ${type}` : 'chromium main';
    }
    if (argv.some((a) => a.endsWith('executor/main.js'))) return 'executor';
    if (argv.some((a) => a.endsWith('cli/main.js'))) return 'runtime';
    if (/(^|\/)(ba|da)?sh$/.test(argv[0] ?? '')) return 'reaper';
    return comm;
  } catch {
    return '?';
  }
}

/** Pids (live, not zombie) carrying `tag`, or in one of `groups`. */
function members(tag, groups) {
  const needle = `${TAG_VAR}=${tag}`;
  const out = new Set();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const l = look(name);
    if (l.state === 'gone' || l.state === 'zombie') continue;
    if (groups.has(l.pgid)) {
      out.add(Number(name));
      continue;
    }
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(needle)) out.add(Number(name));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

function startSite() {
  let details = 0;
  const server = createServer((req, res) => {
    if (req.url === '/list') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>list</title>${Array.from({ length: 6 }, (_, i) => `<a class="detail" href="/detail/${i + 1}">${i + 1}</a>`).join('')}`);
    } else if (req.url?.startsWith('/detail/')) {
      details++; // never answered: the runs hang in their pages
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    details: () => details,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  })));
}

async function trial(n) {
  const tag = randomUUID();
  const dir = mkdtempSync(join(tmpdir(), 'kill-after-'));
  const site = MODE === 'crawl' ? await startSite() : undefined;
  let args;
  let cwd;
  const env = { ...process.env, [TAG_VAR]: tag };
  if (MODE === 'crawl') {
    cwd = join(root, 'bench/scripts/crawl');
    args = ['run', '--script', 'listing.mjs', '--source', 's', '--job', JSON.stringify({ base: site.url }), '--storage-path', join(dir, 'data'), '--depth', '1', '--max-runs', '7', '--parallel', '3', '--quiet'];
  } else {
    cwd = root;
    const script = MODE === 'browser-run' ? 'test/fixtures/crash/browser-rows.ts' : 'test/fixtures/crash/rows.ts';
    args = ['run', '--script', script, '--source', 's', '--storage-path', join(dir, 'data'), '--quiet', '--job', JSON.stringify({ n: 100, delay_ms: 100 })];
    if (KILL_AFTER_MS === undefined && KILL_AFTER_EXECUTOR_MS === undefined && KILL_AFTER_BROWSER_MS === undefined) env.QUARRY_TEST_KILL_POINT = KILL_POINT;
  }
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise((r) => child.once('exit', r));
  const rt = child.pid;
  const seen = new Set();
  const groups = new Set();
  const roles = new Map();
  const note = (p) => {
    seen.add(p);
    if (!roles.has(p)) roles.set(p, role(p));
  };
  let t0;
  if (MODE === 'crawl') {
    const end = Date.now() + 180_000;
    while (site.details() < 2) {
      if (Date.now() > end || child.exitCode !== null) throw new Error(`no details in flight: ${stderr}`);
      await sleep(50);
    }
    for (const p of members(tag, groups)) if (role(p) === 'chromium main') groups.add(p);
    for (const p of members(tag, groups)) note(p);
    note(rt);
    t0 = performance.now();
    process.kill(rt, 'SIGKILL');
  } else {
    // Watch until the runtime is seen killed, collecting what it started.
    let killAt = KILL_AFTER_MS === undefined ? Infinity : performance.now() + Number(KILL_AFTER_MS);
    let lastScan = 0;
    for (;;) {
      const now = performance.now();
      if (now >= killAt) {
        for (const p of members(tag, groups)) note(p);
        t0 = performance.now();
        process.kill(rt, 'SIGKILL');
        break;
      }
      if (look(rt).state !== 'run') {
        t0 = now;
        break;
      }
      if (now - lastScan > 100) {
        note(rt);
        for (const p of members(tag, groups)) {
          note(p);
          if (roles.get(p) === 'chromium main') groups.add(p);
          if (roles.get(p) === 'chromium main' && KILL_AFTER_BROWSER_MS !== undefined && killAt === Infinity) killAt = performance.now() + Number(KILL_AFTER_BROWSER_MS);
          if (roles.get(p) === 'executor' && KILL_AFTER_EXECUTOR_MS !== undefined && killAt === Infinity) killAt = performance.now() + Number(KILL_AFTER_EXECUTOR_MS);
        }
        lastScan = performance.now();
      }
      sleepSync(2);
    }
    // What the last scan missed (started in its last few ms) and is still around.
    for (const p of members(tag, groups)) note(p);
  }
  // Poll each pid's own /proc entry every 10 ms (synchronously: this process's event loop waits).
  const rows = new Map([...seen].map((p) => [p, { pid: p, role: p === rt ? 'runtime' : roles.get(p) ?? role(p), killed: undefined, ended: undefined }]));
  const deadline = t0 + 20_000;
  while (performance.now() < deadline) {
    const at = performance.now() - t0;
    let open = 0;
    for (const r of rows.values()) {
      if (r.ended !== undefined) continue;
      const s = look(r.pid).state;
      if (s === 'killed' || s === 'zombie' || s === 'gone') r.killed ??= at;
      if (s === 'zombie' || s === 'gone') r.ended = at;
      else open++;
    }
    if (open === 0) break;
    sleepSync(10);
  }
  // Started after the last look, still around.
  const late = [...members(tag, new Set())].filter((p) => !rows.has(p));
  const load = loadavg().map((x) => x.toFixed(1)).join(' ');
  const fmt = (x) => (x === undefined ? 'never' : x.toFixed(0).padStart(5));
  process.stdout.write(`\ntrial ${n + 1} (${MODE}${MODE !== 'crawl' ? `, ${KILL_AFTER_BROWSER_MS !== undefined ? `${KILL_AFTER_BROWSER_MS} ms after its Chromium appeared` : KILL_AFTER_EXECUTOR_MS !== undefined ? `${KILL_AFTER_EXECUTOR_MS} ms after the executor appeared` : KILL_AFTER_MS === undefined ? KILL_POINT : `${KILL_AFTER_MS} ms`}` : ''}), load ${load}: ms after the kill\n`);
  const sorted = [...rows.values()].sort((a, b) => (a.killed ?? 1e9) - (b.killed ?? 1e9));
  for (const r of sorted) process.stdout.write(`  ${String(r.pid).padStart(7)} ${r.role.padEnd(24)} killed ${fmt(r.killed)}  ended ${fmt(r.ended)}\n`);
  const lastKilled = Math.max(...sorted.filter((r) => r.role !== 'runtime').map((r) => r.killed ?? Infinity));
  const lastEnded = Math.max(...sorted.filter((r) => r.role !== 'runtime').map((r) => r.ended ?? Infinity));
  const runtime = rows.get(rt);
  process.stdout.write(`  => last killed ${fmt(lastKilled)}, last ended ${fmt(lastEnded)}, runtime ended ${fmt(runtime.ended)}${late.length ? `; started after the list and left: ${late.join(' ')}` : ''}\n`);
  for (const p of members(tag, new Set())) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await exited;
  await site?.close();
  rmSync(dir, { recursive: true, force: true });
  return { lastKilled, lastEnded, rows: sorted };
}

const results = [];
for (let n = 0; n < REPEAT; n++) results.push(await trial(n));
const f = (xs) => xs.map((x) => x.toFixed(0)).join(', ');
process.stdout.write(`\nlast process killed (ms): ${f(results.map((r) => r.lastKilled))}\nlast process ended (ms): ${f(results.map((r) => r.lastEnded))}\n`);
