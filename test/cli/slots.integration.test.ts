/**
 * Run slots (SPEC §10) end to end through `quarry run --depth` with
 * no-browser scripts: one executor process serves successive runs, each run
 * sees its script freshly evaluated and no timer of the run before it; a slot
 * SIGKILLed mid-run fails only that run, which is retried on a new slot; a run
 * past --run-timeout is killed with its slot; an executor that never says
 * hello still runs, one run per process; a slot's runs share its keep-alive
 * connections but not their cookies; and a runtime killed by SIGKILL takes
 * its slots, busy and idle, along.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { killTagged, newTag, taggedProcesses, waitUntilGone } from '../_harness/proc-tag.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/slots');
const NO_HELLO_EXECUTOR = join(REPO_ROOT, 'test/fixtures/executors/no-browser.mjs');

let tmp: TempDir | undefined;
const tags: string[] = [];
afterEach(async () => {
  for (const t of tags.splice(0)) killTagged(t);
  await tmp?.remove();
  tmp = undefined;
});

interface Child { target: string; params: Record<string, unknown> }
interface PageItem { n: number; evaluations: number; ticks: number; pid: number }
interface TreeRun { run_id: string; attempt: number; outcome: string }

async function crawl(children: Child[], flags: string[]): Promise<{ r: CliResult; storage: string; report: { tree: Record<string, unknown>; runs: TreeRun[] } }> {
  tmp = await makeTempDir('slots');
  const storage = join(tmp.path, 'data');
  const reportPath = join(tmp.path, 'report.json');
  const r = await quarry([
    'run', '--script', 'root.mjs', '--source', 'slots', '--day', '2026-11-24', '--job', JSON.stringify({ children }),
    '--storage-path', storage, '--report', reportPath, '--depth', '1', '--max-runs', '50', ...flags,
  ], { cwd: SCRIPTS, timeoutMs: 240_000 });
  const report = JSON.parse(await readFile(reportPath, 'utf8').catch(() => '{}')) as { tree: Record<string, unknown>; runs: TreeRun[] };
  return { r, storage, report };
}

async function pageItems(storage: string): Promise<PageItem[]> {
  const r = await quarry(['read', '--storage-path', storage, '--type', 'item']);
  expect(r.code, r.stderr).toBe(0);
  type Payload = { item_type: string; data: PageItem | Payload };
  // The stand-in executor without hello wraps what a script emits in { item_type: 'page', data }.
  const unwrap = (p: Payload): Payload => ('item_type' in p.data ? unwrap(p.data) : p);
  return r.stdout.split('\n').filter(Boolean)
    .map((l) => unwrap((JSON.parse(l) as { payload: Payload }).payload))
    .filter((p) => p.item_type === 'page').map((p) => p.data as PageItem).sort((a, b) => a.n - b.n);
}

/** The manifest message of each run, by run id. */
function messages(storage: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === '_manifest.json') {
        const m = JSON.parse(readFileSync(p, 'utf8')) as { run_id: string; message: string };
        out.set(m.run_id, m.message);
      }
    }
  };
  walk(join(storage, 'datasets/quarry/partitions'));
  return out;
}

const page = (n: number, extra: Record<string, unknown> = {}, target = './page.mjs'): Child => ({ target, params: { n, ...extra } });

