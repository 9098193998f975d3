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
});
