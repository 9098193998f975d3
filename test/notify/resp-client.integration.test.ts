/**
 * The event sink's own Redis client (src/notify/resp-client.ts)
 * against private redis-servers the tests start (never the machine's shared
 * one): pipelined replies in order, EVALSHA falling back to EVAL, AUTH (a
 * password, an ACL user) and SELECT from the URL, TLS for rediss://, and
 * failures (refused, no reply, closed, a bad password) named by server and
 * command without the password.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { LuaScript, parseRedisUrl, RedisCallError, RespClient } from '../../src/notify/resp-client.js';
import { REPO_ROOT } from '../_harness/cli.js';
import { startPrivateRedis, type PrivateRedis } from '../_harness/private-redis.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

let redis: PrivateRedis | undefined;
let clients: RespClient[] = [];
let tmp: TempDir | undefined;
let server: Server | undefined;
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await redis?.stop();
  redis = undefined;
  await tmp?.remove();
  tmp = undefined;
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function connect(url: string, timeoutMs = 5000): Promise<RespClient> {
  const c = await RespClient.connect(url, timeoutMs);
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<RedisCallError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(RedisCallError);
  return err as RedisCallError;
}

/** A TCP server that accepts and reads but never answers (or, with `hangUp`, closes each connection at its first bytes). */
async function silentServer(hangUp = false): Promise<number> {
  const s = createServer((sock: Socket) => sock.on('data', () => (hangUp ? sock.destroy() : undefined)));
  server = s;
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as { port: number }).port;
}

