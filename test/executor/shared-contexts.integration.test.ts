/**
 * A slot's contexts on the shared browser (SPEC §10 browser reuse) end with
 * its connection: a slot process SIGKILLed with contexts open (its run's, one
 * prepared ahead) leaves none of them in the invocation's Chromium, which
 * serves the other slots until the invocation ends. Real Chromium, launched as
 * the runtime does; the slot is a Node process connected as a slot connects
 * (the built executor's browser module).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import puppeteer from 'puppeteer-core';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../_harness/cli.js';
import { SharedBrowser } from '../../src/runtime/shared-browser.js';

const BROWSER_MODULE = pathToFileURL(join(REPO_ROOT, 'dist/executor/browser.js')).href;

let shared: SharedBrowser | undefined;
afterEach(async () => {
  await shared?.close();
  shared = undefined;
});

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
});
