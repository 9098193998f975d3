/**
 * A stalled endpoint never hangs Quarry (SPEC §5, §7, issue 8.4): S3 requests
 * time out after `--storage-request-timeout` without a byte moving, so a run
 * whose S3 stalls mid-run ends `policy_failure` (exit 3) in bounded time and a
 * read command ends with one line; every read command blocked on a stalled
 * endpoint stops on SIGINT / SIGTERM with 130 / 143, and so do `run`,
 * `retry` and `export` before they have started anything; a second Ctrl-C
 * exits at once whatever is in flight.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { killTagged, newTag, waitUntilGone } from '../_harness/proc-tag.js';
import { startS3Server, type S3TestServer } from '../_harness/s3-server.js';
import { startStallProxy, type StallProxy } from '../_harness/stall-proxy.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const executor = join(REPO_ROOT, 'test/fixtures/executors/misbehaving.mjs');
const script = join(REPO_ROOT, 'examples/books.ts');

let s3: S3TestServer;
let tmp: TempDir;
let env: NodeJS.ProcessEnv;
const proxies: StallProxy[] = [];
const tags: string[] = [];
beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket('lake');
  tmp = await makeTempDir('stalled');
  env = { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: 'us-east-1' };
});
afterAll(async () => {
  for (const t of tags) killTagged(t);
  for (const p of proxies) await p.close();
  await s3.stop();
  await tmp.remove();
});

const s3Flags = (endpoint: string, path = 'lake/stall') => ['--storage-backend', 's3', '--storage-endpoint', endpoint, '--storage-s3-path-style', '--storage-path', path];

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Starts `quarry run` on S3 through a stall proxy, holding the run open after
 * its first item (mode wait_release); resolves once its claim is stored and its
 * partition checked, so the run is running when the caller stalls the proxy.
 */
async function runHeldOpen(runId: string, extra: string[]): Promise<{ proxy: StallProxy; release: () => void; done: Promise<CliResult>; child: () => ChildProcess }> {
  const proxy = await startStallProxy(s3.endpoint);
  proxies.push(proxy);
  const releaseFile = join(tmp.path, `release-${runId}`);
  const { tag, env: tagEnv } = newTag();
  tags.push(tag);
  let child: ChildProcess | undefined;
  const done = quarry([
    'run', '--script', script, '--executor', executor, '--source', 'shop', '--day', '2026-11-20', '--run-id', runId,
    '--job', JSON.stringify({ mode: 'wait_release', release: releaseFile }), ...s3Flags(proxy.endpoint), '--ledger', join(tmp.path, `${runId}.sqlite`), ...extra,
  ], { env: { ...env, ...tagEnv }, onSpawn: (c) => (child = c), timeoutMs: 120_000 });
  // The claim is stored, then its partition checked free (a HEAD of the manifest, 404): from then on the run is running.
  const started = (): boolean => s3.requests.some((r) => r.method === 'HEAD' && decodeURIComponent(r.url).includes(`run_id=${runId}/_manifest.json`) && r.status !== undefined);
  await Promise.race([until(started, `the start of ${runId}`, 60_000), done.then((r) => Promise.reject(new Error(`the run ended before it started: ${r.stderr}`)))]);
  await new Promise((r) => setTimeout(r, 300));
  return { proxy, release: () => writeFileSync(releaseFile, ''), done, child: () => child! };
}

