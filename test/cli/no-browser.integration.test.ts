import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { parseManifest } from '../../src/storage/manifest.js';
import { streamRecords } from '../../src/storage/reader.js';
import type { EventRecord } from '../../src/storage/records.js';
import { quarry, REPO_ROOT, type CliResult } from '../_harness/cli.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
// @ts-expect-error the fixture site is plain JavaScript shared with the demo
import { startSite } from '../../examples/site/server.mjs';

const fixtures = join(REPO_ROOT, 'test/fixtures/no-browser');
let tmp: TempDir;
let site: { url: string; close(): Promise<void> };
let fakeChromium: string;
let invocations: string;
let cookieServer: Server;
let cookieBase: string;

beforeAll(async () => {
  tmp = await makeTempDir('no-browser');
  site = (await startSite(0)) as typeof site;
  // A "browser" that records that it was started and fails: any launch shows in the log and breaks the run.
  invocations = join(tmp.path, 'chromium-invocations.log');
  fakeChromium = join(tmp.path, 'fake-chromium.sh');
  writeFileSync(fakeChromium, `#!/bin/sh\necho "$$ $*" >> '${invocations}'\nexit 1\n`);
  chmodSync(fakeChromium, 0o755);
  // Sets a fresh session cookie on /login and echoes the cookie header on /whoami.
  let logins = 0;
  cookieServer = createServer((req, res) => {
    if (req.url === '/login') res.writeHead(200, { 'set-cookie': `sid=s${++logins}; Path=/; HttpOnly` }).end('ok');
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(req.headers.cookie ?? '');
  });
  await new Promise<void>((resolve) => cookieServer.listen(0, '127.0.0.1', resolve));
  cookieBase = `http://127.0.0.1:${(cookieServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await site.close();
  await new Promise((resolve) => cookieServer.close(resolve));
  await tmp.remove();
});

function run(script: string, job: unknown, runId: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return quarry(['run', '--script', resolve(fixtures, script), '--source', 'nb', '--day', '2026-11-23', '--run-id', runId, '--job', JSON.stringify(job), '--storage-path', join(tmp.path, 'data'), ...extra], { env });
}

/** The item payloads a run stored, read from its partition (not through the ledger: several runs share one partition here). */
async function items(runId: string): Promise<Record<string, unknown>[]> {
  const fs = await FsBackend.create(join(tmp.path, 'data'));
  try {
    const manifest = parseManifest(await readFile(join(tmp.path, 'data/datasets/quarry/partitions/source=nb/category=default/day=2026-11-23', `run_id=${runId}`, '_manifest.json')));
    const out: Record<string, unknown>[] = [];
    for await (const r of streamRecords(fs, manifest)) {
      const e = r as EventRecord;
      if (e.event_type === 'item') out.push((e.payload as { data: Record<string, unknown> }).data);
    }
    return out;
  } finally {
    await fs.close();
  }
}

describe('a script with options = { browser: false }', () => {
  it('runs without ever starting the Chromium named by --chromium-path, and stores what it fetched', async () => {
    const res = await run('fetch-title.ts', { url: site.url }, 'nb-flag', ['--chromium-path', fakeChromium]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/outcome=success, .*items=1/);
    expect(existsSync(invocations)).toBe(false);
    expect(await items('nb-flag')).toEqual([{ status: 200, title: 'Books, page 1 of 3', has_page: false }]);
  });

  it('runs the cheerio example over every page of the fixture site without ever starting the Chromium named by QUARRY_CHROMIUM_PATH', async () => {
    const example = join(REPO_ROOT, 'examples/books-http.ts');
    const dry = await quarry(['run', '--dry-run', '--script', example, '--source', 'nb']);
    expect(dry.code, dry.stderr).toBe(0);
    const res = await run(example, { url: site.url }, 'nb-env', ['--ledger', join(tmp.path, 'env.sqlite')], { QUARRY_CHROMIUM_PATH: fakeChromium });
    expect(res.code, res.stderr).toBe(0);
    expect(existsSync(invocations)).toBe(false);
    const books = await items('nb-env');
    expect(books).toHaveLength(24);
    expect(new Set(books.map((b) => b.id)).size).toBe(24);
    expect(books[0]).toEqual({ id: 'b001', title: 'A Field Guide to Ferns', price_cents: 899, in_stock: true, rating: 1, page: 1 });
    expect(books.map((b) => b.page)).toEqual([...Array(8).fill(1), ...Array(8).fill(2), ...Array(8).fill(3)]);
  });

  it('while a script without the option still launches that Chromium (so the fake above would have been noticed)', async () => {
    const res = await quarry(['run', '--script', join(REPO_ROOT, 'test/fixtures/run-scripts/throws.ts'), '--source', 'nb', '--run-id', 'nb-browser', '--storage-path', join(tmp.path, 'data')], { env: { QUARRY_CHROMIUM_PATH: fakeChromium } });
    expect(res.code).toBe(2);
    expect(res.stdout).toMatch(/browser failed to start/);
    expect(readFileSync(invocations, 'utf8')).toMatch(/--headless/);
  });

  it('keeps cookies within a run and never carries them into the next run', async () => {
    const first = await run('cookies.ts', { base: cookieBase }, 'nb-cookies-1', ['--ledger', join(tmp.path, 'c1.sqlite')]);
    expect(first.code, first.stderr).toBe(0);
    const second = await run('cookies.ts', { base: cookieBase }, 'nb-cookies-2', ['--ledger', join(tmp.path, 'c2.sqlite')]);
    expect(second.code, second.stderr).toBe(0);
    expect(await items('nb-cookies-1')).toEqual([{ before: '', after: 'sid=s1' }]);
    expect(await items('nb-cookies-2')).toEqual([{ before: '', after: 'sid=s2' }]);
  });
});

describe('a bad options export', () => {
  it('--dry-run refuses a non-boolean browser with one line naming the script and the fix (every bad shape: script-options.test.ts)', async () => {
    const script = 'bad-option-value.ts';
    const res = await quarry(['run', '--dry-run', '--script', join(fixtures, script), '--source', 'nb', '--storage-path', join(tmp.path, 'dry')]);
    expect(res.code).toBe(2);
    const lines = res.stderr.trim().split('\n');
    expect(lines, res.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/the "options" export's browser must be true or false, got "no"/);
    expect(lines[0]).toContain(script);
    expect(existsSync(join(tmp.path, 'dry'))).toBe(false);
  });

  it('a real run of it is a load error: one line on stderr, no browser started', async () => {
    const launches = (): number => (existsSync(invocations) ? readFileSync(invocations, 'utf8').split('\n').filter((l) => l !== '').length : 0);
    const before = launches();
    const res = await run('bad-option-key.ts', {}, 'nb-bad', ['--chromium-path', fakeChromium]);
    expect(res.code).toBe(2);
    const lines = res.stderr.trim().split('\n');
    expect(lines, res.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/cannot load script: .*bad-option-key\.ts: the "options" export has an unknown key "brwser"/);
    expect(launches()).toBe(before);
  });
});
