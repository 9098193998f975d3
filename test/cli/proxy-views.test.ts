/**
 * The proxy views (SPEC §9, §11) over real files: pools from a config file's
 * `proxies:` and a `--proxy-config` JSON file, the selection state a
 * ProxySelector stored in `<state-dir>/proxy-state.sqlite`, and run
 * manifests that record the proxy each run went through. No password in any
 * output; nothing written by a view.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { debugResolveProxyCommand, inspectProxyCommand, listPoolsCommand, statsProxiesCommand } from '../../src/cli/commands/proxy-views.js';
import { UsageError } from '../../src/cli/flags.js';
import type { CliIO } from '../../src/cli/io.js';
import { loadRunConfig } from '../../src/cli/config.js';
import { loadPoolsFile, mergePools, parsePools } from '../../src/proxy/pools-config.js';
import { ProxySelector } from '../../src/proxy/selector.js';
import { proxyStatePath, SqliteProxyStateStore } from '../../src/proxy/sqlite-state-store.js';
import type { ManifestProxy } from '../../src/storage/manifest.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { recordingIO } from './fake-io.js';
import { writeStoredRun } from './stored-runs.js';

type Command = (argv: readonly string[], io: CliIO) => Promise<number>;
const PASSWORD = 'views-Secret-5521';
const env = { POOL_PASS: PASSWORD };
const ep = (port: number) => ({ protocol: 'http', host: '127.0.0.1', port, username: 'scraper', password: PASSWORD });

let tmp: TempDir;
let data: string;
let pools: string;
let config: string;
beforeEach(async () => {
  tmp = await makeTempDir('proxy-views');
  data = join(tmp.path, 'data');
  pools = join(tmp.path, 'pools.json');
  config = join(tmp.path, 'quarry.yaml');
  await writeFile(pools, JSON.stringify({
    rr: { strategy: 'round_robin', endpoints: [ep(9001), ep(9002), ep(9003)] },
    rnd: { strategy: 'random', recency_window: 2, endpoints: [ep(9101), ep(9102), ep(9103), ep(9104)] },
  }));
  await writeFile(config, [
    'proxies:',
    '  shop:',
    '    strategy: sticky',
    '    sticky: { scope: domain, ttl_ms: 60000 }',
    '    endpoints:',
    '      - { protocol: http, host: 127.0.0.1, port: 9201, username: scraper, password: "${POOL_PASS}" }',
    '      - { protocol: http, host: 127.0.0.1, port: 9202, username: scraper, password: "${POOL_PASS}" }',
    '  byjob:',
    '    strategy: sticky',
    '    sticky: { scope: job }',
    '    endpoints:',
    '      - { protocol: http, host: 127.0.0.1, port: 9301 }',
    '',
  ].join('\n'));
  const backend = await FsBackend.create(data);
  await backend.close();
});
afterEach(async () => {
  await tmp.remove();
});

async function run(cmd: Command, argv: readonly string[], format = 'json'): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIO(tmp.path, { env });
  const code = await cmd([...argv, '--storage-path', data, '--format', format], io);
  expect(io.out + io.err).not.toContain(PASSWORD);
  return { code, out: io.out, err: io.err };
}

async function json<T = any>(cmd: Command, argv: readonly string[]): Promise<T> {
  const r = await run(cmd, argv);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as T;
}

/** Makes selections as quarry run does, in the state dir the views read. */
async function withSelector(body: (s: ProxySelector) => Promise<void>): Promise<void> {
  const cfg = await loadRunConfig(config, tmp.path, env);
  const loaded = mergePools(parsePools(cfg.proxies, 'config', 'proxies'), await loadPoolsFile(pools, tmp.path));
  const store = SqliteProxyStateStore.open(proxyStatePath(join(data, '.quarry')));
  try {
    await body(new ProxySelector(loaded.pools, store));
  } finally {
    await store.close();
  }
}

const ALL = ['--config', 'quarry.yaml', '--proxy-config', 'pools.json'];