describe('run slots', { timeout: 300_000 }, () => {
  it('serve successive runs with fresh modules and no leftover timers; a killed or timed-out slot fails only its run, retried on a new slot', async () => {
    // --parallel 1: one run at a time, so every run goes to the one live slot.
    const c = await crawl([page(1), page(2, {}, './page.cts'), page(3, { die: true }), page(4), page(5, { hang: true }), page(6, {}, './page.cts'), page(7)],
      ['--parallel', '1', '--retries', '1', '--run-timeout', '15s', '--quiet']);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.report.tree).toMatchObject({ admitted: 8, succeeded: 8, failed: 0, retried: 2, authoritative: true });
    const failed = c.report.runs.filter((x) => x.outcome !== 'success');
    expect(failed.map((x) => x.outcome).sort()).toEqual(['executor_crash', 'script_error']);
    const msgs = messages(c.storage);
    expect(msgs.get(failed.find((x) => x.outcome === 'executor_crash')!.run_id)).toMatch(/killed by SIGKILL/);
    expect(msgs.get(failed.find((x) => x.outcome === 'script_error')!.run_id)).toMatch(/^timeout: .*--run-timeout 15s/);

    const items = await pageItems(c.storage);
    expect(items.map((i) => i.n)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const i of items) {
      // Each run evaluated its own copy of the script, and no earlier run's interval ticked during it.
      expect(i, JSON.stringify(items)).toMatchObject({ evaluations: 1, ticks: 0 });
    }
    // Slots were reused: fewer processes than runs (the killed and the timed-out slots were replaced).
    const pids = new Set(items.map((i) => i.pid));
    expect(pids.size, JSON.stringify(items)).toBeLessThanOrEqual(3);
    expect(pids.size).toBeLessThan(items.length);
  });

  it("a slot's runs without a proxy reuse its keep-alive connections, each run with its own cookies", async () => {
    // What the server saw of each request: the cookie it carried and the client's port (one per connection).
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (url.searchParams.get('step') === '1') headers['set-cookie'] = `run=${url.searchParams.get('n')}; Path=/`;
      res.writeHead(200, headers).end(JSON.stringify({ cookie: req.headers.cookie ?? null, port: req.socket.remotePort }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/p`;
      const pages = [1, 2, 3, 4, 5].map((n) => page(n, { url }, './http-page.mjs'));
      const c = await crawl(pages, ['--parallel', '1', '--quiet']);
      expect(c.r.code, c.r.stderr).toBe(0);
      const r = await quarry(['read', '--storage-path', c.storage, '--type', 'item']);
      expect(r.code, r.stderr).toBe(0);
      type Seen = { cookie: string | null; port: number };
      const items = r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { n: number; pid: number; first: Seen; second: Seen } } }).payload)
        .filter((p) => p.item_type === 'http').map((p) => p.data).sort((a, b) => a.n - b.n);
      expect(items.map((i) => i.n)).toEqual([1, 2, 3, 4, 5]);
      for (const i of items) {
        // A run starts with an empty jar and keeps its own cookie: none crosses to the next run in the slot.
        expect(i.first.cookie, JSON.stringify(i)).toBeNull();
        expect(i.second.cookie, JSON.stringify(i)).toBe(`run=${i.n}`);
      }
      // One run at a time in one slot: its runs' ten requests went over fewer connections than runs (one each before).
      const pids = new Set(items.map((i) => i.pid));
      const ports = new Set(items.flatMap((i) => [i.first.port, i.second.port]));
      expect(pids.size, JSON.stringify(items)).toBe(1);
      expect(ports.size, JSON.stringify(items)).toBeLessThan(items.length);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('an executor that never says hello still runs every run, one per process', async () => {
    const c = await crawl([page(1), page(2), page(3)], ['--parallel', '1', '--executor', NO_HELLO_EXECUTOR, '--quiet']);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.report.tree).toMatchObject({ admitted: 4, succeeded: 4, failed: 0 });
    const items = await pageItems(c.storage);
    expect(items.map((i) => i.n)).toEqual([1, 2, 3]);
    expect(new Set(items.map((i) => i.pid)).size).toBe(3);
  });

  it('kill -9 of the runtime takes its slots, the idle one and the busy one, along', async () => {
    tmp = await makeTempDir('slots-kill');
    const { tag, env } = newTag();
    tags.push(tag);
    const held = join(tmp.path, 'held');
    // The root waits for the holding child, so the child runs in a second slot; the root's slot then idles.
    const child = spawn(process.execPath, [CLI, 'run', '--script', 'root.mjs', '--source', 'slots', '--job', JSON.stringify({ children: [page(1, { hold: held })], waitFor: held }),
      '--storage-path', join(tmp.path, 'data'), '--depth', '1', '--max-runs', '5', '--parallel', '2'], { cwd: SCRIPTS, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let seen = '';
    const rootDone = new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        seen += d.toString();
      });
      const poll = setInterval(() => {
        // Both slots alive: the holder's, and the root's once its run ended (its partition finalized).
        const executors = taggedProcesses(tag).filter((l) => l.includes('executor/main.js'));
        if (seen.includes('HOLDING') && executors.length >= 2 && rootFinalized(join(tmp!.path, 'data'))) {
          clearInterval(poll);
          resolve();
        }
      }, 100);
      child.once('exit', () => {
        clearInterval(poll);
        reject(new Error(`quarry exited early:\n${seen}`));
      });
    });
    await rootDone;
    child.kill('SIGKILL');
    const { left } = await waitUntilGone(tag, 5_000);
    expect(left).toEqual([]);
  });
});

/** Whether the root run (depth 0) has its manifest. */
function rootFinalized(storage: string): boolean {
  for (const [, message] of messages(storage)) if (message === 'run completed') return true;
  return false;
}
