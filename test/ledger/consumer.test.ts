/**
 * The consumer contract (SPEC §8, seed 002): only `success` partitions are
 * listed, and only the authoritative run's records come back — never those of
 * a pending or failed partition, a superseded run or an unvalidated one.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openConsumer, PartitionNotReadableError, type Consumer } from '../../src/ledger/consumer.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { validateRun } from '../../src/ledger/validator.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { manifestKey, type LogicalPartition } from '../../src/storage/layout.js';
import type { StoredRecord } from '../../src/storage/records.js';
import { fsPath, writeRunFixture } from '../_harness/run-fixtures.js';

let dir: string;
let storage: FsBackend;
let ledger: Ledger;
let consumer: Consumer;
const P = (day: string): LogicalPartition => ({ dataset: 'quarry', source: 'shop', category: 'default', day });

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quarry-consumer-'));
  storage = await FsBackend.create(join(dir, 'data'));
  ledger = await SqliteLedger.create(join(dir, 'ledger.sqlite'));
  consumer = openConsumer({ storage, ledger });
});
afterEach(async () => {
  await ledger.close();
  await storage.close();
  await rm(dir, { recursive: true, force: true });
});

async function collect(it: AsyncIterable<StoredRecord>): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for await (const r of it) out.push(r);
  return out;
}

/**
 * Day 10: an older valid run, the authoritative one, and a newer failed retry.
 * Day 11: only a failed run. Day 12: a finalized run never validated. Day 13: nothing.
 */
async function scenario(): Promise<void> {
  const old = await writeRunFixture(storage, { run_id: 'd10-old', day: '2024-06-10', finalized_at: '2024-06-10T01:00:00.000Z' });
  const auth = await writeRunFixture(storage, { run_id: 'd10-auth', day: '2024-06-10', finalized_at: '2024-06-10T02:00:00.000Z', items: 5, droppedLogs: 1 });
  const retry = await writeRunFixture(storage, { run_id: 'd10-failed', day: '2024-06-10', finalized_at: '2024-06-10T03:00:00.000Z', outcome: 'script_error' });
  const failed = await writeRunFixture(storage, { run_id: 'd11-failed', day: '2024-06-11', outcome: 'policy_failure' });
  await writeRunFixture(storage, { run_id: 'd12-unvalidated', day: '2024-06-12' });
  for (const f of [old, auth, retry, failed]) await validateRun(storage, ledger, f.partition);
}

describe('consumer', () => {
  it('lists only success partitions, each with its authoritative run', async () => {
    await scenario();
    const parts = await consumer.partitions({ dataset: 'quarry' });
    expect(parts.map((p) => [p.day, p.run_id])).toEqual([['2024-06-10', 'd10-auth']]);
    // A status filter cannot widen the view.
    expect(await consumer.partitions({ dataset: 'quarry', status: 'failed' } as never)).toHaveLength(1);
  });

  it('streams only the authoritative run\'s records, in seq order', async () => {
    await scenario();
    const recs = await collect(consumer.records(P('2024-06-10')));
    expect(new Set(recs.map((r) => r.run_id))).toEqual(new Set(['d10-auth']));
    const seqs = recs.map((r) => (r as { seq: number }).seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const items = await collect(consumer.records(P('2024-06-10'), { eventTypes: ['item'] }));
    expect(items.map((r) => (r as unknown as { payload: { data: { n: number } } }).payload.data.n)).toEqual([0, 1, 2, 3, 4]);
    expect(items.every((r) => r.event_type === 'item')).toBe(true);
  });

  it('refuses a failed, a pending and a never-validated partition', async () => {
    await scenario();
    for (const [day, status] of [['2024-06-11', 'failed'], ['2024-06-12', 'pending'], ['2024-06-13', 'pending']] as const) {
      const err = await collect(consumer.records(P(day))).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PartitionNotReadableError);
      expect(err).toMatchObject({ reason: 'not_success', status });
    }
  });

  it('follows the ledger when a later valid run takes over', async () => {
    await scenario();
    const newer = await writeRunFixture(storage, { run_id: 'd10-reprocess', day: '2024-06-10', finalized_at: '2024-06-10T04:00:00.000Z', items: 1 });
    expect((await collect(consumer.records(P('2024-06-10'), { eventTypes: ['item'] }))).map((r) => r.run_id)).toEqual(Array(5).fill('d10-auth'));
    await validateRun(storage, ledger, newer.partition);
    expect((await collect(consumer.records(P('2024-06-10'), { eventTypes: ['item'] }))).map((r) => r.run_id)).toEqual(['d10-reprocess']);
  });

  it('refuses to read a run whose manifest changed after validation', async () => {
    await scenario();
    const key = manifestKey({ ...P('2024-06-10'), run_id: 'd10-auth' });
    const path = fsPath(storage.location, key);
    const m = JSON.parse((await storage.get(key)).toString('utf8')) as { message: string };
    m.message = 'edited behind Quarry\'s back';
    await writeFile(path, JSON.stringify(m));
    const err = await collect(consumer.records(P('2024-06-10'))).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'PartitionNotReadableError', reason: 'manifest_changed' });
  });

  it('open() gives the authoritative run and its manifest', async () => {
    await scenario();
    const run = await consumer.open(P('2024-06-10'));
    expect(run.partition).toMatchObject({ day: '2024-06-10', run_id: 'd10-auth' });
    expect(run.manifest.run_id).toBe('d10-auth');
    expect(run.manifest.policy.events_dropped).toBe(1);
  });
});
