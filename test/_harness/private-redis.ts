/**
 * A private `redis-server` on a free port, started and stopped by the test
 * that owns it (never the machine's shared Redis on 6379): no persistence,
 * its own temp folder. `stop()` kills it by its own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { makeTempDir, type TempDir } from './temp-dir.js';

export interface PrivateRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** What else the server gets: more arguments (`--requirepass x`), or TLS only (PEM files; the URL is then `rediss://`). */
export interface PrivateRedisOptions {
  args?: readonly string[];
  /** Listen on this port (one the test has just freed) instead of a free one. */
  port?: number;
  tls?: { cert: string; key: string; ca: string };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const dir: TempDir = await makeTempDir('redis');
  const port = options.port ?? (await freePort());
  const t = options.tls;
  const listen = t ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', t.cert, '--tls-key-file', t.key, '--tls-ca-cert-file', t.ca, '--tls-auth-clients', 'no'] : ['--port', String(port)];
  const child: ChildProcess = spawn('redis-server', [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir.path, ...(options.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 30_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited ${code}: ${out}`));
    });
  });
  child.stdout!.resume();
  child.stderr!.resume();
  let stopped: Promise<void> | undefined;
  return {
    url: `${t ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    stop: () => {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGKILL');
          await exited;
        }
        await dir.remove();
      })();
      return stopped;
    },
  };
}
