/**
 * Proxy pools end to end (SPEC §11) with no-browser runs through local
 * authenticating proxies that record which runs came through them: round
 * robin over a 30-run fan-out at --parallel 1, continuing across two
 * invocations, rotate_proxy moving a sticky key elsewhere, a dead endpoint
 * not handed to the retry, and the password found nowhere in what the crawl
 * produced.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { deadPort, startAuthProxy, type AuthProxy } from '../_harness/auth-proxy.js';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/proxy');
const PASSWORD = 'pr0xy-Secret-9431';
let proxies: AuthProxy[] = [];
let tmp: TempDir | undefined;
afterEach(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  proxies = [];
  await tmp?.remove();
  tmp = undefined;
});

async function setup(pool: Record<string, unknown>, n = 3): Promise<{ dir: string; pools: string }> {
  tmp = await makeTempDir('proxy-pools');
  proxies = await Promise.all(Array.from({ length: n }, (_, i) => startAuthProxy(`p${i}`, 'scraper', PASSWORD)));
  const pools = join(tmp.path, 'pools.json');
  await writeFile(pools, JSON.stringify({ main: { endpoints: proxies.map((p) => p.endpoint), ...pool } }));
  return { dir: tmp.path, pools };
}

/** Which proxy each run went through. */
function proxyOf(runId: string): string | undefined {
  return proxies.find((p) => p.runs().includes(runId))?.name;
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

let crawls = 0;
/**
 * A crawl at --parallel 1 from `root` with `children` (one run each) through
 * pool `pool`; returns its run ids in the order they started.
 */
async function crawl(dir: string, pools: string, root: Record<string, unknown>, children: Record<string, unknown>[], opts: { pool?: string; script?: string } = {}): Promise<string[]> {
  const report = join(dir, `crawl-${++crawls}.json`);
  const r = await quarry(['run', '--script', opts.script ?? 'fetch.mjs', '--source', 's', '--storage-path', join(dir, 'data'), '--report', report,
    '--proxy-config', pools, '--proxy-pool', opts.pool ?? 'main', '--depth', '1', '--max-runs', String(children.length + 1), '--parallel', '1',
    '--job', JSON.stringify({ ...root, children })], { cwd: SCRIPTS, timeoutMs: 380_000 });
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  const runs = (JSON.parse(await readFile(report, 'utf8')) as { runs: { run_id: string }[] }).runs.map((x) => x.run_id);
  expect(runs).toHaveLength(children.length + 1);
  return runs;
}

const urls = (n: number, host = (i: number) => `site${i}.test`) => Array.from({ length: n }, (_, i) => ({ url: `http://${host(i)}/p` }));

describe('proxy pools (SPEC §11)', { timeout: 400_000 }, () => {
  it('round robin visits the pool in turn over a 30-run fan-out, and the password is in nothing the crawl produced', async () => {
    const { dir, pools } = await setup({ strategy: 'round_robin' });
    const children = Array.from({ length: 29 }, (_, i) => ({ url: `http://site${i}.test/p` }));
    const report = join(dir, 'report.json');
    const r = await quarry(['run', '--script', 'fetch.mjs', '--source', 's', '--storage-path', join(dir, 'data'), '--report', report,
      '--proxy-config', pools, '--proxy-pool', 'main', '--depth', '1', '--max-runs', '30', '--parallel', '1',
      '--job', JSON.stringify({ url: 'http://root.test/', children })], { cwd: SCRIPTS, timeoutMs: 380_000 });
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(await readFile(report, 'utf8')) as { runs: { run_id: string }[] };
    expect(rep.runs).toHaveLength(30);
    // Every run went through the proxy the turn gave it: p0, p1, p2, p0 …
    expect(rep.runs.map((x) => proxyOf(x.run_id))).toEqual(rep.runs.map((_, i) => `p${i % 3}`));
    for (const p of proxies) expect(p.hits.every((h) => h.authorized)).toBe(true);

    const everything = [r.stdout, r.stderr];
    for (const f of await filesUnder(dir)) if (f !== pools) everything.push((await readFile(f)).toString('latin1'));
    const produced = await filesUnder(join(dir, 'data'));
    expect(produced.some((f) => f.endsWith('ledger.sqlite'))).toBe(true);
    expect(produced.some((f) => f.endsWith('.frontier.sqlite'))).toBe(true);
    expect(produced.some((f) => f.endsWith('proxy-state.sqlite'))).toBe(true);
    for (const text of everything) expect(text).not.toContain(PASSWORD);
  });

  it('round robin continues across invocations (state in the state dir), and a manifest records the endpoint without its password', async () => {
    const { dir, pools } = await setup({ strategy: 'round_robin' });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const report = join(dir, `r${i}.json`);
      const r = await quarry(['run', '--script', 'fetch.mjs', '--source', 's', '--storage-path', join(dir, 'data'), '--report', report,
        '--proxy-config', pools, '--proxy-pool', 'main', '--job', '{"url":"http://one.test/"}'], { cwd: SCRIPTS });
      expect(r.code, r.stderr).toBe(0);
      const rep = JSON.parse(await readFile(report, 'utf8')) as { run_id: string; proxy: { pool: string; endpoint_index: number; endpoint: Record<string, unknown> } };
      expect(rep.proxy).toMatchObject({ pool: 'main', endpoint_index: i % 3, endpoint: { username: 'scraper' } });
      expect(rep.proxy.endpoint.password).toBeUndefined();
      ids.push(rep.run_id);
    }
    expect(ids.map(proxyOf)).toEqual(['p0', 'p1', 'p2', 'p0']);
  });

  it('rotate_proxy moves the sticky key\'s next run to another endpoint; without it the key stays', async () => {
    const { dir, pools } = await setup({ strategy: 'sticky', sticky: { scope: 'domain' } });
    const run = async (job: Record<string, unknown>): Promise<string> => {
      const report = join(dir, 'r.json');
      const r = await quarry(['run', '--script', 'fetch.mjs', '--source', 's', '--storage-path', join(dir, 'data'), '--report', report,
        '--proxy-config', pools, '--proxy-pool', 'main', '--job', JSON.stringify(job)], { cwd: SCRIPTS });
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(await readFile(report, 'utf8')) as { run_id: string }).run_id;
    };
    const a = proxyOf(await run({ url: 'http://shop.test/1' }));
    expect(proxyOf(await run({ url: 'http://shop.test/2' }))).toBe(a);
    const rotated = await run({ url: 'http://shop.test/3', rotate: true });
    expect(proxyOf(rotated)).toBe(a);
    const after = proxyOf(await run({ url: 'http://shop.test/4' }));
    expect(after).not.toBe(a);
    expect(proxyOf(await run({ url: 'http://shop.test/5' }))).toBe(after);
  });

  it('a dead endpoint fails its run, and the retry is sent to another endpoint', async () => {
    tmp = await makeTempDir('proxy-dead');
    proxies = [await startAuthProxy('alive', 'scraper', PASSWORD)];
    const pools = join(tmp.path, 'pools.json');
    const dead = { protocol: 'http', host: '127.0.0.1', port: await deadPort(), username: 'scraper', password: PASSWORD };
    await writeFile(pools, JSON.stringify([{ name: 'main', strategy: 'round_robin', endpoints: [dead, proxies[0]!.endpoint, dead] }]));
    const report = join(tmp.path, 'r.json');
    const r = await quarry(['run', '--script', 'fetch.mjs', '--source', 's', '--storage-path', join(tmp.path, 'data'), '--report', report,
      '--proxy-config', pools, '--proxy-pool', 'main', '--retries', '1', '--job', '{"url":"http://one.test/"}'], { cwd: SCRIPTS });
    expect(r.code, r.stderr).toBe(0);
    const rep = JSON.parse(await readFile(report, 'utf8')) as { attempt: number; run_id: string; proxy: { endpoint_index: number } };
    expect(rep.attempt).toBe(2);
    expect(rep.proxy.endpoint_index).toBe(1);
    expect(proxyOf(rep.run_id)).toBe('alive');
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });

  it('a browser run given a SOCKS5 endpoint with a password is refused with one line, before any browser starts', async () => {
    tmp = await makeTempDir('proxy-socks');
    const pools = join(tmp.path, 'pools.json');
    await writeFile(pools, JSON.stringify({ main: { strategy: 'round_robin', endpoints: [{ protocol: 'socks5', host: '127.0.0.1', port: await deadPort(), username: 'u', password: PASSWORD }] } }));
    const r = await quarry(['run', '--script', 'browser-page.mjs', '--source', 's', '--storage-path', join(tmp.path, 'data'),
      '--proxy-config', pools, '--proxy-pool', 'main', '--job', '{"url":"http://one.test/"}'], { cwd: SCRIPTS });
    expect(r.code).toBe(2);
    const lines = (r.stdout + r.stderr).split('\n').filter((l) => l.includes('Chromium does not authenticate to SOCKS5'));
    // The one-line reason, as the run's message (it may be echoed by the summary and the executor's stderr).
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toContain('socks5://127.0.0.1:');
    expect(r.stdout).toContain('outcome=executor_crash');
    expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });

  it('random over a 30-run fan-out covers the pool and never repeats an endpoint inside the recency window; stats proxies counts what the proxies saw', async () => {
    const { dir, pools } = await setup({ strategy: 'random', recency_window: 2 }, 4);
    const runs = await crawl(dir, pools, { url: 'http://root.test/' }, urls(29));
    const seq = runs.map(proxyOf);
    expect(new Set(seq)).toEqual(new Set(['p0', 'p1', 'p2', 'p3']));
    for (let i = 2; i < seq.length; i++) expect([seq[i - 1], seq[i - 2]], `run ${i}`).not.toContain(seq[i]);
    // ctx.http goes through the proxy by CONNECT (undici's ProxyAgent tunnels), authenticated.
    for (const p of proxies) expect(p.hits.every((h) => h.via === 'connect' && h.authorized)).toBe(true);
    const stats = await quarry(['stats', 'proxies', '--storage-path', join(dir, 'data'), '-f', 'json'], { cwd: dir });
    expect(stats.code, stats.stderr).toBe(0);
    const rows = JSON.parse(stats.stdout) as { endpoint_index: number; uses: number; failures: number }[];
    expect(rows.map((r) => [r.endpoint_index, r.uses, r.failures])).toEqual(proxies.map((p, i) => [i, p.runs().length, 0]));
  });

  it('sticky by job spreads a 30-run fan-out over the pool, and each work item keeps its endpoint in the next crawl', async () => {
    const { dir, pools } = await setup({ strategy: 'sticky', sticky: { scope: 'job' } });
    const children = urls(29);
    const first = (await crawl(dir, pools, { url: 'http://root.test/' }, children)).map(proxyOf);
    expect(first).toEqual(first.map((_, i) => `p${i % 3}`));
    // Another root, the same first five children: each child's key (target + params) is on its endpoint still.
    const again = (await crawl(dir, pools, { url: 'http://again.test/' }, children.slice(0, 5))).map(proxyOf);
    expect(again.slice(1)).toEqual(first.slice(1, 6));
  });

  it('sticky by domain keeps a domain on its endpoint until its TTL lapses; sticky by origin tells ports apart', async () => {
    tmp = await makeTempDir('proxy-sticky');
    proxies = await Promise.all(Array.from({ length: 4 }, (_, i) => startAuthProxy(`p${i}`, 'scraper', PASSWORD)));
    const pools = join(tmp.path, 'pools.json');
    const endpoints = proxies.map((p) => p.endpoint);
    const ttl = 12_000;
    await writeFile(pools, JSON.stringify({
      dom: { strategy: 'sticky', sticky: { scope: 'domain', ttl_ms: ttl }, endpoints },
      orig: { strategy: 'sticky', sticky: { scope: 'origin' }, endpoints: endpoints.slice(0, 3) },
    }));
    const u = (x: string) => ({ url: `http://${x}` });
    const before = (await crawl(tmp.path, pools, u('a.test/1'), ['b.test/1', 'a.test/2', 'c.test/1', 'b.test/2', 'a.test/3'].map(u), { pool: 'dom' })).map(proxyOf);
    expect(before).toEqual(['p0', 'p1', 'p0', 'p2', 'p1', 'p0']);
    const ended = Date.now();
    // Every assignment above was made before `ended`: past it plus the TTL, each domain is assigned anew, in turn.
    await new Promise((r) => setTimeout(r, ttl + 500 - (Date.now() - ended)));
    const after = (await crawl(tmp.path, pools, u('a.test/4'), ['b.test/3', 'a.test/5'].map(u), { pool: 'dom' })).map(proxyOf);
    expect(after).toEqual(['p3', 'p0', 'p3']);

    const origins = (await crawl(tmp.path, pools, u('a.test/1'), ['a.test:8080/1', 'a.test/2', 'b.test/1', 'a.test:8080/2'].map(u), { pool: 'orig' })).map(proxyOf);
    expect(origins).toEqual(['p0', 'p1', 'p0', 'p2', 'p1']);
  });

  it('rotate_proxy moves the next run of a fan-out to another endpoint (random over two: strict alternation)', async () => {
    const { dir, pools } = await setup({ strategy: 'random' }, 2);
    const seq = (await crawl(dir, pools, { url: 'http://root.test/', rotate: true }, urls(11).map((c) => ({ ...c, rotate: true })))).map(proxyOf);
    for (let i = 1; i < seq.length; i++) expect(seq[i], `run ${i}`).not.toBe(seq[i - 1]);
    const stats = await quarry(['stats', 'proxies', '--storage-path', join(dir, 'data'), '-f', 'json'], { cwd: dir });
    expect((JSON.parse(stats.stdout) as { rotations: number }[]).reduce((n, r) => n + r.rotations, 0)).toBe(12);
  });

  it('quarry retry of a run that had a proxy selects a fresh endpoint from its pool, and refuses to go out without the pool', async () => {
    tmp = await makeTempDir('proxy-retry');
    proxies = [await startAuthProxy('alive', 'scraper', PASSWORD)];
    const pools = join(tmp.path, 'pools.json');
    const dead = { protocol: 'http', host: '127.0.0.1', port: await deadPort(), username: 'scraper', password: PASSWORD };
    await writeFile(pools, JSON.stringify({ main: { strategy: 'round_robin', endpoints: [dead, proxies[0]!.endpoint] } }));
    const data = join(tmp.path, 'data');
    const first = await quarry(['run', '--script', 'fetch.mjs', '--source', 's', '--day', '2026-11-01', '--storage-path', data,
      '--proxy-config', pools, '--proxy-pool', 'main', '--job', '{"url":"http://one.test/"}'], { cwd: SCRIPTS });
    expect(first.code).not.toBe(0);
    const refused = await quarry(['retry', '--storage-path', data, '--source', 's'], { cwd: SCRIPTS });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('not re-run: its last run took its proxy from pool "main", whose endpoints are never recorded; give --proxy-config FILE');
    const retried = await quarry(['retry', '--storage-path', data, '--source', 's', '--proxy-config', pools], { cwd: SCRIPTS });
    expect(retried.code, retried.stderr).toBe(0);
    for (const r of [first, refused, retried]) expect(r.stdout + r.stderr).not.toContain(PASSWORD);
    const list = JSON.parse((await quarry(['list', 'runs', '--storage-path', data, '-f', 'json'], { cwd: SCRIPTS })).stdout) as { run_id: string; attempt: number }[];
    expect(list.map((r) => r.attempt).sort()).toEqual([1, 2]);
    expect(proxyOf(list.find((r) => r.attempt === 2)!.run_id)).toBe('alive');
    const stats = JSON.parse((await quarry(['stats', 'proxies', '--storage-path', data, '-f', 'json'], { cwd: SCRIPTS })).stdout) as Record<string, unknown>[];
    expect(stats.map((r) => [r.endpoint_index, r.uses, r.failures])).toEqual([[0, 1, 1], [1, 1, 0]]);
  });

  it('quarry retry of a crawl that failed through a dead endpoint re-runs the tree through the pool', async () => {
    tmp = await makeTempDir('proxy-retry-tree');
    proxies = [await startAuthProxy('alive', 'scraper', PASSWORD)];
    const pools = join(tmp.path, 'pools.json');
    const dead = { protocol: 'http', host: '127.0.0.1', port: await deadPort(), username: 'scraper', password: PASSWORD };
    await writeFile(pools, JSON.stringify({ main: { strategy: 'round_robin', endpoints: [dead, proxies[0]!.endpoint] } }));
    const data = join(tmp.path, 'data');
    const first = await quarry(['run', '--script', 'fetch.mjs', '--source', 's', '--day', '2026-11-01', '--storage-path', data, '--depth', '1', '--max-runs', '2',
      '--proxy-config', pools, '--proxy-pool', 'main', '--job', '{"url":"http://one.test/"}'], { cwd: SCRIPTS });
    expect(first.code).not.toBe(0);
    const refused = await quarry(['retry', '--storage-path', data, '--source', 's'], { cwd: SCRIPTS });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('its last run took its proxy from pool "main"');
    expect(proxies[0]!.runs()).toEqual([]);
    const retried = await quarry(['retry', '--storage-path', data, '--source', 's', '--proxy-config', pools], { cwd: SCRIPTS });
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stderr).toContain('re-running tree');
    expect(proxies[0]!.runs()).toHaveLength(1);
    for (const r of [first, refused, retried]) expect(r.stdout + r.stderr).not.toContain(PASSWORD);
  });

  it('browser runs of a crawl each get their own endpoint in turn; Chromium sends plain HTTP as proxied GETs', async () => {
    const { dir, pools } = await setup({ strategy: 'round_robin' });
    const seq = (await crawl(dir, pools, { url: 'http://root.test/' }, urls(2), { script: 'browser-page.mjs' })).map(proxyOf);
    expect(seq).toEqual(['p0', 'p1', 'p2']);
    // Chromium asks without credentials first and answers the 407 with them: the runs arrive authorized, as GETs.
    for (const p of proxies) {
      const authorized = p.hits.filter((h) => h.authorized && h.run !== null);
      expect(authorized.length).toBeGreaterThan(0);
      expect(authorized.every((h) => h.via === 'get')).toBe(true);
    }
  });
});
