/**
 * The ads ETL of examples/ads-report, end to end, as a team would run it
 * (issue 17): etl.sh over 5 customers × 7 days with two days failing, the
 * gaps in `state inspect`, the report page in Chromium with JavaScript off,
 * `quarry retry` after the dashboard recovers, `quarry export` to DuckDB and
 * the dashboard query over it.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import puppeteer, { type Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_FLAGS, DEFAULT_CHROMIUM_PATH } from '../../src/executor/browser.js';
import { CLI, quarry, REPO_ROOT } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
// @ts-expect-error the fixture site is plain JavaScript shared with the demo and the tutorial
import { campaignsOf, startAdsSite } from '../../examples/ads-report/site.mjs';

interface Site { url: string; recover(): void; close(): Promise<void> }
interface Campaign { clicks: number; cost_cents: number }
const fixture = {
  campaignsOf: campaignsOf as (customer: string, day: string) => Campaign[],
  start: startAdsSite as (o: { user: string; password: string; failing: string[] }) => Promise<Site>,
};
/** The page's computed style, in the browser (the test compiles without the DOM library). */
type StyleOf = (el: unknown) => { backgroundColor: string };

const DAYS = ['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04', '2026-11-05', '2026-11-06', '2026-11-07'];
const FAILING = ['globex/2026-11-03', 'hooli/2026-11-05'];
const LOGIN = { ADS_USER: 'analyst', ADS_PASSWORD: 'correct horse' };
/** Where the report and its screenshot are left for people to look at (gitignored). */
const OUTPUT = join(REPO_ROOT, '.tmp', 'ads-report');

interface StateRow { source: string; category: string; day: string; status: string; current_run_id: string | null; last_run_id: string | null }

let dir: TempDir;
let site: Site;
let browser: Browser;
let storage: string;

/** Process groups of the shell scripts started, killed in afterAll should a test time out while they run. */
const groups = new Set<number>();

