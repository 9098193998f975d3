/**
 * `quarry run --depth` end to end (SPEC §10, §8) over the crawl fixture site
 * with no-browser scripts run by the real executor: the depth bound, the cap,
 * dedup, `--parallel` measured as the site's peak of requests in flight, an
 * enqueue the buffered policy dropped still crawled, a flaky child retried as
 * a new run and counted once, a missing target failing that item only, the
 * tree's exit code with 0 and 2 allowed failures, `quarry read` returning each
 * page's item once, and a root killed after it finalized not promoted alone.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { startCrawlSite, type CrawlSite, type CrawlSiteOptions } from '../_harness/crawl-site.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

const SCRIPTS = join(REPO_ROOT, 'test/fixtures/crawl-site');
const DAY = '2026-11-23';

let site: CrawlSite | undefined;
let tmp: TempDir | undefined;
afterEach(async () => {
  await site?.close();
  await tmp?.remove();
  site = undefined;
  tmp = undefined;
});

interface Crawl {
  r: CliResult;
  report: { exit_code: number; tree: Record<string, unknown>; policy?: { dropped_by_type: Record<string, number> }; runs: { run_id: string; outcome: string; attempt: number; parent_run_id: string | null }[] };
  storage: string;
  site: CrawlSite;
}

async function crawl(siteOpts: CrawlSiteOptions, job: Record<string, unknown>, flags: string[], env: NodeJS.ProcessEnv = {}): Promise<Crawl> {
  tmp = await makeTempDir('crawl');
  site = await startCrawlSite(siteOpts);
  const storage = join(tmp.path, 'data');
  const reportPath = join(tmp.path, 'report.json');
  const r = await quarry([
    'run', '--script', 'listing.mjs', '--source', 'site', '--day', DAY, '--job', JSON.stringify({ base: site.url, ...job }),
    '--storage-path', storage, '--report', reportPath, ...flags,
  ], { cwd: SCRIPTS, env, timeoutMs: 180_000 });
  const { readFile } = await import('node:fs/promises');
  const report = JSON.parse(await readFile(reportPath, 'utf8').catch(() => '{}')) as Crawl['report'];
  return { r, report, storage, site };
}

async function readItems(storage: string): Promise<{ item_type: string; data: { id: number } }[]> {
  const r = await quarry(['read', '--storage-path', storage, '--type', 'item']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { id: number } } }).payload);
}

describe('quarry run --depth (crawl trees over the fixture site)', { timeout: 180_000 }, () => {
  it('stops at --depth, dedups links found twice, and the tree becomes authoritative (exit 0)', async () => {
    const c = await crawl({ details: 6 }, {}, ['--depth', '1', '--max-runs', '50', '--parallel', '3']);
    expect(c.r.code, c.r.stderr).toBe(0);
    // root + 6 details; the 6 assets (each linked twice) refused by depth, counted once each.
    expect(c.report.tree).toMatchObject({ admitted: 7, succeeded: 7, failed: 0, deduplicated: 6, not_executed_depth: 6, not_executed_cap: 0, authoritative: true });
    for (let i = 1; i <= 6; i++) expect(c.site.requests.get(`/detail/${i}`)).toBe(1);
    expect([...c.site.requests.keys()].some((p) => p.startsWith('/asset/'))).toBe(false);
    // Piped: one summary for the whole tree (no line per run), then where the data is and what the ledger says.
    const lines = c.r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^tree_id=\S+, runs=7, items=7, duration=[\d.]+s, admitted=7, succeeded=7, failed=0, retried=0, deduplicated=6, not_executed_cap=0, not_executed_depth=6, authoritative=true, reason=promoted$/);
    expect(lines[1]).toMatch(/^data: /);
    expect(lines[2]).toMatch(/^ledger: /);
  });

  it('admits exactly --max-runs items and counts the keys the cap refused', async () => {
    const c = await crawl({ details: 6 }, {}, ['--depth', '2', '--max-runs', '5', '--parallel', '2', '--quiet']);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.r.stdout).toBe('');
    // root + details 1-4 admitted; details 5-6 and every asset the admitted details found refused.
    expect(c.report.tree).toMatchObject({ admitted: 5, succeeded: 5, not_executed_cap: 2 + 5, authoritative: true });
    expect(c.report.runs).toHaveLength(5);
    expect(c.site.log.filter((l) => l.path !== '/list')).toHaveLength(4);
  });

  it('never has more than --parallel requests in flight, and reaches it', async () => {
    // Slots start on demand (docs/contracts/ipc.md): held runs grow the pool to --parallel once one
    // has waited a share of a slot's start, which on a loaded machine can take longer than 3 s.
    const c = await crawl({ details: 9, barrier: 3, barrierMaxMs: 15_000 }, {}, ['--depth', '1', '--max-runs', '50', '--parallel', '3']);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.site.peak()).toBe(3);
  });

  it('crawls an enqueue the buffered policy dropped from storage', async () => {
    const c = await crawl({ details: 6 }, {}, ['--depth', '1', '--max-runs', '50', '--parallel', '3', '--policy', 'buffered', '--buffer-events', '2']);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.report.policy?.dropped_by_type.enqueue).toBeGreaterThan(0);
    expect(c.report.tree).toMatchObject({ admitted: 7, succeeded: 7 });
    for (let i = 1; i <= 6; i++) expect(c.site.requests.get(`/detail/${i}`)).toBe(1);
  });

  it('retries a child that throws as a new run counted once, fails a missing target alone, exits 3 with no allowance', async () => {
    const c = await crawl({ details: 4 }, { flaky: [2], missing: true }, ['--depth', '1', '--max-runs', '50', '--parallel', '2', '--retries', '1']);
    expect(c.r.code, c.r.stderr).toBe(3);
    // root + 4 details + the missing target; detail 2 failed once and was retried.
    expect(c.report.tree).toMatchObject({ admitted: 6, succeeded: 5, failed: 1, retried: 1, authoritative: false });
    expect(c.r.stderr).toMatch(/tree \S+ is not authoritative/);
    const flaky = c.report.runs.filter((x) => x.attempt === 2);
    expect(flaky).toHaveLength(1);
    const first = c.report.runs.find((x) => x.run_id === flaky[0]!.parent_run_id);
    expect(first).toMatchObject({ attempt: 1, outcome: 'script_error' });
    expect(c.site.requests.get('/detail/2')).toBe(2);
    // The missing target never ran: no request for it, and every other page was crawled.
    expect(c.site.requests.get('/nowhere')).toBeUndefined();
    for (const i of [1, 3, 4]) expect(c.site.requests.get(`/detail/${i}`)).toBe(1);

    // retry of the failed tree partition re-runs the whole tree, as a new tree whose root's parent is the old root.
    const oldTree = c.report.tree.tree_id as string;
    const retry = await quarry(['retry', '--storage-path', c.storage], { cwd: SCRIPTS, timeoutMs: 180_000 });
    expect(retry.stderr).toMatch(new RegExp(`re-running tree ${oldTree} as a new tree (\\S+) \\(root parent ${oldTree}\\)`));
    const newTree = new RegExp(`as a new tree (\\S+) `).exec(retry.stderr)![1]!;
    // The missing target still fails the new tree too: exit 3, as quarry run --depth.
    expect(retry.code, retry.stderr).toBe(3);
    expect(c.site.requests.get('/list')).toBe(2);
    const { readFile } = await import('node:fs/promises');
    const rootClaim = JSON.parse(await readFile(join(c.storage, `datasets/quarry/runs/${newTree}.json`), 'utf8')) as { parent_run_id: string; fanout?: boolean };
    expect(rootClaim).toMatchObject({ parent_run_id: oldTree, fanout: true });
  });

  it('with --allow-failed-children 2 a tree with two failed items exits 0, and read returns each page once', async () => {
    const c = await crawl({ details: 4 }, { broken: [3], missing: true, flaky: [2] }, ['--depth', '1', '--max-runs', '50', '--parallel', '2', '--retries', '1', '--allow-failed-children', '2']);
    expect(c.r.code, c.r.stderr).toBe(0);
    expect(c.report.tree).toMatchObject({ admitted: 6, succeeded: 4, failed: 2, authoritative: true });
    const items = await readItems(c.storage);
    const details = items.filter((i) => i.item_type === 'detail').map((i) => i.data.id).sort();
    expect(details).toEqual([1, 2, 4]);
    expect(items.filter((i) => i.item_type === 'listing')).toHaveLength(1);
  });

  it('refuses --depth without --max-runs, and notes --max-runs/--parallel without --depth', async () => {
    tmp = await makeTempDir('crawl');
    const bad = await quarry(['run', '--script', 'listing.mjs', '--source', 'site', '--depth', '1', '--storage-path', join(tmp.path, 'd')], { cwd: SCRIPTS });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--depth 1 needs --max-runs N/);
    const outside = await quarry(['run', '--script', join(SCRIPTS, 'listing.mjs'), '--source', 'site', '--depth', '1', '--max-runs', '3', '--storage-path', join(tmp.path, 'd')], { cwd: tmp.path });
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/must lie under the scripts root/);
    site = await startCrawlSite({ details: 2 });
    const plain = await quarry(['run', '--script', 'listing.mjs', '--source', 'site', '--max-runs', '3', '--parallel', '2', '--job', JSON.stringify({ base: site.url }), '--storage-path', join(tmp.path, 'd')], { cwd: SCRIPTS });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stderr).toMatch(/^quarry run: --max-runs and --parallel have no effect without --depth N > 0/m);
    // No fan-out: the details were never fetched.
    expect(site.requests.get('/detail/1')).toBeUndefined();
  });
});
