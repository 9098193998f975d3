/** Tree authority (SPEC §8 run trees) on a real SQLite ledger: a fresh file per test. */
import { join } from 'node:path';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { makeTempDir } from '../_harness/temp-dir.js';
import { treeAuthoritySuite } from './tree-suite.js';

treeAuthoritySuite('sqlite', async () => {
  const dir = await makeTempDir('tree-ledger');
  let n = 0;
  return {
    open: () => SqliteLedger.create(join(dir.path, `ledger-${++n}.sqlite`)),
    again: () => SqliteLedger.create(join(dir.path, `ledger-${n}.sqlite`)),
    cleanup: () => dir.remove(),
  };
});