describe('RESP client', () => {
  it('sends commands as they are called and matches the replies in order (pipelining), UTF-8 and all', async () => {
    redis = await startPrivateRedis();
    const c = await connect(redis.url);
    expect(await c.call(['SET', 'k:é', 'vällue €'])).toBe('OK');
    expect(await c.call(['GET', 'k:é'])).toBe('vällue €');
    expect(await c.call(['GET', 'absent'])).toBeNull();
    const replies = await Promise.all(Array.from({ length: 2000 }, () => c.call(['INCR', 'n'])));
    expect(replies).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    const big = 'x'.repeat(300_000);
    await c.call(['SET', 'big', big]);
    expect(await c.call(['GET', 'big'])).toBe(big);
    expect(await c.call(['XADD', 's', '1-1', 'a', '1'])).toBe('1-1');
    expect(await c.call(['XRANGE', 's', '-', '+'])).toEqual([['1-1', ['a', '1']]]);
  });

  it('an error reply rejects that command only, naming the server and the command; the connection goes on', async () => {
    redis = await startPrivateRedis();
    const c = await connect(redis.url);
    await c.call(['SET', 'k', 'text']);
    const [bad, ok] = await Promise.allSettled([c.call(['INCR', 'k']), c.call(['GET', 'k'])]);
    expect(bad.status === 'rejected' && (bad.reason as Error).message).toBe(`redis 127.0.0.1:${redis.port}: INCR: ERR value is not an integer or out of range`);
    expect(ok).toEqual({ status: 'fulfilled', value: 'text' });
    expect(c.open).toBe(true);
  });

  it('runs a script by its SHA-1, sending its text only the first time (NOSCRIPT → EVAL)', async () => {
    redis = await startPrivateRedis();
    const c = await connect(redis.url);
    const script = new LuaScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`);
    expect(await c.call(['SCRIPT', 'EXISTS', script.sha])).toEqual([0]);
    expect(await c.eval(script, ['n'], ['5'])).toBe(5);
    expect(await c.call(['SCRIPT', 'EXISTS', script.sha])).toEqual([1]);
    expect(await c.eval(script, ['n'], ['2'])).toBe(7);
    const err = await failure(c.eval(new LuaScript(`return redis.call('NOPE')`), [], []));
    expect(err.message).toMatch(new RegExp(`^redis 127\\.0\\.0\\.1:${redis.port}: EVAL: ERR .*Unknown Redis command`));
  });

  it('AUTH with the URL\'s password or ACL user, SELECT with its path; a wrong password is named, never quoted', async () => {
    redis = await startPrivateRedis({ args: ['--requirepass', 's3cret-pw'] });
    const base = `127.0.0.1:${redis.port}`;
    const admin = await connect(`redis://:s3cret-pw@${base}/3`);
    await admin.call(['SET', 'where', 'db3']);
    await admin.call(['ACL', 'SETUSER', 'alice', 'on', '>alice-pw', '~*', '+@all']);
    const alice = await connect(`redis://alice:alice-pw@${base}`);
    expect(await alice.call(['GET', 'where'])).toBeNull(); // db 0
    const alice3 = await connect(`redis://alice:alice-pw@${base}/3`);
    expect(await alice3.call(['GET', 'where'])).toBe('db3');
    const noAuth = await connect(`redis://${base}`);
    expect((await failure(noAuth.call(['GET', 'where']))).message).toMatch(/: GET: NOAUTH/);
    const wrong = await failure(RespClient.connect(`redis://alice:not-the-pw@${base}`, 5000));
    expect(wrong.message).toMatch(new RegExp(`^redis ${base.replaceAll('.', '\\.')}: AUTH: WRONGPASS`));
    expect(wrong.message).not.toContain('not-the-pw');
    expect(wrong.message).not.toContain('alice');
    expect((await failure(RespClient.connect(`redis://:s3cret-pw@${base}/99`, 5000))).message).toMatch(/: SELECT: ERR DB index is out of range/);
  });

  it('names the server and what failed: refused, no reply in time, hung up, a closed client', async () => {
    const unused = await silentServer();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    expect((await failure(RespClient.connect(`redis://127.0.0.1:${unused}`, 5000))).message).toMatch(new RegExp(`^redis 127\\.0\\.0\\.1:${unused}: connect: .*ECONNREFUSED`));

    const silent = await silentServer();
    const c = await connect(`redis://127.0.0.1:${silent}`, 300);
    const [ping, get] = await Promise.all([failure(c.call(['PING'])), failure(c.call(['GET', 'x']))]);
    expect(ping.message).toBe(`redis 127.0.0.1:${silent}: PING: no reply within 300ms`);
    expect(get.message).toBe(`redis 127.0.0.1:${silent}: GET: no reply within 300ms`);
    expect(c.open).toBe(false);
    // Later replies could no longer be matched to their commands: the connection is closed for good.
    expect((await failure(c.call(['PING']))).message).toBe(`redis 127.0.0.1:${silent}: PING: no reply within 300ms`);
    await new Promise<void>((r) => server!.close(() => r()));

    const hangUp = await silentServer(true);
    const h = await connect(`redis://127.0.0.1:${hangUp}`);
    expect((await failure(h.call(['PING']))).message).toBe(`redis 127.0.0.1:${hangUp}: PING: the server closed the connection`);

    redis = await startPrivateRedis();
    const r = await connect(redis.url);
    r.close();
    expect((await failure(r.call(['PING']))).message).toBe(`redis 127.0.0.1:${redis.port}: PING: the connection was closed`);
  });

  it('reads a URL: user, password, database, TLS; a path that is not a number is refused', () => {
    expect(parseRedisUrl('redis://u%40x:p%3Aw@h.example:6380/2')).toEqual({ host: 'h.example', port: 6380, tls: false, username: 'u@x', password: 'p:w', db: 2 });
    expect(parseRedisUrl('rediss://[::1]')).toEqual({ host: '::1', port: 6379, tls: true, username: undefined, password: undefined, db: 0 });
    expect(() => parseRedisUrl('redis://h/x')).toThrow('the database (the URL\'s path) must be a number, got /x');
    expect(() => parseRedisUrl('http://h')).toThrow('a Redis URL starts with redis:// or rediss://, got http://');
  });

  it('rediss:// speaks TLS: verified against the CA the process trusts, refused (and named) when not', async () => {
    tmp = await makeTempDir('resp-tls');
    const f = (n: string): string => join(tmp!.path, n);
    const ssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=quarry test CA');
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
    writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', f('san.ext'));
    redis = await startPrivateRedis({ tls: { cert: f('server.pem'), key: f('server.key'), ca: f('ca.pem') }, args: ['--requirepass', 'tls-pw'] });
    const url = redis.url.replace('rediss://', 'rediss://:tls-pw@');

    // This process does not trust the test CA: the certificate is refused.
    const untrusted = await failure(RespClient.connect(url, 5000));
    expect(untrusted.message).toMatch(new RegExp(`^redis 127\\.0\\.0\\.1:${redis.port}: TLS connect: .*(self.signed|local issuer|unable to verify)`, 'i'));
    // A plain redis:// client to the TLS port gets no RESP back: named, not hung.
    const plain = await connect(redis.url.replace('rediss://', 'redis://'), 2000);
    expect((await failure(plain.call(['PING']))).message).toMatch(new RegExp(`^redis 127\\.0\\.0\\.1:${redis.port}: PING: `));

    // A process that trusts it (NODE_EXTRA_CA_CERTS is read at start) connects, authenticates and talks.
    writeFileSync(f('child.mts'), [
      `import { RespClient } from ${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'src/notify/resp-client.ts')).href)};`,
      `const c = await RespClient.connect(${JSON.stringify(url)}, 5000);`,
      `await c.call(['SET', 'over', 'tls']);`,
      `process.stdout.write(String(await c.call(['GET', 'over'])));`,
      'c.close();',
    ].join('\n'));
    const child = spawnSync(process.execPath, ['--import', 'tsx', f('child.mts')], { cwd: REPO_ROOT, env: { ...process.env, NODE_EXTRA_CA_CERTS: f('ca.pem') }, encoding: 'utf8', timeout: 60_000 });
    expect(child.stderr).toBe('');
    expect(child.stdout).toBe('tls');
  });
});
