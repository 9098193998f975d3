/**
 * Browser reuse (SPEC §10) with real Chromium: one Chromium, launched by the
 * runtime, serves every slot of a parallel crawl; a Chromium SIGKILLed
 * mid-crawl fails the runs in flight, which are retried on a relaunched one;
 * a runtime SIGKILLed takes slots and browser along within a second and its profile is swept
 * by the next run; `--no-browser-reuse` launches one per run;
 * a run's proxy on the shared browser carries its traffic, loopback included.
 *
 * Browsers are counted among the descendants of the `quarry run` process (a
 * Chromium main process: the binary without `--type=`), never by name
 * machine-wide, where other crawls may run.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { deadPort, startAuthProxy, type AuthProxy } from '../_harness/auth-proxy.js';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { startCrawlSite, type CrawlSite } from '../_harness/crawl-site.js';
import { goneOrDying, groupProcesses, killTagged, newTag, procStat, taggedProcesses, timeUntil } from '../_harness/proc-tag.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { CHROMIUM_PROFILE_PREFIX, ownerTag } from '../../src/runtime/owner-tag.js';

const CRAWL = join(REPO_ROOT, 'test/fixtures/crawl-site');
const PROXY_SCRIPTS = join(REPO_ROOT, 'test/fixtures/proxy');

let site: CrawlSite | undefined;
let tmp: TempDir | undefined;
let proxy: AuthProxy | undefined;
const tags: string[] = [];
afterEach(async () => {
  for (const t of tags.splice(0)) killTagged(t);
  await site?.close();
  await proxy?.close();
  await tmp?.remove();
  site = undefined;
  proxy = undefined;
  tmp = undefined;
});

/** Parent of each live process, from /proc. */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (after[0] === 'Z' || after[0] === 'X') continue;
      out.set(Number(name), Number(after[1]));
    } catch {
      // Gone while we looked.
    }
  }
  return out;
}

/** Whether `pid` runs Chromium (its binary, any process type). */
function isChromium(pid: number): { chromium: boolean; typed: boolean } {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
    return { chromium: /\/chromium$/.test(argv[0] ?? ''), typed: argv.some((a) => a.startsWith('--type=')) };
  } catch {
    return { chromium: false, typed: false };
  }
}

/**
 * Chromium main processes below `root`, each with its parent pid: a Chromium
 * process without `--type=` whose parent is not Chromium (a main process's
 * own short-lived forks carry its command line until they exec).
 */
function browsersUnder(root: number): Array<{ pid: number; parent: number }> {
  const pp = parents();
  const out: Array<{ pid: number; parent: number }> = [];
  for (const [pid, parent] of pp) {
    let p: number | undefined = parent;
    while (p !== undefined && p !== root && p > 1) p = pp.get(p);
    if (p !== root) continue;
    const me = isChromium(pid);
    if (me.chromium && !me.typed && !isChromium(parent).chromium) out.push({ pid, parent });
  }
  return out;
}

/** Watches a running `quarry` for browsers below it until stopped. */
function watchBrowsers(): { onSpawn: (c: ChildProcess) => void; seen: Map<number, number>; pid: () => number; stop: () => void } {
  const seen = new Map<number, number>();
  let root = 0;
  const timer = setInterval(() => {
    if (root) for (const b of browsersUnder(root)) seen.set(b.pid, b.parent);
  }, 100);
  return { onSpawn: (c) => (root = c.pid!), seen, pid: () => root, stop: () => clearInterval(timer) };
}

interface Report { tree: { admitted: number; succeeded: number }; runs: Array<{ run_id: string; attempt: number; outcome: string; message: string }> }

async function detailIds(storage: string): Promise<number[]> {
  const read = await quarry(['read', '--storage-path', storage, '--type', 'item']);
  expect(read.code, read.stderr).toBe(0);
  return read.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { id?: number } } }).payload)
    .filter((p) => p.item_type === 'detail').map((p) => p.data.id!).sort((a, b) => a - b);
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