describe('a stalled S3 endpoint', () => {
  it('ends a run whose S3 stalls mid-run with policy_failure, exit 3, within a bound set by --storage-request-timeout', async () => {
    const { proxy, release, done } = await runHeldOpen('st-1', ['--storage-request-timeout', '500ms', '--report', join(tmp.path, 'st-1.json')]);
    proxy.stall();
    const stalledAt = Date.now();
    release();
    const r = await done;
    const took = Date.now() - stalledAt;
    expect(r.code, r.stderr).toBe(3);
    const report = JSON.parse(readFileSync(join(tmp.path, 'st-1.json'), 'utf8')) as { outcome: string; message: string; storage: { finalized: boolean }; authority: { authoritative: boolean } };
    expect(report.outcome).toBe('policy_failure');
    expect(report.storage.finalized).toBe(false);
    expect(report.authority.authoritative).toBe(false);
    // One request under the default 30 s idle timeout and the SDK's 3 attempts alone would take 90 s.
    expect(took).toBeLessThan(45_000);
    expect(proxy.connections).toBeGreaterThan(1);
  });

  it('a read command against a stalled endpoint ends with one line, in bounded time', async () => {
    const sockets = new Set<Socket>();
    const stalled = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
    try {
      const endpoint = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}`;
      const started = Date.now();
      const r = await quarry(['list', 'runs', ...s3Flags(endpoint), '--storage-request-timeout', '300ms'], { env, timeoutMs: 60_000 });
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(r.code).toBe(1);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`quarry list runs: cannot open storage: `);
      expect(r.stderr).toContain(endpoint.replace('http://', ''));
    } finally {
      for (const s of sockets) s.destroy();
      stalled.close();
    }
  });

  it('--storage-request-timeout is checked before anything runs: s3 only, more than 0', async () => {
    const fs = await quarry(['list', 'runs', '--storage-path', tmp.path, '--storage-request-timeout', '5s']);
    expect(fs.code).toBe(2);
    expect(fs.stderr).toBe('quarry list runs: storage request timeout applies to the s3 backend only; drop it or use the s3 backend\n');
    const zero = await quarry(['list', 'runs', ...s3Flags('http://127.0.0.1:9'), '--storage-request-timeout', '0'], { env });
    expect(zero.code).toBe(2);
    expect(zero.stderr).toBe('quarry list runs: storage request timeout 0 ms must be more than 0, e.g. 30s\n');
  });

  it('a second Ctrl-C exits at once while a run is stuck finalizing on a stalled endpoint, and nothing of the run is left running', async () => {
    const { proxy, done, child } = await runHeldOpen('st-2', ['--quiet']);
    const tag = tags[tags.length - 1]!;
    proxy.stall();
    child().kill('SIGINT');
    // The first Ctrl-C stops the executor and finalizes: against a stalled endpoint (default 30 s timeout) that waits.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(child().exitCode).toBeNull();
    const second = Date.now();
    child().kill('SIGINT');
    const r = await done;
    expect(Date.now() - second).toBeLessThan(5_000);
    expect(r.code).toBe(130);
    expect(r.stderr).toContain('quarry: SIGINT again: exiting now\n');
    expect((await waitUntilGone(tag, 5_000)).left).toEqual([]);
  });
});

/**
 * Starts `args(host:port)` against a server that accepts connections and
 * never answers, waits until the command has connected to it (it is then
 * blocked), sends `sig`, and returns the result and how long the exit took.
 */
async function signalWhileBlocked(args: (hostPort: string) => string[], sig: 'SIGINT' | 'SIGTERM'): Promise<CliResult & { exitMs: number }> {
  const sockets = new Set<Socket>();
  let connected: () => void = () => undefined;
  const firstConnection = new Promise<void>((r) => (connected = r));
  const stalled = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    connected();
  });
  await new Promise<void>((r) => stalled.listen(0, '127.0.0.1', r));
  try {
    let child: ChildProcess | undefined;
    const done = quarry(args(`127.0.0.1:${(stalled.address() as AddressInfo).port}`), { env, onSpawn: (c) => (child = c), timeoutMs: 60_000 });
    await Promise.race([firstConnection, done.then((r) => Promise.reject(new Error(`exited before connecting: ${r.stderr}`)))]);
    await new Promise((r) => setTimeout(r, 200));
    expect(child!.exitCode).toBeNull();
    const sent = Date.now();
    child!.kill(sig);
    const r = await done;
    return { ...r, exitMs: Date.now() - sent };
  } finally {
    for (const s of sockets) s.destroy();
    stalled.close();
  }
}

describe('signals stop every read command blocked on a stalled endpoint, and run, retry and export before they start', () => {
  const pg = (hp: string) => ['--ledger', `postgres://quarry:secret@${hp}/quarry`];
  const s3At = (hp: string) => s3Flags(`http://${hp}`, 'lake/p');
  const commands: Array<[string, (hp: string) => string[]]> = [
    ['read', (hp) => ['read', ...s3At(hp), ...pg(hp)]],
    ['validate', (hp) => ['validate', '--pending', ...s3At(hp), ...pg(hp)]],
    ['list runs', (hp) => ['list', 'runs', ...s3At(hp)]],
    ['stats runs', (hp) => ['stats', 'runs', ...s3At(hp)]],
    ['state inspect', (hp) => ['state', 'inspect', ...pg(hp)]],
    ['inspect run', (hp) => ['inspect', 'run', 'r-1', ...s3At(hp)]],
    ['export', (hp) => ['export', '--to', `duckdb:${join(tmp.path, 'w.duckdb')}`, ...s3At(hp), ...pg(hp)]],
    ['run', (hp) => ['run', '--script', script, '--source', 'shop', ...s3At(hp), ...pg(hp)]],
    ['retry', (hp) => ['retry', ...s3At(hp), ...pg(hp)]],
  ];
  for (const [name, args] of commands) {
    it(`${name}: SIGINT exits 130 and SIGTERM 143 at once, with one line`, async () => {
      const [int, term] = await Promise.all([signalWhileBlocked(args, 'SIGINT'), signalWhileBlocked(args, 'SIGTERM')]);
      for (const [r, sig, code] of [[int, 'SIGINT', 130], [term, 'SIGTERM', 143]] as const) {
        expect(r.code, r.stderr).toBe(code);
        expect(r.stderr).toBe(`quarry ${name}: interrupted by ${sig}\n`);
        expect(r.exitMs).toBeLessThan(5_000);
      }
    });
  }
});
