/** Runs the ledger conformance suite against SQLite: a fresh file per test file. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { ledgerConformance } from './conformance.js';

ledgerConformance('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'quarry-ledger-'));
  // A folder that does not exist yet: the ledger creates it.
  const file = join(dir, 'nested', 'ledger.sqlite');
  let admin: Database.Database | undefined;
  return {
    dialect: 'sqlite',
    open: () => SqliteLedger.create(file),
    raw: async (sql: string) => {
      admin ??= new Database(file, { timeout: 10_000 });
      const stmt = admin.prepare(sql);
      if (stmt.reader) return stmt.all() as unknown[];
      stmt.run();
      return [];
    },
    cleanup: () => {
      admin?.close();
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
});
