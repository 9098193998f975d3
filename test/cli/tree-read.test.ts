/**
 * The read side of run trees (SPEC §8 consumers, §10 report) through the CLI
 * commands, in process: `quarry read` over a tree returns each readable
 * member's items exactly once, `state inspect` shows the tree authority,
 * `inspect run <tree_id>` shows the tree, `export` loads it. Trees are real
 * run partitions and a real tree manifest (test/_harness/tree-fixtures.ts),
 * validated into a real SQLite ledger at the default place.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportCommand } from '../../src/cli/commands/export.js';
import { inspectRunCommand } from '../../src/cli/commands/inspect.js';
import { readCommand } from '../../src/cli/commands/read.js';
import { retryCommand } from '../../src/cli/commands/retry.js';
import { stateInspectCommand } from '../../src/cli/commands/state.js';
import type { CliIO } from '../../src/cli/io.js';
import { openDuckDbFile } from '../../src/ledger/export-duckdb.js';
import { SqliteLedger } from '../../src/ledger/sqlite-ledger.js';
import { validateTree } from '../../src/ledger/tree-validator.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { writeRunFixture } from '../_harness/run-fixtures.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';
import { writeTreeFixture, type ItemSpec } from '../_harness/tree-fixtures.js';
import { recordingIO } from './fake-io.js';

type Command = (argv: readonly string[], io: CliIO) => Promise<number>;

let dir: TempDir;
let sha = '';

/** listing (3 items) → 30 detail pages (1 item each; page 7 failed once then succeeded) → 1 asset page in category `asset`. */
function crawl(): ItemSpec[] {
  const items: ItemSpec[] = [{ key: '["listing.ts",{}]', depth: 0, attempts: [{ run_id: 'T0', outcome: 'success' }] }];
  for (let i = 1; i <= 30; i++) {
    const id = `T0-d${String(i).padStart(2, '0')}`;
    const attempts = i === 7 ? [{ run_id: `${id}a`, outcome: 'script_error' as const, items: 1 }, { run_id: `${id}b`, outcome: 'success' as const, items: 1 }] : [{ run_id: id, outcome: 'success' as const, items: 1 }];
    items.push({ key: `["detail.ts",{"n":${i}}]`, depth: 1, parent_run_id: 'T0', attempts });
  }
  items.push({ key: '["asset.ts",{"n":1}]', depth: 2, parent_run_id: 'T0-d01', category: 'asset', attempts: [{ run_id: 'T0-a1', outcome: 'success', items: 2 }] });
  return items;
}

beforeAll(async () => {
  dir = await makeTempDir('cli-tree');
  const storage = await FsBackend.create(dir.path);
  const ledger = await SqliteLedger.create(join(dir.path, 'ledger.sqlite'));
  try {
    const t = await writeTreeFixture(storage, { tree_id: 'T0', finalized_at: '2024-06-10T03:00:00.000Z', items: crawl() });
    sha = t.published.sha256;
    const v = await validateTree(storage, ledger, { tree_id: 'T0' });
    expect(v.reason).toBe('promoted');
    // A failed tree (one detail failed, none allowed): its two partitions are failed, retry must re-run it whole.
    await writeTreeFixture(storage, {
      tree_id: 'F0', dataset: 'fail', finalized_at: '2024-06-10T03:00:00.000Z',
      items: [
        { key: '["listing.ts",{}]', depth: 0, attempts: [{ run_id: 'F0', outcome: 'success' }] },
        { key: '["detail.ts",{"n":1}]', depth: 1, parent_run_id: 'F0', attempts: [{ run_id: 'F0-d1', outcome: 'script_error' }] },
        { key: '["detail.ts",{"n":2}]', depth: 1, parent_run_id: 'F0', category: 'detail', attempts: [{ run_id: 'F0-d2', outcome: 'success' }] },
      ],
    });
    expect((await validateTree(storage, ledger, { dataset: 'fail', tree_id: 'F0' })).exit_code).toBe(3);
    // A fan-out root whose tree never finished: no manifest.
    await writeRunFixture(storage, { run_id: 'U0', category: 'other', fanout: true });
  } finally {
    await ledger.close();
    await storage.close();
  }
});
afterAll(async () => {
  await dir.remove();
});

async function run(cmd: Command, argv: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  const io = recordingIO(dir.path);
  const code = await cmd([...argv, '--storage-path', dir.path], io);
  return { code, out: io.out, err: io.err };
}

describe('quarry read over a tree', () => {
  it('returns each readable member\'s items exactly once, root first, then by depth and run id; failed attempts never', async () => {
    const r = await run(readCommand, ['--type', 'item', '--category', 'default']);
    expect(r.code, r.err).toBe(0);
    const recs = r.out.trim().split('\n').map((l) => JSON.parse(l) as { run_id: string; seq: number });
    const runs = recs.map((x) => x.run_id);
    const details = Array.from({ length: 30 }, (_, i) => `T0-d${String(i + 1).padStart(2, '0')}${i + 1 === 7 ? 'b' : ''}`);
    expect(runs).toEqual(['T0', 'T0', 'T0', ...details]);
    expect(runs).not.toContain('T0-d07a');
    const asset = await run(readCommand, ['--type', 'item', '--category', 'asset']);
    expect(asset.out.trim().split('\n').map((l) => (JSON.parse(l) as { run_id: string }).run_id)).toEqual(['T0-a1', 'T0-a1']);
  });
});

