/** PostgreSQL readers never migrate (SPEC §8, issue 9): no DDL on open, a schema not this Quarry's refused in one line. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLedger, openLedgerReader } from '../../src/ledger/ledger.js';
import { createTestDatabase, type TestDatabase } from '../_harness/postgres.js';
import { runInput } from './conformance.js';

let db: TestDatabase;
let admin: pg.Client;
const tables = async (): Promise<string[]> =>
  (await admin.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map((r) => r.t);

beforeAll(async () => {
  db = await createTestDatabase('quarry_ledger_reader');
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
});
afterAll(async () => {
  await admin.end();
  await db.drop();
});

describe('openLedgerReader on PostgreSQL', () => {
  it('an empty database is refused and left empty; a migrated one is read; an older schema is refused, not migrated', async () => {
    await expect(openLedgerReader(db.url)).rejects.toMatchObject({ name: 'LedgerError', code: 'schema', message: expect.stringContaining('holds no Quarry ledger') });
    expect(await tables()).toEqual([]);

    const writer = await openLedger(db.url);
    await writer.recordRuns([runInput('quarry', 'run-pg-ro')], new Date('2024-06-10T03:00:00Z'));
    await writer.close();
    const reader = await openLedgerReader(db.url);
    expect((await reader.getRun('run-pg-ro'))?.validation_status).toBe('valid');
    await reader.close();

    await admin.query('DELETE FROM quarry_schema_migrations WHERE version = (SELECT MAX(version) FROM quarry_schema_migrations)');
    const before = (await admin.query('SELECT count(*)::int AS n FROM quarry_schema_migrations')).rows[0] as { n: number };
    await expect(openLedgerReader(db.url)).rejects.toMatchObject({ code: 'schema', message: expect.stringMatching(/older than this Quarry's .*never migrate/) });
    expect((await admin.query('SELECT count(*)::int AS n FROM quarry_schema_migrations')).rows[0]).toEqual(before);
  });
});
