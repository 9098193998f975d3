// `npm run demo`: serves the bookshop fixture on 127.0.0.1, crawls it with
// examples/paginate.ts through `quarry run` on the embedded defaults
// (filesystem storage + SQLite ledger under ./quarry-data), then shows where the
// data is and which run is authoritative.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { startSite } from '../examples/site/server.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'cli', 'main.js');
const storage = join(root, 'quarry-data');

function quarry(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: 'inherit' });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

const site = await startSite(0);
let code = 1;
try {
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
} finally {
  await site.close();
}
process.exit(code);
