/** The export suite against a real DuckDB file (the default warehouse), plus what only DuckDB has: a file. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDuckDbFile } from '../../src/ledger/export-duckdb.js';
import { exportPartitions } from '../../src/ledger/export.js';
import { openLedger } from '../../src/ledger/ledger.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { makeTempDir } from '../_harness/temp-dir.js';
import { exportSuite } from './export-suite.js';

/** Reads a DuckDB file the way a person would after an export: open, query, close. */
async function queryDuckDb(path: string, sql: string): Promise<Array<Record<string, unknown>>> {
  const instance = await openDuckDbFile(path);
  const conn = await instance.connect();
  try {
    return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Array<Record<string, unknown>>;
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

exportSuite('DuckDB', async (dir) => {
  const path = join(dir, 'warehouse', 'quarry.duckdb');
  await mkdir(dirname(path), { recursive: true });
  return {
    target: `duckdb:${path}`,
    location: path,
    query: (sql) => queryDuckDb(path, sql),
    cleanup: () => Promise.resolve(),
  };
});

describe('quarry export into DuckDB: the file', () => {
  it('a target that cannot be a DuckDB file is refused naming the path and what to check', async () => {
    await using tmp = await makeTempDir('export-duck');
    const storage = await FsBackend.create(join(tmp.path, 'data'));
    const ledger = await openLedger(join(tmp.path, 'ledger.sqlite'));
    try {
      const notADir = join(tmp.path, 'plain-file');
      await writeFile(notADir, 'x');
      const err = await exportPartitions({ storage, ledger, target: `duckdb:${notADir}/w.duckdb` }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ExportError', code: 'unavailable', target: `${notADir}/w.duckdb` });
      expect((err as Error).message).toMatch(/cannot open the DuckDB file .*: check that its folder is writable/);
    } finally {
      await ledger.close();
      await storage.close();
    }
  });

  it('the file is closed after an export, so another process can open it', async () => {
    await using tmp = await makeTempDir('export-duck');
    const storage = await FsBackend.create(join(tmp.path, 'data'));
    const ledger = await openLedger(join(tmp.path, 'ledger.sqlite'));
    const path = join(tmp.path, 'w.duckdb');
    try {
      await exportPartitions({ storage, ledger, target: path });
      const { execFileSync } = await import('node:child_process');
      const script = `import('@duckdb/node-api').then(async (m) => { const i = await m.DuckDBInstance.create(${JSON.stringify(path)}); const c = await i.connect(); const r = await c.runAndReadAll('SELECT COUNT(*)::INTEGER AS n FROM _quarry_loads'); process.stdout.write(JSON.stringify(r.getRowObjectsJson())); })`;
      expect(JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: process.cwd() }).toString())).toEqual([{ n: 0 }]);
    } finally {
      await ledger.close();
      await storage.close();
    }
  });
});
