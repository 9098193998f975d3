/**
 * The export suite against a real PostgreSQL (a fresh database per test), plus
 * what only a server has: a URL with a password, and constraints a person can
 * add to the tables, which make a write fail half-way through a partition.
 */
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportPartitions } from '../../src/ledger/export.js';
import { openLedger } from '../../src/ledger/ledger.js';
import { validateRun } from '../../src/ledger/validator.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { writeRunFixture } from '../_harness/run-fixtures.js';
import { makeTempDir } from '../_harness/temp-dir.js';
import { exportSuite } from './export-suite.js';

const redacted = (url: string): string => {
  const u = new URL(url);
  if (u.password !== '') u.password = '***';
  return u.toString();
};

exportSuite('PostgreSQL', async () => {
  const db = await createTestDatabase('quarry_export');
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  return {
    target: db.url,
    location: redacted(db.url),
    query: async (sql) => (await client.query(sql)).rows as Array<Record<string, unknown>>,
    cleanup: async () => {
      await client.end();
      await db.drop();
    },
  };
});

describe('quarry export into PostgreSQL: the server', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('quarry_export_pg');
  });
  afterAll(async () => {
    await db.drop();
  });

  it('an unreachable server is named without the password, with what to check', async () => {
    await using tmp = await makeTempDir('export-pg');
    const storage = await FsBackend.create(join(tmp.path, 'data'));
    const ledger = await openLedger(join(tmp.path, 'ledger.sqlite'));
    try {
      const err = await exportPartitions({ storage, ledger, target: 'postgres://loader:s3cr%2Fet-pw@127.0.0.1:1/warehouse' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ExportError', code: 'unavailable', target: 'postgres://loader:***@127.0.0.1:1/warehouse' });
      const text = `${(err as Error).message} ${JSON.stringify(err)} ${String((err as Error).stack)}`;
      expect(text).not.toContain('s3cr');
      expect((err as Error).message).toMatch(/cannot connect \(.*ECONNREFUSED.*\): check the URL, that the server is running/);
    } finally {
      await ledger.close();
      await storage.close();
    }
  });

  it('a write the warehouse rejects half-way through a partition rolls it back: its old rows stay', async () => {
    await using tmp = await makeTempDir('export-pg');
    const storage = await FsBackend.create(join(tmp.path, 'data'));
    const ledger = await openLedger(join(tmp.path, 'ledger.sqlite'));
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      const A = { dataset: 'quarry', source: 'shop', category: 'default', day: '2024-06-10' };
      const a1 = await writeRunFixture(storage, { run_id: 'a1', ...A });
      await validateRun(storage, ledger, a1.partition);
      await exportPartitions({ storage, ledger, target: db.url });
      const before = (await admin.query(`SELECT run_id, seq, data::text FROM quarry_items ORDER BY seq`)).rows;
      expect(before).toHaveLength(3);

      const a2 = await writeRunFixture(storage, { run_id: 'a2', ...A, finalized_at: '2024-06-11T00:00:00.000Z', items: 30 });
      await validateRun(storage, ledger, a2.partition);
      // A person's constraint: item 25 of a run is refused. Items 0-24 went in first, in batches of 4.
      await admin.query(`ALTER TABLE quarry_items ADD CONSTRAINT no_item_25 CHECK ((data->>'n')::int <> 25)`);
      const err = await exportPartitions({ storage, ledger, target: db.url, batchRows: 4 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ExportError', code: 'load_failed', runId: 'a2' });
      expect((err as Error).message).toMatch(/writing partition quarry\/source=shop\/category=default\/day=2024-06-10 \(run a2\) failed and was rolled back: .*no_item_25.*previous rows are unchanged/);
      expect((await admin.query(`SELECT run_id, seq, data::text FROM quarry_items ORDER BY seq`)).rows).toEqual(before);
      expect((await admin.query(`SELECT run_id FROM quarry_events GROUP BY run_id`)).rows).toEqual([{ run_id: 'a1' }]);
      expect((await admin.query(`SELECT run_id FROM _quarry_loads`)).rows).toEqual([{ run_id: 'a1' }]);

      await admin.query('ALTER TABLE quarry_items DROP CONSTRAINT no_item_25');
      expect(await exportPartitions({ storage, ledger, target: db.url, batchRows: 4 })).toMatchObject({ partitions_loaded: 1, rows: { quarry_items: 30 } });
      expect((await admin.query(`SELECT run_id, count(*)::int AS n FROM quarry_items GROUP BY run_id`)).rows).toEqual([{ run_id: 'a2', n: 30 }]);
    } finally {
      await admin.end();
      await ledger.close();
      await storage.close();
    }
  });
});
