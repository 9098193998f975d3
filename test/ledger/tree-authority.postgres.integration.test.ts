/** Tree authority (SPEC §8 run trees) on a real PostgreSQL ledger: one database for the file, a dataset per test. */
import { PostgresLedger } from '../../src/ledger/postgres-ledger.js';
import { createTestDatabase } from '../_harness/postgres.js';
import { treeAuthoritySuite } from './tree-suite.js';

treeAuthoritySuite('postgres', async () => {
  const db = await createTestDatabase('quarry_tree_auth');
  return {
    open: () => PostgresLedger.create(db.url),
    again: () => PostgresLedger.create(db.url),
    cleanup: () => db.drop(),
  };
});
