// Tree validation benchmark (SPEC §8 run trees), rerunnable: `npx tsx bench/tree-validate.ts [--items 300] [--ledger postgres://…]`
// (a PostgreSQL --ledger gets the bench's rows and schema: give a scratch database).
// Writes one finished tree (a listing and N detail runs, real run partitions and a real tree manifest), then times
// validateTree (every member checked and recorded, the tree promoted in one transaction), its idempotent repeat,
// and a consumer reading the tree partition's items.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openConsumer } from '../src/ledger/consumer.js';
import { openLedger } from '../src/ledger/ledger.js';
import { validateTree } from '../src/ledger/tree-validator.js';
import { FsBackend } from '../src/storage/fs-backend.js';
import { writeTreeFixture, type ItemSpec } from '../test/_harness/tree-fixtures.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? undefined : process.argv[i + 1];
};
const ITEMS = Number(arg('items') ?? 300);
const dir = await mkdtemp(join(tmpdir(), 'quarry-bench-tree-'));
try {
  const storage = await FsBackend.create(join(dir, 'data'));
  const ledger = await openLedger(arg('ledger') ?? join(dir, 'ledger.sqlite'));
  const dataset = `bench-${process.pid}-${Date.now()}`;
  const tree = `T${Date.now()}`;
  const items: ItemSpec[] = [{ key: '["listing.ts",{}]', depth: 0, attempts: [{ run_id: tree, outcome: 'success' }] }];
  for (let i = 1; i <= ITEMS; i++) items.push({ key: `["detail.ts",{"n":${i}}]`, depth: 1, parent_run_id: tree, attempts: [{ run_id: `${tree}-${i}`, outcome: 'success', items: 1 }] });
  await writeTreeFixture(storage, { tree_id: tree, dataset, finalized_at: new Date().toISOString(), items });
  let t = performance.now();
  const v = await validateTree(storage, ledger, { dataset, tree_id: tree });
  const first = performance.now() - t;
  t = performance.now();
  await validateTree(storage, ledger, { dataset, tree_id: tree });
  const again = performance.now() - t;
  t = performance.now();
  let n = 0;
  const records = openConsumer({ storage, ledger }).records({ dataset, source: 'shop', category: 'default', day: '2024-06-10' }, { eventTypes: ['item'] });
  for await (const rec of records) if (rec.record_kind !== 'metrics') n++;
  const read = performance.now() - t;
  console.log(`tree of ${ITEMS + 1} runs (${ledger.kind}): validateTree ${Math.round(first)} ms (${Math.round(((ITEMS + 1) / first) * 1000)} runs/s, ${v.reason}); repeat ${Math.round(again)} ms; read ${n} items ${Math.round(read)} ms`);
  await ledger.close();
  await storage.close();
} finally {
  await rm(dir, { recursive: true, force: true });
}
