// ctx.http through a socks5 run proxy (issue 11): a real SOCKS5 server tunnels to a real local HTTP server.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHttpClient, HttpNetworkError, type RunHttpClient } from '../../src/sdk/index.js';
import { startSocks5Server, type Socks5Server } from '../_harness/socks5-server.js';

let site: Server;
let base: string;
let withAuth: Socks5Server;
let open: Socks5Server;
let client: RunHttpClient | undefined;

beforeAll(async () => {
  site = createServer((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`you asked for ${req.url ?? ''}`));
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  withAuth = await startSocks5Server({ u1: 'socks-pass' });
  open = await startSocks5Server();
});
afterAll(async () => {
  await withAuth.close();
  await open.close();
  site.closeAllConnections();
  await new Promise((resolve) => site.close(resolve));
});
afterEach(async () => {
  await client?.close();
  client = undefined;
});

describe('the socks5 run proxy', () => {
  it('tunnels requests through a socks5 proxy that wants a username and password', async () => {
    client = createHttpClient({ proxy: { protocol: 'socks5', host: '127.0.0.1', port: withAuth.port, username: 'u1', password: 'socks-pass' } });
    expect(await client.getText(`${base}/a?x=1`)).toBe('you asked for /a?x=1');
    expect(withAuth.connections.at(-1)).toEqual({ method: 2, username: 'u1', authenticated: true, target: base.replace('http://', '') });
  });

  it('tunnels through a socks5 proxy without authentication', async () => {
    client = createHttpClient({ proxy: { protocol: 'socks5', host: '127.0.0.1', port: open.port } });
    const res = await client.get(`${base}/b`);
    expect(res.status).toBe(200);
    expect(res.text()).toBe('you asked for /b');
    expect(open.connections.at(-1)).toEqual({ method: 0, target: base.replace('http://', '') });
  });

  it('a refused password is a network error that never shows the password', async () => {
    client = createHttpClient({ proxy: { protocol: 'socks5', host: '127.0.0.1', port: withAuth.port, username: 'u1', password: 'wrong-secret' } });
    const before = withAuth.connections.length;
    const err = await client.get(`${base}/c`, { retries: 0 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpNetworkError);
    expect((err as Error).message).toContain(`${base}/c`);
    expect((err as Error).message).not.toContain('wrong-secret');
    expect(withAuth.connections.slice(before)).toEqual([{ method: 2, username: 'u1', authenticated: false }]);
  });
});