function sh(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [script, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (child.pid !== undefined) groups.add(child.pid);
    child.on('exit', () => groups.delete(child.pid!));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function stateRows(...extra: string[]): Promise<StateRow[]> {
  const r = await quarry(['state', 'inspect', '--storage-path', storage, '--source', 'ads', '-f', 'json', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StateRow[];
}

beforeAll(async () => {
  dir = await makeTempDir('ads-etl');
  storage = join(dir.path, 'data');
  site = await fixture.start({ user: LOGIN.ADS_USER, password: LOGIN.ADS_PASSWORD, failing: FAILING });
  browser = await puppeteer.launch({ executablePath: process.env.QUARRY_CHROMIUM_PATH ?? DEFAULT_CHROMIUM_PATH, args: [...CHROMIUM_FLAGS], headless: true });
});

afterAll(async () => {
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await browser?.close();
  await site?.close();
  await dir?.remove();
});

describe('the ads ETL (examples/ads-report)', () => {
  it('runs one strict run per (customer, day); the two days the dashboard failed are the gaps state inspect shows', async () => {
    const etl = await sh(join(REPO_ROOT, 'examples/ads-report/etl.sh'), DAYS, {
      ...LOGIN, ADS_URL: site.url, QUARRY: `${process.execPath} ${CLI}`, QUARRY_RUN_FLAGS: `--storage-path ${storage}`, PARALLEL: '3',
    });
    expect(etl.code, etl.stderr).not.toBe(0);
    expect(etl.stdout.split('\n').filter((l) => l.startsWith('ok ')).length).toBe(33);
    expect(etl.stderr.match(/^FAILED .*$/gm)?.map((l) => l.replace(/^FAILED\s+/, '').replace(' ', '/')).sort()).toEqual(FAILING);

    const rows = await stateRows('--expect-days', `${DAYS[0]}..${DAYS[6]}`);
    expect(rows).toHaveLength(35);
    expect(rows.filter((r) => r.status !== 'success').map((r) => `${r.category}/${r.day}:${r.status}`)).toEqual(FAILING.map((f) => `${f}:failed`));
  }, 300_000); // 35 runs, three at a time (about 2.5 s of CPU each): under a minute on an idle 2-core machine

  it('writes a report that, without JavaScript, shows one cell per partition with its status and colour, and the counts of state inspect', async () => {
    // One day more than ran, so the page shows all three statuses: 2026-11-08 is expected and pending.
    const range = ['--from-day', DAYS[0]!, '--to-day', '2026-11-08'];
    mkdirSync(OUTPUT, { recursive: true });
    const html = join(OUTPUT, 'report.html');
    const made = await quarry(['report', '--html', html, '--storage-path', storage, '--source', 'ads', ...range, '-f', 'json']);
    expect(made.code, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({ html, partitions: { success: 33, failed: 2, pending: 5 } });

    const expected = await stateRows(...range, '--expect-all');
    const page = await browser.newPage();
    try {
      await page.setJavaScriptEnabled(false);
      await page.setViewport({ width: 1200, height: 900 });
      await page.goto(pathToFileURL(html).href);
      const cells = await page.$$eval('td.cell', (tds) => tds.map((td) => ({ partition: td.getAttribute('data-partition'), status: td.getAttribute('data-status'), text: td.textContent, colour: (globalThis as unknown as { getComputedStyle: StyleOf }).getComputedStyle(td).backgroundColor })));
      expect(cells.map((c) => `${c.partition}=${c.status}`).sort()).toEqual(expected.map((r) => `${r.source}/${r.category}/${r.day}=${r.status}`).sort());
      for (const c of cells) expect(c.text).toContain(c.status!);
      const colours = new Map<string, Set<string>>();
      for (const c of cells) colours.set(c.status!, (colours.get(c.status!) ?? new Set()).add(c.colour));
      expect([...colours.keys()].sort()).toEqual(['failed', 'pending', 'success']);
      for (const set of colours.values()) expect(set.size).toBe(1);
      expect(new Set([...colours.values()].map((s) => [...s][0])).size).toBe(3);

      const counts = await page.$$eval('#counts b', (bs) => Object.fromEntries(bs.map((b) => [b.id.replace('count-', ''), Number(b.textContent)])));
      const tally = (status: string) => expected.filter((r) => r.status === status).length;
      expect(counts).toEqual({ success: tally('success'), failed: tally('failed'), pending: tally('pending') });
      const runRows = await page.$$eval('table.runs tr[data-run]', (trs) => trs.length);
      expect(runRows).toBe(35);
      await page.screenshot({ path: join(OUTPUT, 'report.png'), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it('fills the gaps with quarry retry once the dashboard recovers; DuckDB then holds each (customer, day) once, from its authoritative run', async () => {
    const before = await stateRows('--expect-days', `${DAYS[0]}..${DAYS[6]}`);
    site.recover();
    const retry = await quarry(['retry', '--storage-path', storage, '--source', 'ads', '--from-day', DAYS[0]!, '--to-day', DAYS[6]!, '--quiet'], { env: LOGIN });
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stderr).toContain('2 of 2 run(s) succeeded');

    const after = await stateRows('--expect-days', `${DAYS[0]}..${DAYS[6]}`);
    expect(after.map((r) => r.status)).toEqual(Array(35).fill('success'));
    for (const f of FAILING) {
      const [category, day] = f.split('/');
      const old = before.find((r) => r.category === category && r.day === day)!;
      const now = after.find((r) => r.category === category && r.day === day)!;
      expect(now.current_run_id).not.toBe(old.last_run_id);
    }

    const db = join(dir.path, 'ads.duckdb');
    const exported = await quarry(['export', '--storage-path', storage, '--to', `duckdb:${db}`, '--source', 'ads', '--from-day', DAYS[0]!, '--to-day', DAYS[6]!, '--require-complete', '--category', 'acme']);
    expect(exported.code, exported.stderr).toBe(0);
    const all = await quarry(['export', '--storage-path', storage, '--to', `duckdb:${db}`, '--source', 'ads', '-f', 'json']);
    expect(all.code, all.stderr).toBe(0);
    expect(JSON.parse(all.stdout)).toMatchObject({ partitions_matched: 35, partitions_loaded: 28, partitions_skipped: 7 });

    const instance = await DuckDBInstance.create(db, { access_mode: 'READ_ONLY' });
    const conn = await instance.connect();
    try {
      const groups = (await conn.runAndReadAll(`SELECT category, CAST(day AS VARCHAR) AS day, count(DISTINCT run_id)::INTEGER AS runs, min(run_id) AS run_id, count(*)::INTEGER AS items
        FROM quarry_items WHERE source = 'ads' GROUP BY ALL ORDER BY ALL`)).getRowObjectsJson();
      expect(groups).toEqual(after.map((r) => ({ category: r.category, day: r.day, runs: 1, run_id: r.current_run_id, items: fixture.campaignsOf(r.category, r.day).length })));
      const dashboard = (await conn.runAndReadAll(readFileSync(join(REPO_ROOT, 'examples/ads-report/dashboard.sql'), 'utf8'))).getRowObjectsJson();
      expect(dashboard).toHaveLength(35);
      const globex = dashboard.find((r) => r.customer === 'globex' && r.day === '2026-11-03')!;
      const rows = fixture.campaignsOf('globex', '2026-11-03');
      expect(Number(globex.clicks)).toBe(rows.reduce((n, r) => n + r.clicks, 0));
      expect(Number(globex.spend)).toBeCloseTo(rows.reduce((n, r) => n + r.cost_cents, 0) / 100, 2);
    } finally {
      conn.closeSync();
      instance.closeSync();
    }
  });

  it('extracts the same items with the browser variant (extract-browser.ts) through the login form', async () => {
    const other = join(dir.path, 'browser-data');
    const run = await quarry(['run', '--script', 'examples/ads-report/extract-browser.ts', '--source', 'ads', '--category', 'initech', '--day', DAYS[1]!,
      '--job', JSON.stringify({ url: site.url }), '--storage-path', other, '--browser-ws-endpoint', browser.wsEndpoint(), '--quiet'], { env: LOGIN });
    expect(run.code, run.stderr).toBe(0);
    const read = async (path: string) => {
      const r = await quarry(['read', '--storage-path', path, '--source', 'ads', '--category', 'initech', '--day', DAYS[1]!, '--type', 'item']);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { payload: unknown }).payload);
    };
    const viaBrowser = await read(other);
    expect(viaBrowser).toHaveLength(fixture.campaignsOf('initech', DAYS[1]!).length);
    expect(viaBrowser).toEqual(await read(storage));
  });
});
