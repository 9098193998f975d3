// `npm run demo`: serves the bookshop fixture on 127.0.0.1, first crawls it as
// a run tree (examples/crawl: list pages → book pages → author pages, no
// browser), then runs examples/paginate.ts through `quarry run`, both on the
// embedded defaults (filesystem storage + SQLite ledger under ./quarry-data),
// showing where the data is and what is authoritative.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startSite } from '../examples/site/server.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'cli', 'main.js');
const storage = join(root, 'quarry-data');

function quarry(args, cwd = root) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd, stdio: 'inherit' });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

/** The crawl example: a tree of runs that becomes authoritative as one (SPEC §10, §8). */
async function crawlDemo(siteUrl) {
  process.stdout.write(`\n== Crawling the bookshop at ${siteUrl} as a tree: list pages → book pages → author pages\n`);
  // Targets resolve relative to the working directory: the crawl runs from its own folder.
  const code = await quarry([
    'run', '--script', 'listing.ts', '--source', 'bookshop', '--category', 'crawl', '--job', JSON.stringify({ url: siteUrl }),
    '--storage-path', storage, '--depth', '2', '--max-runs', '100', '--parallel', '4',
  ], join(root, 'examples', 'crawl'));
  process.stdout.write(`\n== The crawl's data is in ${storage}/datasets/quarry/ (one run partition per page, one tree manifest under trees/)\n`);
  process.stdout.write(`== What is authoritative: the tree, in each partition it wrote\n`);
  await quarry(['state', 'inspect', '--storage-path', storage, '--source', 'bookshop', '--category', 'crawl', '--format', 'table']);
  process.stdout.write(`\nRead the crawl's vetted items with:\n  node dist/cli/main.js read --storage-path ${storage} --source bookshop --category crawl --type item\n`);
  return code;
}

const site = await startSite(0);
let code = 1;
try {
  const crawled = await crawlDemo(site.url);
  process.stdout.write(`\n== Crawling the bookshop fixture at ${site.url}\n`);
  code = await quarry([
    'run', '--script', 'examples/paginate.ts', '--source', 'bookshop', '--category', 'catalog',
    '--job', JSON.stringify({ url: site.url }), '--storage-path', storage,
  ]);
  process.stdout.write(`\n== Runs stored in ${storage}\n`);
  await quarry(['list', 'runs', '--storage-path', storage, '--source', 'bookshop', '--limit', '5', '--format', 'table']);
  process.stdout.write(`\n== What is authoritative (the ledger)\n`);
  await quarry(['state', 'inspect', '--storage-path', storage, '--source', 'bookshop', '--format', 'table']);
  process.stdout.write(`\nRead the vetted records with:\n  node dist/cli/main.js read --storage-path ${storage} --source bookshop --type item\n`);
  if (crawled !== 0) code = crawled;
} finally {
  await site.close();
}
if (code === 0) code = await adsEtlDemo();
process.exit(code);

// The ads ETL of examples/ads-report, the daily job a team runs: one strict run per (customer, day)
// for the last two days, a day the dashboard fails, the gap in the ledger, quarry retry once it
// recovers, the export to DuckDB, the dashboard query, and the report page.
async function adsEtlDemo() {
  const { startAdsSite } = await import('../examples/ads-report/site.mjs');
  const { pathToFileURL } = await import('node:url');
  const dayBefore = (n) => new Date(Date.now() - n * 86_400_000).toISOString().slice(0, 10);
  const days = [dayBefore(2), dayBefore(1)];
  const login = { ADS_USER: 'analyst', ADS_PASSWORD: 'demo-password' };
  const ads = await startAdsSite({ user: login.ADS_USER, password: login.ADS_PASSWORD, failing: [`globex/${days[1]}`] });
  const env = { ...process.env, ...login, ADS_URL: ads.url, QUARRY: `${process.execPath} ${cli}`, QUARRY_RUN_FLAGS: `--storage-path ${storage}`, PARALLEL: '3' };
  const run = (command, args) => new Promise((resolve) => {
    spawn(command, args, { cwd: root, stdio: 'inherit', env }).on('exit', (c) => resolve(c ?? 1));
  });
  const html = join(storage, 'ads-report.html');
  const warehouse = join(storage, 'ads.duckdb');
  try {
    process.stdout.write(`\n== The ads ETL (examples/ads-report): 5 customers x ${days.join(', ')}; globex ${days[1]} answers 500\n`);
    await run('sh', ['examples/ads-report/etl.sh', ...days]);
    process.stdout.write(`\n== The gap, as the ledger sees it\n`);
    await run(process.execPath, [cli, 'state', 'inspect', '--storage-path', storage, '--source', 'ads', '--from-day', days[0], '--to-day', days[1], '--expect-all', '--status', 'failed', '--format', 'table']);
    process.stdout.write(`\n== The dashboard recovers; quarry retry fills the gap\n`);
    ads.recover();
    const retried = await run(process.execPath, [cli, 'retry', '--storage-path', storage, '--source', 'ads', '--from-day', days[0], '--to-day', days[1], '--quiet']);
    process.stdout.write(`\n== Export to DuckDB and the dashboard query\n`);
    await run(process.execPath, [cli, 'export', '--storage-path', storage, '--source', 'ads', '--to', `duckdb:${warehouse}`, '--format', 'table']);
    await run(process.execPath, ['examples/ads-report/query.mjs', warehouse, 'examples/ads-report/dashboard.sql']);
    const made = await run(process.execPath, [cli, 'report', '--storage-path', storage, '--source', 'ads', '--html', html, '--format', 'table']);
    process.stdout.write(`\nThe report: ${pathToFileURL(html).href}\n`);
    return retried === 0 && made === 0 ? 0 : 1;
  } finally {
    await ads.close();
  }
}