async function crawl(details: number, flags: string[], o: { detailDelayMs?: number; onSpawn?: (c: ChildProcess) => void; env?: Record<string, string> } = {}): Promise<{ r: CliResult; storage: string; report: Report }> {
  site = await startCrawlSite({ details, ...(o.detailDelayMs !== undefined ? { detailDelayMs: o.detailDelayMs } : {}) });
  tmp = await makeTempDir('browser-reuse');
  const storage = join(tmp.path, 'data');
  const reportPath = join(tmp.path, 'report.json');
  const r = await quarry(['run', '--script', 'browser-listing.mjs', '--source', 'site', '--day', '2026-11-24', '--job', JSON.stringify({ base: site.url }),
    '--storage-path', storage, '--report', reportPath, '--depth', '1', '--max-runs', String(details + 1), '--quiet', ...flags],
  { cwd: CRAWL, timeoutMs: 240_000, ...(o.onSpawn ? { onSpawn: o.onSpawn } : {}), ...(o.env ? { env: o.env } : {}) });
  const report = JSON.parse(await readFile(reportPath, 'utf8').catch(() => '{"runs":[]}')) as Report;
  return { r, storage, report };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('browser reuse (SPEC §10)', { timeout: 300_000 }, () => {
  it('one Chromium, the runtime\'s, serves every slot of a parallel crawl', async () => {
    const w = watchBrowsers();
    const { r, storage } = await crawl(12, ['--parallel', '4'], { onSpawn: w.onSpawn });
    w.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(await detailIds(storage)).toEqual(range(12));
    // One browser for the whole crawl, a child of the runtime itself: no slot launched its own.
    expect([...w.seen.entries()], JSON.stringify([...w.seen.entries()])).toEqual([[expect.any(Number), w.pid()]]);
    // Its profile went with it.
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`${CHROMIUM_PROFILE_PREFIX}${ownerTag(w.pid())}-`))).toEqual([]);
  });

  it('a slot\'s runs leave no context behind on the shared browser, though each run_result is written before its context\'s close', async () => {
    site = await startCrawlSite({ details: 10 });
    tmp = await makeTempDir('browser-reuse');
    const storage = join(tmp.path, 'data');
    const r = await quarry(['run', '--script', 'browser-listing.mjs', '--source', 'site', '--day', '2026-11-24', '--job', JSON.stringify({ base: site.url, detail: './browser-contexts-detail.mjs' }),
      '--storage-path', storage, '--depth', '1', '--max-runs', '11', '--parallel', '1', '--quiet'], { cwd: CRAWL, timeoutMs: 240_000 });
    expect(r.code, r.stderr).toBe(0);
    const read = await quarry(['read', '--storage-path', storage, '--type', 'item']);
    expect(read.code, read.stderr).toBe(0);
    const details = read.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { id: number; contexts: number } } }).payload)
      .filter((p) => p.item_type === 'detail');
    expect(details.map((d) => d.data.id).sort((a, b) => a - b)).toEqual(range(10));
    // One slot: the default context, the run's own and the next one's prepared ahead; never an earlier run's
    // (the slot waits for the close before its next run, src/executor/program.ts).
    for (const d of details) expect(d.data.contexts, JSON.stringify(details.map((x) => x.data))).toBeLessThanOrEqual(3);
  });

  it('a Chromium SIGKILLed mid-crawl fails the runs in flight, which are retried on a relaunched browser', async () => {
    const w = watchBrowsers();
    let killed = 0;
    const crawling = crawl(8, ['--parallel', '3', '--retries', '2'], { detailDelayMs: 1500, onSpawn: w.onSpawn });
    await until(() => site !== undefined && site.log.some((l) => l.path.startsWith('/detail/')), 120_000, 'a detail request');
    const [victim] = browsersUnder(w.pid());
    expect(victim).toBeDefined();
    process.kill(victim!.pid, 'SIGKILL');
    killed = victim!.pid;
    const { r, storage, report } = await crawling;
    w.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(await detailIds(storage)).toEqual(range(8));
    const crashed = report.runs.filter((x) => x.outcome === 'executor_crash');
    expect(crashed.length, JSON.stringify(report.runs)).toBeGreaterThan(0);
    // Each crashed run's item succeeded on a later attempt.
    expect(report.runs.filter((x) => x.outcome === 'success')).toHaveLength(9);
    // The relaunched browser is another process, still the runtime's own.
    const others = [...w.seen.entries()].filter(([pid]) => pid !== killed);
    expect(others.length).toBeGreaterThan(0);
    for (const [, parent] of others) expect(parent).toBe(w.pid());
  });

  it('a runtime SIGKILLed mid-crawl has everything killed within a second (slots, browser and its helpers), and its profile is swept by the next run', async () => {
    const { tag, env } = newTag();
    tags.push(tag);
    let child: ChildProcess | undefined;
    const crawling = crawl(6, ['--parallel', '3'], { detailDelayMs: 60_000, onSpawn: (c) => (child = c), env });
    await until(() => site !== undefined && site.log.filter((l) => l.path.startsWith('/detail/')).length >= 2, 120_000, 'details in flight');
    const pid = child!.pid!;
    const browsers = browsersUnder(pid);
    expect(browsers).toHaveLength(1);
    // Everything to outlive the runtime if anything did: the tagged processes (slots, reapers,
    // Chromium and its crash handlers) and Chromium's helpers, which may not carry the tag.
    const groups = new Set(browsers.map((b) => procStat(b.pid)!.pgid));
    const before = [...new Map([...taggedProcesses(tag), ...groupProcesses(groups)].map((l) => [l.split(' ')[0], l])).values()];
    expect(before.length, before.join('\n')).toBeGreaterThan(4);
    const killedAt = performance.now();
    child!.kill('SIGKILL');
    // SPEC §5 asks that nothing be left running a second after the runtime dies. Asserted: no
    // process is seen running and not killed (gone, SIGKILL pending or exiting: it runs no more code
    // of its own) past KILLED_MS, and all are gone later. Timed by pid, every 10 ms (a /proc scan of
    // every process's environment takes hundreds of ms under load); the poller may itself wait for
    // CPU, so the last time one was seen running is what is asserted. The runtime's reaper sees the
    // SIGKILL pending in the runtime's /proc stat within its 50 ms look and kills everything at
    // once: measured on two cores at load 16-30, all killed within 23-108 ms, gone within 0.9-1.1 s
    // (the kernel tearing down Chromium's processes; docs/benchmarks.md). Without the reaper the
    // helpers and crash handlers live on for seconds (they wait for their pipes), so this fails.
    const KILLED_MS = 1000;
    const killed = await timeUntil(before, goneOrDying, killedAt, 10_000);
    expect(killed.left, killed.left.join('\n')).toEqual([]);
    expect(killed.seenMs, `a process was still running ${Math.round(killed.seenMs)} ms after the runtime was killed (the last of ${before.length} seen killed at ${Math.round(killed.doneMs)} ms):\n${killed.last.join('\n')}`).toBeLessThanOrEqual(KILLED_MS);
    // And then they all go.
    const gone = await timeUntil(before, (p) => procStat(p) === undefined, killedAt, 15_000);
    expect(gone.left, gone.left.join('\n')).toEqual([]);
    // Nor did anything started after the list was taken outlive them.
    expect([...taggedProcesses(tag), ...groupProcesses(groups)]).toEqual([]);
    await crawling;
    // The profile stays (nobody was left to delete it), named after the dead runtime; the next
    // `quarry run` sweeps it once it is older than the sweep's hour (its guard against pid reuse).
    const profiles = readdirSync(tmpdir()).filter((n) => n.startsWith(`${CHROMIUM_PROFILE_PREFIX}${ownerTag(pid)}-`));
    expect(profiles, JSON.stringify(profiles)).toHaveLength(1);
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(tmpdir(), profiles[0]!), old, old);
    const next = await quarry(['run', '--script', 'fetch-title.ts', '--source', 's', '--storage-path', join(tmp!.path, 'next'), '--job', JSON.stringify({ url: `${site!.url}/list` })],
      { cwd: join(REPO_ROOT, 'test/fixtures/no-browser') });
    expect(next.code, next.stderr).toBe(0);
    expect(existsSync(join(tmpdir(), profiles[0]!))).toBe(false);
  });

  it('--no-browser-reuse launches a browser per run, in its slot, and the tree keeps it when resumed', async () => {
    site = await startCrawlSite({ details: 4, detailDelayMs: 1000 });
    tmp = await makeTempDir('browser-reuse-off');
    const storage = join(tmp.path, 'data');
    const { tag, env } = newTag();
    tags.push(tag);
    // Killed once its root admitted two of the four details: the tree is left to resume.
    const first = watchBrowsers();
    const killed = await quarry(['run', '--script', 'browser-listing.mjs', '--source', 'site', '--day', '2026-11-24', '--run-id', 'no-reuse-tree', '--job', JSON.stringify({ base: site.url }),
      '--storage-path', storage, '--depth', '1', '--max-runs', '5', '--parallel', '2', '--quiet', '--no-browser-reuse'],
    { cwd: CRAWL, timeoutMs: 240_000, onSpawn: first.onSpawn, env: { ...env, QUARRY_TEST_KILL_POINT: 'tree_after_admit:2' } });
    first.stop();
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    const w = watchBrowsers();
    const r = await quarry(['run', '--resume', 'no-reuse-tree', '--storage-path', storage, '--quiet'], { cwd: CRAWL, timeoutMs: 240_000, onSpawn: w.onSpawn });
    w.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(await detailIds(storage)).toEqual(range(4));
    // Both invocations: no browser of the runtime's own; each run (four details at least, resumed) launched one in its slot.
    expect(w.seen.size).toBeGreaterThan(1);
    for (const [, parent] of [...first.seen, ...w.seen]) expect(parent).not.toBeOneOf([first.pid(), w.pid()]);
  });

  it('each run\'s proxy on the shared browser carries its page, a loopback URL included', async () => {
    tmp = await makeTempDir('browser-reuse-proxy');
    proxy = await startAuthProxy('p0', 'scraper', 'reuse-Secret-77');
    const pools = join(tmp.path, 'pools.json');
    await writeFile(pools, JSON.stringify({ main: { strategy: 'round_robin', endpoints: [proxy.endpoint] } }));
    // Nothing listens on this loopback port: only the proxy can answer these pages.
    const dead = await deadPort();
    const children = [1, 2, 3].map((i) => ({ url: `http://127.0.0.1:${dead}/child/${i}` }));
    const reportPath = join(tmp.path, 'report.json');
    const w = watchBrowsers();
    const r = await quarry(['run', '--script', 'browser-page.mjs', '--source', 's', '--storage-path', join(tmp.path, 'data'), '--report', reportPath,
      '--proxy-config', pools, '--proxy-pool', 'main', '--depth', '1', '--max-runs', '4', '--parallel', '2', '--quiet',
      '--job', JSON.stringify({ url: 'http://root.test/', children })], { cwd: PROXY_SCRIPTS, timeoutMs: 240_000, onSpawn: w.onSpawn });
    w.stop();
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(await readFile(reportPath, 'utf8')) as Report;
    expect(report.runs).toHaveLength(4);
    expect(proxy.runs().sort()).toEqual(report.runs.map((x) => x.run_id).sort());
    expect(w.seen.size).toBe(1);
    expect(existsSync(reportPath)).toBe(true);
  });
});
