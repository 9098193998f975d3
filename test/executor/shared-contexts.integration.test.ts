/**
 * A slot's contexts on the shared browser (SPEC §10 browser reuse) end with
 * its connection: a slot process SIGKILLed with contexts open (its run's, one
 * prepared ahead) leaves none of them in the invocation's Chromium, which
 * serves the other slots until the invocation ends. Real Chromium, launched as
 * the runtime does; the slot is a Node process connected as a slot connects
 * (the built executor's browser module).
 *
 * And a context costs one renderer, its page's: no spare renderer, no
 * address-bar popups preloaded for the context's window (chromium.ts
 * DISABLED_FEATURES; about a third of a context's CPU, docs/benchmarks.md).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer from 'puppeteer-core';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../_harness/cli.js';
import { SharedBrowser } from '../../src/runtime/shared-browser.js';

const BROWSER_MODULE = pathToFileURL(join(REPO_ROOT, 'dist/executor/browser.js')).href;

let shared: SharedBrowser | undefined;
let site: Server | undefined;
afterEach(async () => {
  await shared?.close();
  shared = undefined;
  site?.closeAllConnections();
  await new Promise((r) => (site ? site.close(r) : r(undefined)));
  site = undefined;
});

/** Pids of the renderer processes under `root` (Chromium's zygote forks them). */
function renderersUnder(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(name)]);
    } catch {
      // Gone while we looked.
    }
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      const state = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmd.includes('--type=renderer') && state !== 'Z' && state !== 'X') out.push(pid);
    } catch {
      // Gone.
    }
    stack.push(...(kids.get(pid) ?? []));
  }
  return out;
}

describe('contexts of a slot on the shared browser', { timeout: 120_000 }, () => {
  it('are disposed when the slot dies, not kept until the invocation ends', async () => {
    shared = new SharedBrowser({ executablePath: process.env.QUARRY_CHROMIUM_PATH || '/usr/bin/chromium' });
    const { wsEndpoint } = await shared.lease();
    // The slot: two contexts with a page each, as a run's and the one prepared ahead; then it waits to be killed.
    const slot = spawn(process.execPath, ['--input-type=module', '-e', `
      const { createSharedBrowserSource } = await import(${JSON.stringify(BROWSER_MODULE)});
      const source = createSharedBrowserSource(async () => ${JSON.stringify(wsEndpoint)});
      await source.openRun();
      process.stdout.write('ready\\n');
      setInterval(() => undefined, 1000);
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve, reject) => {
      slot.stdout.once('data', resolve);
      slot.once('exit', (code) => reject(new Error(`the slot exited with ${code} before it was ready`)));
    });
    // Observed once the slot is settled (its context prepared ahead opened meanwhile).
    await new Promise((r) => setTimeout(r, 1000));
    const observer = await puppeteer.connect({ browserWSEndpoint: wsEndpoint });
    try {
      const cdp = await observer.target().createCDPSession();
      const contexts = async (): Promise<string[]> => (await cdp.send('Target.getBrowserContexts')).browserContextIds;
      // The run's context and the next run's, prepared ahead (it may still be opening).
      const end0 = Date.now() + 20_000;
      while ((await contexts()).length < 2 && Date.now() < end0) await new Promise((r) => setTimeout(r, 50));
      const open = await contexts();
      expect(open).toHaveLength(2);
      slot.kill('SIGKILL');
      const end = Date.now() + 10_000;
      let left = open;
      while (left.length > 0 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 100));
        const now = new Set(await contexts());
        left = open.filter((id) => now.has(id));
      }
      expect(left, 'contexts of the killed slot still open 10 s after its death').toEqual([]);
      // The browser itself goes on serving.
      expect(observer.connected).toBe(true);
    } finally {
      await observer.disconnect();
    }
  });

  it('costs one renderer per context, its page\'s, and no address-bar popups', async () => {
    site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>x</title><p>x</p>'));
    await new Promise<void>((r) => site!.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(site.address() as { port: number }).port}/`;
    shared = new SharedBrowser({ executablePath: process.env.QUARRY_CHROMIUM_PATH || '/usr/bin/chromium' });
    const { wsEndpoint } = await shared.lease();
    const browser = await puppeteer.connect({ browserWSEndpoint: wsEndpoint });
    try {
      const cdp = await browser.target().createCDPSession();
      const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 1500));
      await settle();
      // The launch's own about:blank tab has its renderer; each run's context is to add one.
      const before = renderersUnder(shared.pid!);
      const contexts = [];
      for (let i = 0; i < 3; i++) {
        const context = await browser.createBrowserContext();
        const page = await context.newPage();
        await page.goto(url, { waitUntil: 'domcontentloaded' });
        contexts.push(context);
      }
      // A spare renderer is started after a navigation commits: give it the time it would take.
      await settle();
      const { targetInfos } = await cdp.send('Target.getTargets', { filter: [{}] });
      expect(targetInfos.filter((t) => t.type !== 'page' && t.type !== 'tab' && t.type !== 'browser').map((t) => t.url)).toEqual([]);
      expect(renderersUnder(shared.pid!).filter((p) => !before.includes(p))).toHaveLength(contexts.length);
      for (const c of contexts) await c.close();
    } finally {
      await browser.disconnect();
    }
  });
});
