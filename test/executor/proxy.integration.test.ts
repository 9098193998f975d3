import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserHandle } from '../../src/executor/browser.js';
import { events, fixture, runExecutor, runResult, sharedBrowser } from '../_harness/executor-harness.js';

const USER = 'scraper';
const PASSWORD = 's3cret-proxy-pass';
let browser: { handle: BrowserHandle; wsEndpoint: string };
let proxyServer: Server;
let port: number;
const seen: { url: string; authorized: boolean }[] = [];

beforeAll(async () => {
  // A forward proxy on 127.0.0.1 that wants Basic credentials and answers for any host itself.
  proxyServer = createServer((req, res) => {
    const authorized = req.headers['proxy-authorization'] === `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
    seen.push({ url: req.url ?? '', authorized });
    if (!authorized) {
      res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="quarry-test"' }).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' }).end('<title>via proxy</title>');
  });
  await new Promise<void>((resolve) => proxyServer.listen(0, '127.0.0.1', resolve));
  port = (proxyServer.address() as AddressInfo).port;
  browser = await sharedBrowser();
});
afterAll(async () => {
  await browser?.handle.close();
  await new Promise((resolve) => proxyServer?.close(resolve));
});

const proxy = () => ({ protocol: 'http', host: '127.0.0.1', port, username: USER, password: PASSWORD });

describe('proxies', () => {
  for (const mode of ['a connected browser (per-context proxy)', 'a launched browser (--proxy-server)'] as const) {
    it(`routes the page through the run's proxy with page.authenticate, in ${mode}, and reports proxy_used without the password`, async () => {
      seen.length = 0;
      const connected = mode.startsWith('a connected');
      const run = await runExecutor(fixture('proxy.ts'), {
        run_id: 'run-proxy',
        attempt: 1,
        job: { url: 'http://quarry.test/page' },
        proxy: proxy(),
        ...(connected ? { browser_ws_endpoint: browser.wsEndpoint } : {}),
      });
      expect(run.code).toBe(0);
      expect(events(run.frames)[0]?.payload).toEqual({ item_type: 'page', data: { status: 200, title: 'via proxy' } });
      expect(seen.some((s) => s.url === 'http://quarry.test/page' && s.authorized)).toBe(true);
      expect(runResult(run.frames)?.proxy_used).toEqual({ protocol: 'http', host: '127.0.0.1', port, username: USER });
      expect(JSON.stringify(run.frames)).not.toContain(PASSWORD);
      expect(run.stderr).not.toContain(PASSWORD);
    });
  }
});
