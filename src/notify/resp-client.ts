/**
 * A small Redis client for the event sink's writer (SPEC §11): one socket
 * (TCP, or TLS for `rediss://`), commands written as they are called and
 * their replies matched in order (pipelining), EVALSHA falling back to EVAL,
 * AUTH and SELECT from the URL, a timeout per command. It does not reconnect
 * by itself: a connection that failed is closed and every pending command
 * rejected; the caller (src/notify/redis-stream-writer.ts) connects again.
 * It exists so a run with a sink need not load ioredis (~0.15 s of CPU per
 * process, docs/benchmarks.md "Event sink cost"); everything else in Quarry
 * that talks to Redis uses ioredis.
 *
 * Error messages name the server as `host:port` and the command that failed,
 * never the URL's user or password.
 */
import { createHash } from 'node:crypto';
import { isIP, Socket } from 'node:net';
import { connect as tlsConnect, TLSSocket } from 'node:tls';
import { encodeCommand, ReplyParser, RespErrorReply, RespProtocolError, type RespReply } from './resp-codec.js';

/** A Redis error reply, a refused connection, a timeout or a closed connection: the message says which, and where. */
export class RedisCallError extends Error {
  override readonly name = 'RedisCallError';
  /** The server's error reply (`NOSCRIPT …`, `WRONGPASS …`), when that is what failed. */
  readonly reply: string | undefined;

  constructor(message: string, reply?: string) {
    super(message);
    this.reply = reply;
  }
}

/** Where and how to connect, from a `redis://` or `rediss://` URL. */
export interface RedisEndpoint {
  host: string;
  port: number;
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
  db: number;
}

/**
 * Reads a Redis URL: `redis[s]://[[user]:password@]host[:port][/db]`.
 * @throws Error naming what is wrong (never quoting a password)
 */
export function parseRedisUrl(url: string): RedisEndpoint {
  const u = new URL(url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`a Redis URL starts with redis:// or rediss://, got ${u.protocol}//`);
  const path = u.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path)) throw new Error(`the database (the URL's path) must be a number, got /${path}`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    host: host === '' ? '127.0.0.1' : host,
    port: u.port === '' ? 6379 : Number(u.port),
    tls: u.protocol === 'rediss:',
    username: u.username === '' ? undefined : decodeURIComponent(u.username),
    password: u.password === '' ? undefined : decodeURIComponent(u.password),
    db: path === '' ? 0 : Number(path),
  };
}

/** A Lua script with its SHA-1, for EVALSHA. */
export class LuaScript {
  readonly sha: string;

  constructor(readonly text: string) {
    this.sha = createHash('sha1').update(text).digest('hex');
  }
}

