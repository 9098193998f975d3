/**
 * One crawl tree with real Chromium (SPEC §10): a listing and 29 detail pages
 * rendered in the browser, each run its own executor and browser for now;
 * the tree becomes authoritative and `quarry read` returns each page once.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { startCrawlSite, type CrawlSite } from '../_harness/crawl-site.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

let site: CrawlSite;
let tmp: TempDir;
beforeAll(async () => {
  site = await startCrawlSite({ details: 29 });
  tmp = await makeTempDir('crawl-browser');
});
afterAll(async () => {
  await site.close();
  await tmp.remove();
});

describe('a browser crawl', () => {
  it('crawls 30 pages in Chromium as one authoritative tree', async () => {
    const storage = join(tmp.path, 'data');
    const r = await quarry(['run', '--script', 'browser-listing.mjs', '--source', 'site', '--day', '2026-11-23', '--job', JSON.stringify({ base: site.url }),
      '--storage-path', storage, '--depth', '1', '--max-runs', '30', '--parallel', '3', '--quiet'], { cwd: join(REPO_ROOT, 'test/fixtures/crawl-site'), timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    for (let i = 1; i <= 29; i++) expect(site.requests.get(`/detail/${i}`), `/detail/${i}`).toBe(1);
    const read = await quarry(['read', '--storage-path', storage, '--type', 'item']);
    expect(read.code, read.stderr).toBe(0);
    const ids = read.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { payload: { item_type: string; data: { id?: number } } }).payload)
      .filter((p) => p.item_type === 'detail').map((p) => p.data.id).sort((a, b) => a! - b!);
    expect(ids).toEqual(Array.from({ length: 29 }, (_, i) => i + 1));
  }, 320_000);
});
