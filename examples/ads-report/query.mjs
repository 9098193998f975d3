// Runs a .sql file over a DuckDB file, read-only, and prints the rows as a table (or JSON with --json).
// node examples/ads-report/query.mjs ads.duckdb examples/ads-report/dashboard.sql [--json]
// Uses @duckdb/node-api, which quarry already depends on; no DuckDB extension is downloaded.
import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';

const [database, sqlFile, flag] = process.argv.slice(2);
if (!database || !sqlFile) {
  process.stderr.write('usage: node query.mjs DATABASE.duckdb QUERY.sql [--json]\n');
  process.exit(2);
}
const instance = await DuckDBInstance.create(database, { access_mode: 'READ_ONLY' });
const conn = await instance.connect();
try {
  const rows = (await conn.runAndReadAll(readFileSync(sqlFile, 'utf8'))).getRowObjectsJson();
  if (flag === '--json') process.stdout.write(`${JSON.stringify(rows)}\n`);
  else console.table(rows);
} finally {
  conn.closeSync();
  instance.closeSync();
}