describe('quarry list pools', () => {
  it('with no pools configured: an empty list and a one-line notice, exit 0', async () => {
    const r = await run(listPoolsCommand, []);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual([]);
    expect(r.err).toMatch(/^quarry list pools: no proxy pools configured: give --config FILE/);
  });

  it('lists the pools of both sources with their settings and selections so far, without creating the state', async () => {
    const before = await json<any[]>(listPoolsCommand, ALL);
    expect(existsSync(proxyStatePath(join(data, '.quarry')))).toBe(false);
    expect(before.map((p) => [p.pool, p.strategy, p.endpoints, p.selections])).toEqual([['byjob', 'sticky', 1, 0], ['rnd', 'random', 4, 0], ['rr', 'round_robin', 3, 0], ['shop', 'sticky', 2, 0]]);
    expect(before.find((p) => p.pool === 'shop')).toMatchObject({ sticky_scope: 'domain', sticky_ttl_ms: 60000, recency_window: null, defined_in: `config ${config}` });
    expect(before.find((p) => p.pool === 'rnd')).toMatchObject({ recency_window: 2, defined_in: `--proxy-config ${pools}` });

    await withSelector(async (s) => {
      for (let i = 0; i < 5; i++) await s.select({ pool: 'rr', jobKey: `k${i}` });
    });
    const after = await json<any[]>(listPoolsCommand, ALL);
    expect(after.find((p) => p.pool === 'rr')).toMatchObject({ selections: 5 });
    expect(after.find((p) => p.pool === 'rr').last_used_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    const table = await run(listPoolsCommand, ALL, 'table');
    expect(table.out).toContain('round_robin');
  });

  it('a bad pools file is a usage error naming it', async () => {
    await writeFile(pools, '{"rr": {"strategy": "round_robin", "endpoints": []}}');
    await expect(run(listPoolsCommand, ['--proxy-config', 'pools.json'])).rejects.toThrow(UsageError);
  });
});

describe('quarry inspect proxy', () => {
  it('shows the endpoints without passwords, the stored state and the uses from stored runs', async () => {
    await withSelector(async (s) => {
      await s.select({ pool: 'rr', jobKey: 'a' });
      const second = await s.select({ pool: 'rr', jobKey: 'b' });
      await s.mark(second);
    });
    const backend = await FsBackend.create(data);
    const px = (index: number, rotations: number): ManifestProxy => ({ pool: 'rr', strategy: 'round_robin', endpoint: { protocol: 'http', host: '127.0.0.1', port: 9001 + index, username: 'scraper' }, endpoint_index: index, rotations: Array.from({ length: rotations }, (_, i) => ({ seq: i + 1, reason: 'blocked' })) });
    await writeStoredRun(backend, { run_id: 'r1', started_at: '2024-01-01T00:00:00.000Z', outcome: 'success', proxy: px(0, 0) });
    await writeStoredRun(backend, { run_id: 'r2', started_at: '2024-01-01T00:01:00.000Z', outcome: 'script_error', proxy: px(1, 1) });
    await backend.close();

    const v = await json(inspectProxyCommand, ['rr', ...ALL]);
    expect(v).toMatchObject({ pool: 'rr', strategy: 'round_robin', sticky: null, defined_in: `--proxy-config ${pools}` });
    expect(v.state).toMatchObject({ stored: true, selections: 2, next_round_robin_index: 2, recent: [0, 1], skipped_next: [1] });
    expect(v.endpoints.map((e: any) => [e.index, e.port, e.username, e.credentials, e.skipped_next, e.uses, e.failures, e.rotations])).toEqual([
      [0, 9001, 'scraper', true, false, 1, 0, 0],
      [1, 9002, 'scraper', true, true, 1, 1, 1],
      [2, 9003, 'scraper', true, false, 0, 0, 0],
    ]);
    expect(v.endpoints[0].password).toBeUndefined();
    expect(v.usage_from).toMatchObject({ runs: 2 });
    const table = await run(inspectProxyCommand, ['rr', ...ALL], 'table');
    expect(table.code).toBe(0);
    expect(table.out).toContain('9003');
  });

  it('an unknown pool exits 1 with one line listing the pools', async () => {
    const r = await run(inspectProxyCommand, ['nope', ...ALL]);
    expect(r.code).toBe(1);
    expect(r.err).toBe('quarry inspect proxy: no proxy pool "nope"; pools: shop, byjob, rr, rnd\n');
  });
});

describe('quarry stats proxies', () => {
  it('counts uses, failures and rotations per endpoint from the manifests, filtered by pool', async () => {
    const backend = await FsBackend.create(data);
    const px = (pool: string, port: number, index: number, rotations = 0): ManifestProxy => ({ pool, strategy: 'round_robin', endpoint: { protocol: 'http', host: '127.0.0.1', port, username: 'scraper' }, endpoint_index: index, rotations: Array.from({ length: rotations }, (_, i) => ({ seq: i + 1 })) });
    await writeStoredRun(backend, { run_id: 'a1', started_at: '2024-01-01T00:00:00.000Z', outcome: 'success', proxy: px('rr', 9001, 0) });
    await writeStoredRun(backend, { run_id: 'a2', started_at: '2024-01-01T00:01:00.000Z', outcome: 'success', proxy: px('rr', 9001, 0, 2) });
    await writeStoredRun(backend, { run_id: 'a3', started_at: '2024-01-01T00:02:00.000Z', outcome: 'executor_crash', proxy: px('rr', 9002, 1) });
    await writeStoredRun(backend, { run_id: 'a4', started_at: '2024-01-01T00:03:00.000Z', outcome: 'interrupted', proxy: px('rr', 9002, 1) });
    await writeStoredRun(backend, { run_id: 'b1', started_at: '2024-01-02T00:00:00.000Z', outcome: 'success', proxy: px('other', 7000, 0) });
    await writeStoredRun(backend, { run_id: 'n1', started_at: '2024-01-02T00:00:00.000Z', outcome: 'success' });
    await writeStoredRun(backend, { run_id: 'u1', started_at: '2024-01-02T00:00:00.000Z' });
    await backend.close();

    const rows = await json<any[]>(statsProxiesCommand, []);
    expect(rows.map((r) => [r.pool, r.endpoint_index, r.port, r.uses, r.succeeded, r.failures, r.rotations])).toEqual([
      ['other', 0, 7000, 1, 1, 0, 0],
      ['rr', 0, 9001, 2, 2, 0, 2],
      ['rr', 1, 9002, 2, 0, 1, 0],
    ]);
    expect(rows[1]).toMatchObject({ first_used_at: '2024-01-01T00:00:00.000Z', last_used_at: '2024-01-01T00:01:00.000Z', username: 'scraper' });
    expect((await json<any[]>(statsProxiesCommand, ['--pool', 'other'])).map((r) => r.port)).toEqual([7000]);
    expect((await json<any[]>(statsProxiesCommand, ['--day', '2024-01-01'])).map((r) => r.port)).toEqual([9001, 9002]);
    const table = await run(statsProxiesCommand, [], 'table');
    expect(table.out).toMatch(/rr\s.*9002/);
  });
});

describe('quarry debug resolve proxy', () => {
  it('round robin: the endpoint in turn, and resolving stores nothing', async () => {
    expect(await json(debugResolveProxyCommand, ['rr', ...ALL])).toMatchObject({ endpoint_index: 0, consumed: false, state: { stored: false } });
    expect(existsSync(proxyStatePath(join(data, '.quarry')))).toBe(false);
    await withSelector(async (s) => {
      await s.select({ pool: 'rr', jobKey: 'a' });
    });
    const first = await json(debugResolveProxyCommand, ['rr', ...ALL]);
    expect(first).toMatchObject({ pool: 'rr', strategy: 'round_robin', endpoint_index: 1, endpoint: { protocol: 'http', host: '127.0.0.1', port: 9002, username: 'scraper' }, state: { stored: true } });
    expect(await json(debugResolveProxyCommand, ['rr', ...ALL])).toEqual(first);
    await withSelector(async (s) => {
      expect((await s.select({ pool: 'rr', jobKey: 'b' })).index).toBe(1);
    });
    // --proxy-strategy replaces the pool's, as for quarry run.
    expect(await json(debugResolveProxyCommand, ['rr', '--proxy-strategy', 'random', ...ALL])).toMatchObject({ strategy: 'random', candidates: [0, 1, 2] });
  });

  it('random: the candidates outside the recency window', async () => {
    await withSelector(async (s) => {
      const picks = [(await s.select({ pool: 'rnd', jobKey: 'a' })).index, (await s.select({ pool: 'rnd', jobKey: 'b' })).index];
      const v = await json(debugResolveProxyCommand, ['rnd', ...ALL]);
      expect(v.candidates).toHaveLength(2);
      for (const p of picks) expect(v.candidates).not.toContain(p);
      expect(v.candidates).toContain(v.endpoint_index);
    });
  });

  it('sticky: the key of the job url, whether it is assigned and until when; sticky by job needs --script', async () => {
    const job = JSON.stringify({ url: 'https://shop.example/a' });
    const fresh = await json(debugResolveProxyCommand, ['shop', '--job', job, ...ALL]);
    expect(fresh).toMatchObject({ strategy: 'sticky', sticky: { scope: 'domain', key_source: 'job_url', hit: false, expires_at: null } });
    expect((await json(debugResolveProxyCommand, ['shop', '--proxy-domain', 'shop.example', ...ALL])).sticky.key_source).toBe('flag');
    let assigned = -1;
    await withSelector(async (s) => {
      assigned = (await s.select({ pool: 'shop', jobKey: 'x', job: { url: 'https://shop.example/b' } })).index;
    });
    const hit = await json(debugResolveProxyCommand, ['shop', '--job', job, ...ALL]);
    expect(hit).toMatchObject({ endpoint_index: assigned, sticky: { hit: true } });
    const left = Date.parse(hit.sticky.expires_at) - Date.now();
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(60_000);
    await expect(run(debugResolveProxyCommand, ['byjob', ...ALL])).rejects.toThrow(/give --script FILE/);
    const byJob = await json(debugResolveProxyCommand, ['byjob', '--script', 'x.mjs', '--job', job, ...ALL]);
    expect(byJob).toMatchObject({ endpoint_index: 0, sticky: { scope: 'job', key_source: 'job' } });
    await expect(run(debugResolveProxyCommand, ['rr', '--job', '[1]', ...ALL])).rejects.toThrow(/--job must be a JSON object/);
    await expect(run(debugResolveProxyCommand, [...ALL])).rejects.toThrow(/missing <pool>/);
  });
});
