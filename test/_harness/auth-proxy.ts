/**
 * A local forward proxy that wants Basic credentials and answers every
 * request itself (no internet here): a plain-HTTP request sent as a proxied
 * GET (absolute URL, as Chromium sends it), and a CONNECT tunnel (as undici's
 * ProxyAgent opens one), inside which it reads the plain HTTP request. Each
 * instance records which runs came through it — the `run` query parameter of
 * the URL the script fetched — so several instances form a pool whose
 * sequence a test can read.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** One request that reached the proxy. */
export interface ProxyHit {
  readonly via: 'get' | 'connect';
  readonly authorized: boolean;
  /** The `run` query parameter, when the URL had one. */
  readonly run: string | null;
  readonly url: string;
}

export interface AuthProxy {
  readonly name: string;
  readonly port: number;
  /** The pool endpoint of this proxy, credentials included. */
  readonly endpoint: { protocol: 'http'; host: string; port: number; username: string; password: string };
  readonly hits: readonly ProxyHit[];
  /** Run ids of the authorized requests, in arrival order. */
  runs(): string[];
  close(): Promise<void>;
}

function runOf(url: string): string | null {
  try {
    return new URL(url, 'http://tunnel.invalid').searchParams.get('run');
  } catch {
    return null;
  }
}

/** Starts a proxy on a free 127.0.0.1 port. */
export async function startAuthProxy(name: string, username: string, password: string): Promise<AuthProxy> {
  const hits: ProxyHit[] = [];
  const expected = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const sockets = new Set<Socket>();
  const answer = (res: ServerResponse, url: string): void => {
    res.writeHead(200, { 'content-type': 'text/html', 'x-proxy': name }).end(`<html><title>via ${name}</title><body>${url}</body></html>`);
  };
  // Serves the requests that arrive inside an authorized CONNECT tunnel.
  const inner = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    hits.push({ via: 'connect', authorized: true, run: runOf(url), url });
    answer(res, url);
  });
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    const authorized = req.headers['proxy-authorization'] === expected;
    hits.push({ via: 'get', authorized, run: runOf(url), url });
    if (!authorized) {
      res.writeHead(407, { 'Proxy-Authenticate': 'Basic realm="quarry-test"' }).end();
      return;
    }
    answer(res, url);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    socket.on('error', () => undefined);
    if (req.headers['proxy-authorization'] !== expected) {
      hits.push({ via: 'connect', authorized: false, run: null, url: req.url ?? '' });
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="quarry-test"\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    inner.emit('connection', socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    port,
    endpoint: { protocol: 'http', host: '127.0.0.1', port, username, password },
    hits,
    runs: () => hits.filter((h) => h.authorized && h.run !== null).map((h) => h.run!),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      inner.close();
    },
  };
}

/** A local port where nothing listens: a dead proxy endpoint. */
export async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