describe('state inspect and inspect run show the tree', () => {
  it('state inspect: both partitions at the tree, authority tree', async () => {
    const r = await run(stateInspectCommand, ['--format', 'json']);
    expect(r.code, r.err).toBe(0);
    const rows = JSON.parse(r.out) as Array<{ category: string; current_run_id: string; authority: string; status: string }>;
    expect(rows.map((x) => [x.category, x.status, x.current_run_id, x.authority])).toEqual([['asset', 'success', 'T0', 'tree'], ['default', 'success', 'T0', 'tree']]);
  });

  it('inspect run <tree_id>: counters, items with attempts, validation and partition authority', async () => {
    const r = await run(inspectRunCommand, ['T0', '--format', 'json']);
    expect(r.code, r.err).toBe(0);
    const v = JSON.parse(r.out) as { lineage: { fanout: boolean }; tree: Record<string, any> };
    expect(v.lineage.fanout).toBe(true);
    expect(v.tree).toMatchObject({
      tree_id: 'T0', published: true, manifest_sha256: sha, finalized_at: '2024-06-10T03:00:00.000Z',
      counters: { admitted: 32, succeeded: 32, failed: 0 },
      validation: { valid: true, failures: 0, allowed: 0, manifest_matches: true },
      partitions: [
        { category: 'default', status: 'success', current_run_id: 'T0', authority: 'tree', authoritative: true },
        { category: 'asset', status: 'success', current_run_id: 'T0', authority: 'tree', authoritative: true },
      ],
    });
    expect(v.tree.items).toHaveLength(32);
    expect(v.tree.items[7]).toMatchObject({ key: '["detail.ts",{"n":7}]', final_run_id: 'T0-d07b', attempts: [{ run_id: 'T0-d07a', outcome: 'script_error' }, { run_id: 'T0-d07b', outcome: 'success' }] });
    // A member is authoritative through its tree.
    const m = JSON.parse((await run(inspectRunCommand, ['T0-d03', '--format', 'json'])).out) as { ledger: Record<string, unknown> };
    expect(m.ledger).toMatchObject({ recorded: true, authoritative: true, authoritative_run_id: 'T0', partition_authority: 'tree' });
  });

  it('inspect run of a fan-out root whose tree never finished says so', async () => {
    const v = JSON.parse((await run(inspectRunCommand, ['U0', '--format', 'json'])).out) as { tree: Record<string, unknown> };
    expect(v.tree).toMatchObject({ tree_id: 'U0', published: false });
    expect(v.tree.note).toMatch(/quarry run --resume U0/);
  });
});

describe('quarry retry of a failed tree partition', () => {
  it('plans the whole tree once (its root script, parent = the old root), never one member alone', async () => {
    const r = await run(retryCommand, ['--storage-dataset', 'fail', '--dry-run', '--format', 'json']);
    expect(r.code, r.err).toBe(0);
    const plan = JSON.parse(r.out) as Array<Record<string, unknown>>;
    expect(plan).toHaveLength(1);
    expect(plan[0]).toMatchObject({ tree_id: 'F0', script: 'scripts/fixture.ts', parent_run_id: 'F0', reason: 'failed' });
    const real = await run(retryCommand, ['--storage-dataset', 'fail']);
    // The fixture's root script is not on disk: the tree cannot be re-run, and no member is run alone instead.
    expect(real.code).toBe(2);
    expect(real.err).toMatch(/quarry retry: tree F0: root script \S+ (no longer exists|does not end in its target)/);
  });
});

describe('quarry export over a tree', () => {
  it('loads each readable member\'s items once into DuckDB', async () => {
    const target = join(dir.path, 'wh.duckdb');
    const r = await run(exportCommand, ['--to', `duckdb:${target}`, '--format', 'json']);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out) as Record<string, unknown>;
    expect(JSON.stringify(out)).toContain('"T0"');
    // Opened as the export opened it: this process's export database may still be closing.
    const db = await openDuckDbFile(target);
    const c = await db.connect();
    try {
      const rows = (await c.runAndReadAll('SELECT run_id, count(*) AS n FROM quarry_items GROUP BY run_id ORDER BY run_id')).getRowObjects();
      const byRun = Object.fromEntries(rows.map((x) => [String(x.run_id), Number(x.n)]));
      expect(byRun.T0).toBe(3);
      expect(byRun['T0-d07b']).toBe(1);
      expect(byRun['T0-d07a']).toBeUndefined();
      expect(byRun['T0-a1']).toBe(2);
      expect(Object.values(byRun).reduce((a, b) => a + b, 0)).toBe(3 + 30 + 2);
    } finally {
      c.closeSync();
      db.closeSync();
    }
  });
});
