/** openLedger picks the backend from its target and fails with errors that say what to fix. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isPostgresUrl, openLedger } from '../../src/ledger/ledger.js';
import { redactUrl } from '../../src/ledger/postgres-ledger.js';
import { toRunId } from '../../src/ledger/types.js';

describe('openLedger', () => {
  it('a path opens SQLite (creating the file); postgres:// and postgresql:// URLs mean PostgreSQL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quarry-open-ledger-'));
    try {
      const l = await openLedger(join(dir, 'deep', 'l.sqlite'));
      expect(l.kind).toBe('sqlite');
      expect(l.location).toBe(join(dir, 'deep', 'l.sqlite'));
      await l.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(isPostgresUrl('postgres://u@h/db')).toBe(true);
    expect(isPostgresUrl('POSTGRESQL://u@h/db')).toBe(true);
    expect(isPostgresUrl('./postgres/ledger.sqlite')).toBe(false);
  });

  it('an empty target is refused', async () => {
    await expect(openLedger(' ')).rejects.toMatchObject({ name: 'LedgerError', code: 'invalid_argument' });
  });

  it('an unreachable PostgreSQL server is `unavailable`, and the message never shows the password', async () => {
    const err = await openLedger('postgres://quarry:s3cret@127.0.0.1:1/nope').catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'LedgerError', code: 'unavailable' });
    expect(String((err as Error).message)).not.toContain('s3cret');
    expect(redactUrl('postgres://quarry:s3cret@db:5432/x')).toBe('postgres://quarry:***@db:5432/x');
  });

  it('a SQLite path under a file is `unavailable`, naming the path', async () => {
    await expect(openLedger('/etc/hostname/ledger.sqlite')).rejects.toMatchObject({ name: 'LedgerError', code: 'unavailable', message: expect.stringContaining('/etc/hostname/ledger.sqlite') });
  });

  it('run ids are checked against the SPEC syntax', () => {
    expect(toRunId('01HX-a.b_c')).toBe('01HX-a.b_c');
    expect(() => toRunId('../x')).toThrow(/"\.\.\/x"/);
  });
});
