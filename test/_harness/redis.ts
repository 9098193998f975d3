/**
 * Redis for integration tests: the machine's server on 127.0.0.1:6379 when it
 * answers, else a private `redis-server` this harness starts (and stops when
 * the test process exits). Tests share a server by key prefix: each takes a
 * unique prefix ({@link uniquePrefix}) and deletes its own keys after
 * ({@link removeKeys}); never FLUSHALL.
 *
 * `QUARRY_TEST_REDIS_URL` skips all of this.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

const MACHINE_URL = 'redis://127.0.0.1:6379';

async function answers(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 3000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** A private Redis server: no persistence, its own port; `stop()` ends it (SIGKILL after 10 s). */
export interface PrivateRedis {
  url: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a private `redis-server` (Debian package `redis-server`) and waits until it answers. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const onExit = (): void => {
    proc.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const url = `redis://127.0.0.1:${port}`;
  const until = Date.now() + 30_000;
  while (!(await answers(url))) {
    if (proc.exitCode !== null || Date.now() > until) {
      proc.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} did not start (is the redis-server package installed?)`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    proc,
    stop: async () => {
      process.off('exit', onExit);
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

let cached: Promise<string> | undefined;

/** A URL of a running Redis: the machine's, or a private one started for this test process. */
export function ensureRedis(): Promise<string> {
  cached ??= (async () => {
    const fromEnv = process.env.QUARRY_TEST_REDIS_URL;
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    if (await answers(MACHINE_URL)) return MACHINE_URL;
    return (await startPrivateRedis()).url;
  })();
  return cached;
}

/** A key prefix no other test uses. */
export function uniquePrefix(name: string): string {
  return `quarry-test:${name}:${process.pid}:${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key under `prefix` (SCAN, never FLUSHALL); returns how many. */
export async function removeKeys(url: string, prefix: string): Promise<number> {
  const r = new Redis(url);
  try {
    let cursor = '0';
    let n = 0;
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) n += await r.del(...keys);
    } while (cursor !== '0');
    return n;
  } finally {
    r.disconnect();
  }
}
