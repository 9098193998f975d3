/**
 * A local webhook receiver for adapter tests (SPEC §11): records every POST
 * (body, headers) and answers as told per request — a status, a hang past the
 * sender's timeout, or a dropped connection. `down()` stops listening so the
 * port refuses connections; `up()` listens on the same port again.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** How to answer one request. */
export type Answer = number | 'hang' | 'drop';

export interface ReceivedPost {
  body: unknown;
  headers: IncomingMessage['headers'];
}

export interface WebhookReceiver {
  url: string;
  port: number;
  posts: ReceivedPost[];
  /** Answers for the next requests, in order; afterwards `fallback` (default 200). */
  script(answers: Answer[], fallback?: Answer): void;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(port = 0): Promise<WebhookReceiver> {
  let queue: Answer[] = [];
  let fallback: Answer = 200;
  const posts: ReceivedPost[] = [];
  const sockets = new Set<Socket>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text) as unknown;
      } catch {
        // kept as text
      }
      posts.push({ body, headers: req.headers });
      const a = queue.shift() ?? fallback;
      if (a === 'hang') return; // never answered; the socket is destroyed on close
      if (a === 'drop') {
        req.socket.destroy();
        return;
      }
      res.writeHead(a, { 'content-type': 'text/plain' }).end(String(a));
    });
  };
  let server: Server;
  const listen = (p: number): Promise<number> => new Promise((resolve, reject) => {
    server = createServer(handler);
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.once('error', reject);
    server.listen(p, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
  const stop = (): Promise<void> => new Promise((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  });
  const actual = await listen(port);
  return {
    url: `http://127.0.0.1:${actual}/hook`,
    port: actual,
    posts,
    script(answers, fb = 200) {
      queue = [...answers];
      fallback = fb;
    },
    down: stop,
    up: async () => {
      await listen(actual);
    },
    close: stop,
  };
}
