// ctx.http against real local servers (node:http, a CONNECT proxy): no fakes between the client and the socket.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createHttpClient,
  HttpNetworkError,
  HttpRedirectLimitError,
  HttpResponseTooLargeError,
  HttpStatusError,
  HttpTimeoutError,
  type RunHttpClient,
} from '../../src/sdk/index.js';

type Handler = (req: IncomingMessage, res: ServerResponse, hit: number, body: string) => void;
const routes = new Map<string, Handler>();
const hits: { path: string; at: number; method: string; cookie?: string; body: string }[] = [];
let server: Server;
let base: string;
let client: RunHttpClient;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      hits.push({ path, at: performance.now(), method: req.method ?? '', body, ...(req.headers.cookie ? { cookie: req.headers.cookie } : {}) });
      const handler = routes.get(path);
      if (!handler) return void res.writeHead(404).end('no route');
      handler(req, res, hits.filter((h) => h.path === path).length, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
afterEach(async () => {
  await client?.close();
  routes.clear();
  hits.length = 0;
});

/** A client with short backoff so retry tests stay fast; jitter fixed at its maximum so waits are predictable. */
const newClient = (o: Parameters<typeof createHttpClient>[0] = {}): RunHttpClient => (client = createHttpClient({ random: () => 0.999, defaults: { retryDelayMs: 200 }, ...o }));
const gaps = (path: string): number[] => hits.filter((h) => h.path === path).map((h, i, a) => (i === 0 ? 0 : h.at - a[i - 1]!.at)).slice(1);

describe('retries and backoff', () => {
  it('retries a 503 and returns the 200 that follows, after a backoff wait', async () => {
    routes.set('/flaky', (_q, res, hit) => (hit === 1 ? res.writeHead(503).end('busy') : res.writeHead(200).end('fine')));
    const res = await newClient().get(`${base}/flaky`);
    expect(res.status).toBe(200);
    expect(res.text()).toBe('fine');
    expect(res.attempts).toBe(2);
    expect(gaps('/flaky')).toHaveLength(1);
    expect(gaps('/flaky')[0]).toBeGreaterThanOrEqual(180); // retryDelayMs 200, jitter at its top
  });

  it('waits the seconds a 429 asks for in Retry-After, then succeeds', async () => {
    routes.set('/limited', (_q, res, hit) => (hit === 1 ? res.writeHead(429, { 'retry-after': '1' }).end() : res.writeHead(200).end('ok')));
    const res = await newClient().get(`${base}/limited`);
    expect(res.status).toBe(200);
    expect(gaps('/limited')[0]).toBeGreaterThanOrEqual(950);
  });

  it('honours a Retry-After given as an HTTP-date', async () => {
    routes.set('/dated', (_q, res, hit) => (hit === 1 ? res.writeHead(503, { 'retry-after': new Date(Date.now() + 2000).toUTCString() }).end() : res.writeHead(200).end('ok')));
    const res = await newClient().get(`${base}/dated`);
    expect(res.status).toBe(200);
    // The date has whole seconds: the wait is between 1 and 2 s, far above the 200 ms backoff.
    expect(gaps('/dated')[0]).toBeGreaterThanOrEqual(950);
  });

  it('fails at once when Retry-After asks for longer than maxRetryAfterMs', async () => {
    routes.set('/later', (_q, res) => res.writeHead(429, { 'retry-after': '3600' }).end());
    const err = await newClient().get(`${base}/later`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpStatusError);
    expect(err).toMatchObject({ status: 429, retryable: true, retryAfterMs: 3_600_000, attempt: 1 });
    expect(hits).toHaveLength(1);
  });

  it('gives up after the retries with an error naming method, URL without credentials, status and attempt', async () => {
    routes.set('/down', (_q, res) => res.writeHead(502).end());
    const url = `${base.replace('http://', 'http://user:secret-pw@')}/down?token=secret-tok&page=2`;
    const err = await newClient().get(url, { retries: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpStatusError);
    const shown = `${base.replace('http://', 'http://user:***@')}/down?token=***&page=2`;
    expect(err).toMatchObject({ status: 502, attempt: 3, method: 'GET', url: shown });
    expect((err as Error).message).toBe(`GET ${shown} (attempt 3) answered 502; still failing after the retries: try later or raise retries`);
    expect((err as Error).message).not.toContain('secret-pw');
    expect((err as Error).message).not.toContain('secret-tok');
    expect(hits).toHaveLength(3);
    // Backoff doubles: ~200 ms then ~400 ms.
    expect(gaps('/down')[1]).toBeGreaterThanOrEqual(380);
  });

  it('does not retry a 404, and returns it when throwOnHttpError is false', async () => {
    routes.set('/gone', (_q, res) => res.writeHead(404).end('nope'));
    await expect(newClient().get(`${base}/gone`)).rejects.toMatchObject({ name: 'HttpStatusError', status: 404, retryable: false, attempt: 1 });
    const res = await client.get(`${base}/gone`, { throwOnHttpError: false });
    expect([res.status, res.text()]).toEqual([404, 'nope']);
    expect(hits).toHaveLength(2);
  });

  it('retries a POST on 429 but not on 503 (it may have acted), unless retryNonIdempotent', async () => {
    routes.set('/post429', (_q, res, hit) => (hit === 1 ? res.writeHead(429, { 'retry-after': '0' }).end() : res.writeHead(201).end()));
    routes.set('/post503', (_q, res, hit) => (hit === 1 ? res.writeHead(503).end() : res.writeHead(201).end()));
    expect((await newClient().post(`${base}/post429`, { json: { a: 1 } })).status).toBe(201);
    await expect(client.post(`${base}/post503`, { json: { a: 1 } })).rejects.toMatchObject({ status: 503, attempt: 1 });
    expect((await client.post(`${base}/post503`, { json: { a: 1 }, retryNonIdempotent: true })).status).toBe(201);
  });

  it('retries a connection that was cut, and reports a refused connection as HttpNetworkError after the retries', async () => {
    routes.set('/cut', (req, res, hit) => (hit === 1 ? req.socket.destroy() : res.writeHead(200).end('second')));
    expect((await newClient().get(`${base}/cut`)).text()).toBe('second');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const err = await client.get(`http://127.0.0.1:${port}/`, { retries: 1, retryDelayMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpNetworkError);
    expect(err).toMatchObject({ code: 'ECONNREFUSED', attempt: 2 });
  });

  it('bounds each attempt by timeoutMs', async () => {
    routes.set('/slow', (_q, res) => void setTimeout(() => res.writeHead(200).end('late'), 1500));
    const err = await newClient().get(`${base}/slow`, { timeoutMs: 150, retries: 1, retryDelayMs: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpTimeoutError);
    expect(err).toMatchObject({ timeoutMs: 150, attempt: 2 });
  });
});

describe('bodies, redirects and limits', () => {
  it('sends JSON, form and text bodies with headers, and decodes JSON and charset-tagged text', async () => {
    routes.set('/echo', (req, res, _hit, body) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ body, type: req.headers['content-type'], x: req.headers['x-trace'] })));
    routes.set('/latin1', (_q, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=iso-8859-1' }).end(Buffer.from([0x63, 0x61, 0x66, 0xe9])));
    const c = newClient();
    expect((await c.post(`${base}/echo`, { json: { a: [1, 2] }, headers: { 'X-Trace': 't1' } })).json()).toEqual({ body: '{"a":[1,2]}', type: 'application/json', x: 't1' });
    expect((await c.post(`${base}/echo`, { form: { q: 'a b', n: '1' } })).json()).toMatchObject({ body: 'q=a+b&n=1', type: 'application/x-www-form-urlencoded' });
    expect(await c.getJson(`${base}/echo`, { query: { page: 2 } })).toMatchObject({ body: '' });
    expect(hits.at(-1)?.path).toBe('/echo');
    expect(await c.getText(`${base}/latin1`)).toBe('café');
  });

  it('decompresses a gzip body', async () => {
    routes.set('/gz', (_q, res) => res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync('hello gzip')));
    expect(await newClient().getText(`${base}/gz`)).toBe('hello gzip');
  });

  it('follows redirects up to maxRedirects, turns a 303 after POST into a GET, and stops a loop with HttpRedirectLimitError', async () => {
    routes.set('/start', (_q, res) => res.writeHead(303, { location: '/landing' }).end());
    routes.set('/landing', (req, res) => res.writeHead(200).end(req.method));
    routes.set('/loop', (_q, res, hit) => res.writeHead(302, { location: `/loop?n=${hit}` }).end());
    const res = await newClient().post(`${base}/start`, { body: 'x' });
    expect([res.text(), res.url, res.redirects]).toEqual(['GET', `${base}/landing`, [`${base}/landing`]]);
    const err = await client.get(`${base}/loop`, { maxRedirects: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpRedirectLimitError);
    expect((err as HttpRedirectLimitError).redirects).toHaveLength(4);
    expect(hits.filter((h) => h.path === '/loop')).toHaveLength(4);
  });

  it('refuses a body over maxResponseBytes, announced, streamed or once decompressed', async () => {
    const big = Buffer.alloc(64 * 1024, 97);
    routes.set('/announced', (_q, res) => res.writeHead(200, { 'content-length': String(big.length) }).end(big));
    routes.set('/streamed', (_q, res) => {
      res.writeHead(200); // chunked: no length to check up front
      for (let i = 0; i < 8; i++) res.write(big);
      res.end();
    });
    routes.set('/bomb', (_q, res) => res.writeHead(200, { 'content-encoding': 'gzip' }).end(gzipSync(Buffer.alloc(4 * 1024 * 1024))));
    const c = newClient({ defaults: { maxResponseBytes: 32 * 1024 } });
    for (const path of ['/announced', '/streamed', '/bomb']) {
      const err = await c.get(`${base}${path}`).catch((e: unknown) => e);
      expect(err, path).toBeInstanceOf(HttpResponseTooLargeError);
      expect(err).toMatchObject({ limit: 32 * 1024, status: 200, attempt: 1 });
    }
    // Within the limit, the same client reads normally.
    expect((await c.get(`${base}/announced`, { maxResponseBytes: 64 * 1024 })).body.length).toBe(64 * 1024);
  });
});

describe('cookies', () => {
  it('keeps cookies within a client across requests and redirects, by path, and drops expired ones', async () => {
    routes.set('/login', (_q, res) => res.writeHead(302, { location: '/account/home', 'set-cookie': ['sid=abc; Path=/; HttpOnly', 'pref=dark; Path=/account'] }).end());
    routes.set('/account/home', (req, res) => res.writeHead(200).end(req.headers.cookie ?? ''));
    routes.set('/other', (req, res) => res.writeHead(200).end(req.headers.cookie ?? ''));
    routes.set('/logout', (_q, res) => res.writeHead(200, { 'set-cookie': 'sid=; Max-Age=0; Path=/' }).end());
    const c = newClient();
    expect(await c.getText(`${base}/login`)).toBe('pref=dark; sid=abc');
    expect(await c.getText(`${base}/other`)).toBe('sid=abc');
    await c.get(`${base}/logout`);
    expect(await c.getText(`${base}/other`)).toBe('');
    // A second client (the next run) starts empty.
    const next = createHttpClient();
    try {
      await next.get(`${base}/login`, { maxRedirects: 0 });
      expect(next.cookies.list().map((k) => k.name).sort()).toEqual(['pref', 'sid']);
      expect(c.cookies.list().map((k) => k.name)).toEqual(['pref']);
    } finally {
      await next.close();
    }
  });
});

describe('the run proxy', () => {
  let proxy: Server;
  let proxyPort: number;
  const tunnels: { target: string; auth?: string }[] = [];
  beforeAll(async () => {
    // A CONNECT proxy that wants Basic credentials, as a paid proxy does.
    proxy = createServer((_q, res) => res.writeHead(405).end());
    proxy.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      tunnels.push({ target: req.url ?? '', ...(req.headers['proxy-authorization'] ? { auth: req.headers['proxy-authorization'] } : {}) });
      if (req.headers['proxy-authorization'] !== `Basic ${Buffer.from('u1:proxy-pass').toString('base64')}`) {
        socket.end('HTTP/1.1 407 Proxy Authentication Required\r\n\r\n');
        return;
      }
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host!, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyPort = (proxy.address() as AddressInfo).port;
  });
  afterAll(async () => {
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
  });

  it('sends requests through the run proxy with its credentials', async () => {
    routes.set('/via', (_q, res) => res.writeHead(200).end('through the proxy'));
    const c = newClient({ proxy: { protocol: 'http', host: '127.0.0.1', port: proxyPort, username: 'u1', password: 'proxy-pass' } });
    expect(await c.getText(`${base}/via`)).toBe('through the proxy');
    expect(tunnels.at(-1)).toEqual({ target: base.replace('http://', ''), auth: `Basic ${Buffer.from('u1:proxy-pass').toString('base64')}` });
  });
});