interface Pending {
  command: string;
  resolve: (r: RespReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** One connection. Create with {@link RespClient.connect}. */
export class RespClient {
  /** `host:port`, as messages name the server. */
  readonly where: string;
  readonly #socket: Socket;
  readonly #timeoutMs: number;
  readonly #parser = new ReplyParser();
  readonly #pending: Pending[] = [];
  /** Why the connection is done for; set once. */
  #closed: string | undefined;
  /** Until the socket is connected: what to tell the waiting {@link RespClient.connect}. */
  #connecting: { resolve: () => void; reject: (e: Error) => void } | undefined;

  private constructor(socket: Socket, where: string, timeoutMs: number) {
    this.#socket = socket;
    this.where = where;
    this.#timeoutMs = timeoutMs;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#fail(err.message));
    socket.on('close', () => this.#fail('the server closed the connection'));
  }

  /**
   * Connects, then AUTH and SELECT as the URL says, each within `timeoutMs`.
   * @throws RedisCallError naming the server and what failed (connect, TLS, AUTH, SELECT, a timeout)
   */
  static async connect(url: string, timeoutMs: number): Promise<RespClient> {
    let e: RedisEndpoint;
    try {
      e = parseRedisUrl(url);
    } catch (err) {
      throw new RedisCallError(`redis URL: ${(err as Error).message}`);
    }
    const where = `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
    const socket = e.tls ? tlsConnect({ host: e.host, port: e.port, ...(isIP(e.host) === 0 ? { servername: e.host } : {}) }) : new Socket().connect(e.port, e.host);
    const c = new RespClient(socket, where, timeoutMs);
    const timer = setTimeout(() => c.#fail(`no connection within ${timeoutMs}ms`), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        c.#connecting = { resolve, reject };
        socket.once(e.tls ? 'secureConnect' : 'connect', () => {
          c.#connecting = undefined;
          resolve();
        });
      });
    } finally {
      clearTimeout(timer);
    }
    try {
      if (e.password !== undefined) await c.call(e.username !== undefined ? ['AUTH', e.username, e.password] : ['AUTH', e.password]);
      if (e.db !== 0) await c.call(['SELECT', String(e.db)]);
    } catch (err) {
      c.close();
      throw err;
    }
    return c;
  }

  /** Still usable: connected, no failure seen, not closed. */
  get open(): boolean {
    return this.#closed === undefined;
  }

  /**
   * Sends one command (at once, behind any still waiting for replies:
   * pipelining) and resolves with its reply. Messages name a command by its
   * first word (so AUTH's password is never quoted).
   * @throws RedisCallError on an error reply, on no reply within the timeout (the connection is closed then, since later replies would no longer match their commands), or on a closed connection
   */
  call(args: ReadonlyArray<string | Buffer>): Promise<RespReply> {
    const command = typeof args[0] === 'string' ? args[0] : '';
    if (this.#closed !== undefined) return Promise.reject(new RedisCallError(`redis ${this.where}: ${command}: ${this.#closed}`));
    return new Promise<RespReply>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(`no reply within ${this.#timeoutMs}ms`), this.#timeoutMs);
      this.#pending.push({ command, resolve, reject, timer });
      this.#socket.write(encodeCommand(args));
    });
  }

  /**
   * Runs `script` by its SHA-1 (EVALSHA), and sends its text (EVAL, which
   * also caches it) only when the server does not have it yet (NOSCRIPT):
   * the script's text crosses the wire once per server, not per call.
   * @throws RedisCallError as {@link RespClient.call}
   */
  async eval(script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | Buffer>): Promise<RespReply> {
    try {
      return await this.call(['EVALSHA', script.sha, String(keys.length), ...keys, ...args]);
    } catch (err) {
      if (!(err instanceof RedisCallError) || err.reply?.startsWith('NOSCRIPT') !== true) throw err;
      return this.call(['EVAL', script.text, String(keys.length), ...keys, ...args]);
    }
  }

  /** Closes the connection now; commands still waiting are rejected. */
  close(): void {
    this.#fail('the connection was closed');
  }

  #onData(chunk: Buffer): void {
    let replies: RespReply[];
    try {
      replies = this.#parser.push(chunk);
    } catch (err) {
      this.#fail(err instanceof RespProtocolError ? `not a Redis reply: ${err.message}` : String(err));
      return;
    }
    for (const r of replies) {
      const p = this.#pending.shift();
      if (p === undefined) {
        this.#fail('a reply came for no command');
        return;
      }
      clearTimeout(p.timer);
      if (r instanceof RespErrorReply) p.reject(new RedisCallError(`redis ${this.where}: ${p.command}: ${r.message}`, r.message));
      else p.resolve(r);
    }
  }

  /** The connection is done for: it closes, and whoever waits on it (connect, commands) is told why. */
  #fail(why: string): void {
    this.#closed ??= why;
    this.#socket.destroy();
    const connecting = this.#connecting;
    this.#connecting = undefined;
    connecting?.reject(new RedisCallError(`redis ${this.where}: ${this.#socket instanceof TLSSocket ? 'TLS connect' : 'connect'}: ${this.#closed}`));
    for (const p of this.#pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(new RedisCallError(`redis ${this.where}: ${p.command}: ${this.#closed}`));
    }
  }
}
