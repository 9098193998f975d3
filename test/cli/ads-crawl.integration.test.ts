/**
 * The ads ETL's volume-first posture (issue 17, examples/ads-report/README.md):
 * the same extract.ts, driven as a crawl under the buffered policy — the root
 * customers.ts lists the dashboard's customers and enqueues one extract.ts run
 * per customer (its --category, by a per-enqueue override) for the tree's day.
 * The tree becomes authoritative as one; `quarry read` returns each (customer,
 * day)'s campaigns exactly once, from its member run; `quarry report --html`
 * shows the tree in its tree block.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import * as cheerio from 'cheerio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
// @ts-expect-error the fixture site is plain JavaScript shared with the demo and the tutorial
import { campaignsOf, CUSTOMERS, startAdsSite } from '../../examples/ads-report/site.mjs';

interface Site { url: string; close(): Promise<void> }
const fixture = {
  campaignsOf: campaignsOf as (customer: string, day: string) => { campaign_id: string }[],
  customers: CUSTOMERS as string[],
  start: startAdsSite as (o: { user: string; password: string; failing: string[] }) => Promise<Site>,
};
const LOGIN = { ADS_USER: 'analyst', ADS_PASSWORD: 'correct horse' };
const DAY = '2026-11-03';
const TREE = 'ads-crawl-1';

let dir: TempDir;
let site: Site;
let storage: string;
beforeAll(async () => {
  dir = await makeTempDir('ads-crawl');
  storage = join(dir.path, 'data');
  site = await fixture.start({ user: LOGIN.ADS_USER, password: LOGIN.ADS_PASSWORD, failing: [] });
});
afterAll(async () => {
  await site?.close();
  await dir?.remove();
});

describe('the ads ETL as a volume-first crawl (examples/ads-report/customers.ts)', { timeout: 300_000 }, () => {
  it('reads each (customer, day) once through an authoritative tree, and the report shows the tree', async () => {
    const run = await quarry(['run', '--script', 'customers.ts', '--source', 'ads', '--category', 'customers', '--day', DAY, '--run-id', TREE,
      '--job', JSON.stringify({ url: site.url }), '--depth', '1', '--max-runs', '100', '--parallel', '3', '--policy', 'buffered', '--buffer-events', '1000',
      '--storage-path', storage], { cwd: join(REPO_ROOT, 'examples/ads-report'), env: LOGIN, timeoutMs: 280_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`tree_id=${TREE}, runs=6, .*succeeded=6, failed=0, .*authoritative=true`));

    const state = await quarry(['state', 'inspect', '--storage-path', storage, '--source', 'ads', '-f', 'json']);
    expect(state.code, state.stderr).toBe(0);
    const rows = JSON.parse(state.stdout) as { category: string; day: string; status: string; authority: string; current_run_id: string }[];
    expect(rows.map((r) => `${r.category}/${r.day}:${r.status}:${r.authority}:${r.current_run_id}`).sort())
      .toEqual(['customers', ...fixture.customers].map((c) => `${c}/${DAY}:success:tree:${TREE}`).sort());

    const read = await quarry(['read', '--storage-path', storage, '--source', 'ads', '--type', 'item']);
    expect(read.code, read.stderr).toBe(0);
    const records = read.stdout.trim().split('\n').map((l) => JSON.parse(l) as { category: string; day: string; run_id: string; payload: { item_type: string; data: { campaign_id?: string } } });
    for (const customer of fixture.customers) {
      const mine = records.filter((r) => r.category === customer && r.payload.item_type === 'campaign_day');
      expect(new Set(mine.map((r) => r.run_id)).size, customer).toBe(1);
      expect(mine.every((r) => r.day === DAY)).toBe(true);
      expect(mine.map((r) => r.payload.data.campaign_id).sort(), customer).toEqual(fixture.campaignsOf(customer, DAY).map((c) => c.campaign_id).sort());
    }
    expect(records.filter((r) => r.payload.item_type === 'customer')).toHaveLength(fixture.customers.length);

    const html = join(dir.path, 'report.html');
    const made = await quarry(['report', '--html', html, '--storage-path', storage, '--source', 'ads', '--day', DAY]);
    expect(made.code, made.stderr).toBe(0);
    const $ = cheerio.load(await readFile(html, 'utf8'));
    const tree = $(`table.trees tr[data-tree="${TREE}"]`);
    expect(tree).toHaveLength(1);
    // tree, started, runs, depth, outcomes, partitions, authoritative in
    expect(tree.find('td').map((_, td) => $(td).text()).get().filter((_, i) => i !== 1)).toEqual([TREE, '6', '1', 'success 6', '6', '6']);
  });
});
