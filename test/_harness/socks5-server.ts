/**
 * A small SOCKS5 server (RFC 1928, CONNECT only; RFC 1929 username/password
 * authentication when users are given) for tests of the socks5 path of
 * `ctx.http`: real sockets, a real tunnel to the target, and a record of what
 * each client asked for.
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface Socks5Connection {
  /** Authentication method the server chose: 0 none, 2 username/password. */
  method: number;
  username?: string;
  /** Whether the credentials were accepted (method 2 only). */
  authenticated?: boolean;
  /** `host:port` the client asked to reach. */
  target?: string;
}

export interface Socks5Server {
  readonly port: number;
  readonly connections: Socks5Connection[];
  close(): Promise<void>;
}

/** Reads exact byte counts from a socket that is still negotiating. */
function byteReader(socket: Socket): { read(n: number): Promise<Buffer>; detach(): Buffer } {
  let buf = Buffer.alloc(0);
  let want: { n: number; resolve: (b: Buffer) => void } | undefined;
  const pump = (): void => {
    if (want && buf.length >= want.n) {
      const { n, resolve } = want;
      want = undefined;
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      resolve(out);
    }
  };
  const onData = (d: Buffer): void => {
    buf = Buffer.concat([buf, d]);
    pump();
  };
  socket.on('data', onData);
  return {
    read: (n) => new Promise((resolve) => {
      want = { n, resolve };
      pump();
    }),
    detach: () => {
      socket.pause();
      socket.off('data', onData);
      return buf;
    },
  };
}

/** Starts the server on a free local port; with `users`, clients must authenticate as one of them. */
export async function startSocks5Server(users?: Record<string, string>): Promise<Socks5Server> {
  const connections: Socks5Connection[] = [];
  const sockets = new Set<Socket>();
  const serve = async (client: Socket): Promise<void> => {
    const r = byteReader(client);
    const [, nMethods] = await r.read(2);
    const methods = [...(await r.read(nMethods!))];
    const method = users ? 2 : 0;
    if (!methods.includes(method)) {
      client.end(Buffer.from([5, 0xff]));
      return;
    }
    const record: Socks5Connection = { method };
    connections.push(record);
    client.write(Buffer.from([5, method]));
    if (users) {
      const [, uLen] = await r.read(2);
      const username = (await r.read(uLen!)).toString();
      const [pLen] = await r.read(1);
      const password = (await r.read(pLen!)).toString();
      record.username = username;
      record.authenticated = users[username] === password;
      if (!record.authenticated) {
        client.end(Buffer.from([1, 1]));
        return;
      }
      client.write(Buffer.from([1, 0]));
    }
    const [, cmd, , atyp] = await r.read(4);
    let host: string;
    if (atyp === 1) host = [...(await r.read(4))].join('.');
    else if (atyp === 3) host = (await r.read((await r.read(1))[0]!)).toString();
    else host = (await r.read(16)).toString('hex').replace(/(.{4})(?!$)/g, '$1:');
    const port = (await r.read(2)).readUInt16BE(0);
    record.target = `${host}:${port}`;
    if (cmd !== 1) {
      client.end(Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]));
      return;
    }
    const upstream = connect(port, host, () => {
      client.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
      const early = r.detach();
      if (early.length > 0) upstream.write(early);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])));
    client.on('close', () => upstream.destroy());
  };
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    serve(client).catch(() => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
