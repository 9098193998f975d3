/**
 * A TCP relay in front of a real server (the local S3) that can be told to
 * stall: from then on every connection, open or new, is accepted and moves
 * no byte in either direction, as a hung endpoint or a black-holed network
 * does. For tests of timeouts and signals against a stalled endpoint.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface StallProxy {
  /** `http://127.0.0.1:<port>`: give this instead of the upstream's URL. */
  readonly endpoint: string;
  /** Connections accepted so far (stalled or not). */
  readonly connections: number;
  /** Stops moving bytes, on open connections and on every later one. */
  stall(): void;
  /** Resolves at the next connection accepted from now on. */
  nextConnection(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a relay to `upstream` (`http://host:port`) on a free local port. */
export async function startStallProxy(upstream: string): Promise<StallProxy> {
  const target = new URL(upstream);
  const sockets = new Set<Socket>();
  const pairs: Array<[Socket, Socket]> = [];
  let stalled = false;
  let connections = 0;
  let waiters: Array<() => void> = [];
  const server: Server = createServer((client) => {
    connections++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    for (const w of waiters) w();
    waiters = [];
    if (stalled) return;
    const up = connect(Number(target.port), target.hostname);
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
    up.on('close', () => {
      if (!stalled) client.destroy();
    });
    client.pipe(up);
    up.pipe(client);
    pairs.push([client, up]);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get connections() {
      return connections;
    },
    stall() {
      stalled = true;
      for (const [client, up] of pairs) {
        client.unpipe(up);
        up.unpipe(client);
        client.pause();
        up.pause();
      }
    },
    nextConnection: () => new Promise<void>((r) => waiters.push(r)),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
