/** Runs the ledger conformance suite against PostgreSQL: a fresh database per test file, dropped after. */
import pg from 'pg';
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { createTestDatabase } from '../_harness/postgres.js';
import { ledgerConformance } from './conformance.js';

ledgerConformance('postgres', async () => {
  const db = await createTestDatabase('quarry_ledger_conf');
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  return {
    dialect: 'postgres',
    open: () => PostgresLedger.create(db.url),
    raw: async (sql: string) => (await admin.query(sql)).rows as unknown[],
    cleanup: async () => {
      await admin.end();
      await db.drop();
    },
  };
});
