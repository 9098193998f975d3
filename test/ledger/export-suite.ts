/**
 * One suite for every export warehouse (STYLE: one conformance suite per
 * port): real runs built with the run-fixtures harness, validated by the real
 * validator into a real SQLite ledger, exported into a real DuckDB file or
 * PostgreSQL database. A runner file gives it a way to make an empty
 * warehouse and to read it back.
 */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportPartitions, type ExportOptions } from '../../src/ledger/export.js';
import { EXPORT_TABLES, type ExportTable } from '../../src/ledger/export-schema.js';
import { ExportError } from '../../src/ledger/export-result.js';
import { openLedger, type Ledger } from '../../src/ledger/ledger.js';
import { validateRun } from '../../src/ledger/validator.js';
import { StorageError, type ListedObject, type ObjectInfo, type ObjectWriter, type StorageBackend } from '../../src/storage/backend.js';
import { FsBackend } from '../../src/storage/fs-backend.js';
import { runPrefix, type LogicalPartition } from '../../src/storage/layout.js';
import { rewriteManifest, writeRunFixture, type RunFixtureOptions } from '../_harness/run-fixtures.js';
import { makeTempDir, type TempDir } from '../_harness/temp-dir.js';

/** An empty warehouse for one test, and a way to read it back. */
export interface TestWarehouse {
  /** The `target` option. */
  target: string;
  /** What messages name the warehouse as (no password). */
  location: string;
  /** Runs SQL on the warehouse; every value comes back as a string or null when the SQL casts it so. */
  query(sql: string): Promise<Array<Record<string, unknown>>>;
  cleanup(): Promise<void>;
}

/** Makes a fresh warehouse (called before each test), given a temp folder of the test. */
export type WarehouseFactory = (dir: string) => Promise<TestWarehouse>;

/** A storage backend that delegates, but can run a hook before an object is read (and so fail it). */
export class HookedStorage implements StorageBackend {
  readonly kind: StorageBackend['kind'];
  readonly location: string;
  /** Called before every `read` of a key; throwing fails that read. */
  onRead: ((key: string) => Promise<void> | void) | undefined;

  constructor(readonly inner: StorageBackend) {
    this.kind = inner.kind;
    this.location = inner.location;
  }

  putNew(key: string, data: Uint8Array | string): Promise<ObjectInfo> {
    return this.inner.putNew(key, data);
  }
  openNew(key: string): Promise<ObjectWriter> {
    return this.inner.openNew(key);
  }
  get(key: string): Promise<Buffer> {
    return this.inner.get(key);
  }
  read(key: string): AsyncIterable<Buffer> {
    return this.#read(key);
  }
  async *#read(key: string): AsyncIterable<Buffer> {
    await this.onRead?.(key);
    yield* this.inner.read(key);
  }
  stat(key: string): Promise<ListedObject | undefined> {
    return this.inner.stat(key);
  }
  list(prefix: string): AsyncIterable<ListedObject> {
    return this.inner.list(prefix);
  }
  listFolders(prefix: string): Promise<string[]> {
    return this.inner.listFolders(prefix);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const T1 = new Date('2024-06-12T08:00:00.000Z');
const T2 = new Date('2024-06-13T08:00:00.000Z');
const T3 = new Date('2024-06-14T08:00:00.000Z');
const at = (d: Date) => () => d;

/** A: shop 06-10 (a1 authoritative; a0-old valid but older; a0-bad failed). B: shop 06-11. E: news 06-10. C pending, D failed. */
const A: LogicalPartition = { dataset: 'quarry', source: 'shop', category: 'default', day: '2024-06-10' };
const B: LogicalPartition = { ...A, day: '2024-06-11' };
const C: LogicalPartition = { ...A, day: '2024-06-12' };
const D: LogicalPartition = { ...A, day: '2024-06-13' };
const E: LogicalPartition = { ...A, source: 'news' };

const whereDay = (p: LogicalPartition): string => `source = '${p.source}' AND CAST(day AS VARCHAR) = '${p.day}'`;

/** Registers the export suite for one warehouse. */
export function exportSuite(name: string, makeWarehouse: WarehouseFactory): void {
  describe(`quarry export into ${name}`, () => {
    let tmp: TempDir;
    let fs: FsBackend;
    let storage: HookedStorage;
    let ledger: Ledger;
    let wh: TestWarehouse;

    beforeEach(async () => {
      tmp = await makeTempDir('export');
      fs = await FsBackend.create(join(tmp.path, 'data'));
      storage = new HookedStorage(fs);
      ledger = await openLedger(join(tmp.path, 'ledger.sqlite'));
      wh = await makeWarehouse(tmp.path);
    });
    afterEach(async () => {
      await wh.cleanup();
      await ledger.close();
      await fs.close();
      await tmp.remove();
    });

    const run = async (o: RunFixtureOptions & { validate?: boolean }): Promise<void> => {
      const f = await writeRunFixture(fs, o);
      if (o.validate !== false) await validateRun(fs, ledger, f.partition, { now: at(T1) });
    };
    /** The standard world: three success partitions, one pending, one failed, and runs that are not authoritative. */
    const world = async (): Promise<void> => {
      await run({ run_id: 'a1', ...A, finalized_at: '2024-06-10T01:00:00.000Z', job_id: 'job-a', attempt: 2, parent_run_id: 'a0-bad' });
      await run({ run_id: 'a0-bad', ...A, outcome: 'script_error', finalized_at: '2024-06-10T00:20:00.000Z' });
      await run({ run_id: 'a0-old', ...A, finalized_at: '2024-06-10T00:30:00.000Z' });
      await run({ run_id: 'b1', ...B });
      await run({ run_id: 'e1', ...E });
      await run({ run_id: 'c1', ...C, validate: false });
      await run({ run_id: 'd1', ...D, outcome: 'script_error' });
      // The world is what the ledger says it is: the test relies on it.
      expect((await ledger.getPartition(A))?.current_run_id).toBe('a1');
      expect(await ledger.getPartition(C)).toBeUndefined();
      expect((await ledger.getPartition(D))?.status).toBe('failed');
    };
    const reprocessA = async (o: Partial<RunFixtureOptions> = {}): Promise<void> => {
      await run({ run_id: 'a2', ...A, finalized_at: '2024-06-11T01:00:00.000Z', items: 5, ...o });
      expect((await ledger.getPartition(A))?.current_run_id).toBe('a2');
    };
    const exp = (o: Partial<ExportOptions> = {}) => exportPartitions({ storage, ledger, target: wh.target, clock: at(T1), ...o });

    /** Every row of a table as strings, in key order: what "byte for byte the same" compares. */
    const rows = async (table: ExportTable, where = 'TRUE'): Promise<Array<Record<string, unknown>>> => {
      const def = EXPORT_TABLES.find((t) => t.name === table)!;
      const cols = def.columns.map((c) => `CAST(${c.name} AS VARCHAR) AS ${c.name}`).join(', ');
      return wh.query(`SELECT ${cols} FROM ${table} WHERE ${where} ORDER BY ${def.primaryKey.join(', ')}`);
    };
    const snapshot = async (where = 'TRUE') => Object.fromEntries(await Promise.all(EXPORT_TABLES.map(async (t) => [t.name, await rows(t.name, where)] as const)));
    const runsIn = async (table: ExportTable): Promise<string[]> =>
      (await wh.query(`SELECT DISTINCT CAST(run_id AS VARCHAR) AS r FROM ${table} ORDER BY r`)).map((r) => String(r.r));
    const count = async (table: ExportTable, where = 'TRUE'): Promise<number> => Number((await wh.query(`SELECT CAST(COUNT(*) AS VARCHAR) AS n FROM ${table} WHERE ${where}`))[0]!.n);

    it('loads only success partitions, each at its authoritative run: pending, failed and other runs add nothing', async () => {
      await world();
      const s = await exp();
      expect(s).toMatchObject({ target: wh.location, partitions_matched: 3, partitions_loaded: 3, partitions_skipped: 0, rows: { quarry_events: 18, quarry_items: 9, quarry_artifacts: 3 } });
      expect(s.loaded.map((l) => [l.source, l.day, l.run_id, l.action, l.previous_run_id])).toEqual([
        ['news', '2024-06-10', 'e1', 'loaded', null],
        ['shop', '2024-06-10', 'a1', 'loaded', null],
        ['shop', '2024-06-11', 'b1', 'loaded', null],
      ]);
      for (const t of ['quarry_events', 'quarry_items', 'quarry_artifacts', '_quarry_loads'] as const) expect(await runsIn(t)).toEqual(['a1', 'b1', 'e1']);
      expect(await count('quarry_events', `CAST(day AS VARCHAR) IN ('2024-06-12', '2024-06-13')`)).toBe(0);

      // Events: every event of a1 in seq order, with lineage, payload as JSON and the artifact path.
      const ev = await rows('quarry_events', whereDay(A));
      expect(ev.map((r) => [r.seq, r.event_type, r.record_kind])).toEqual([
        ['1', 'item', 'event'], ['2', 'log', 'event'], ['3', 'item', 'event'], ['4', 'item', 'event'], ['5', 'artifact', 'artifact_event'], ['6', 'run_complete', 'event'],
      ]);
      expect(ev[0]).toMatchObject({ dataset: 'quarry', source: 'shop', category: 'default', day: '2024-06-10', run_id: 'a1', event_id: 'a1-e1', contract_version: '1.0.0', attempt: '2', job_id: 'job-a', parent_run_id: 'a0-bad', artifact_path: null });
      expect(JSON.parse(String(ev[0]!.payload))).toEqual({ item_type: 'product', data: { run: 'a1', n: 0, title: 'item 0 of a1' } });
      expect(ev[4]!.artifact_path).toBe('artifacts/shot-a1');
      const ts = await wh.query(`SELECT CAST(ts AS VARCHAR) AS ts, CAST(EXTRACT(EPOCH FROM ts) AS VARCHAR) AS epoch FROM quarry_events WHERE ${whereDay(A)} AND seq = 1`);
      expect(Number(ts[0]!.epoch)).toBe(Date.parse('2024-06-10T00:00:01.000Z') / 1000);

      // Items: item_type and the data, for the authoritative run only.
      const items = await rows('quarry_items');
      expect(items).toHaveLength(9);
      for (const r of items) expect(JSON.parse(String(r.data))).toMatchObject({ run: r.run_id });
      expect(items.filter((r) => r.run_id === 'a1').map((r) => [r.seq, r.item_type, r.event_id])).toEqual([['1', 'product', 'a1-e1'], ['3', 'product', 'a1-e3'], ['4', 'product', 'a1-e4']]);

      // Artifacts: the commit record's fields.
      expect((await rows('quarry_artifacts', whereDay(A)))[0]).toMatchObject({ run_id: 'a1', seq: '5', artifact_id: 'shot-a1', name: 'shot.png', content_type: 'image/png', artifact_path: 'artifacts/shot-a1' });
      expect(Number((await rows('quarry_artifacts', whereDay(A)))[0]!.size_bytes)).toBe(Buffer.byteLength('\x89PNG fixture bytes of a1', 'latin1'));

      // Loads: one row per partition with its run, counts and time.
      const loads = await rows('_quarry_loads');
      expect(loads.map((r) => [r.source, r.day, r.run_id, r.event_types, r.events_rows, r.items_rows, r.artifacts_rows])).toEqual([
        ['news', '2024-06-10', 'e1', '*', '6', '3', '1'],
        ['shop', '2024-06-10', 'a1', '*', '6', '3', '1'],
        ['shop', '2024-06-11', 'b1', '*', '6', '3', '1'],
      ]);
      const loadedAt = await wh.query(`SELECT CAST(EXTRACT(EPOCH FROM loaded_at) AS VARCHAR) AS e FROM _quarry_loads`);
      for (const r of loadedAt) expect(Number(r.e)).toBe(T1.getTime() / 1000);
    });

    it('exporting twice writes nothing the second time: no duplicate rows, load rows not rewritten', async () => {
      await world();
      await exp({ clock: at(T1) });
      const before = await snapshot();
      const again = await exp({ clock: at(T2) });
      expect(again).toMatchObject({ partitions_matched: 3, partitions_loaded: 0, partitions_skipped: 3, loaded: [], rows: { quarry_events: 0, quarry_items: 0, quarry_artifacts: 0 } });
      expect(await snapshot()).toEqual(before);
      expect(await count('quarry_events')).toBe(18);
    });

    it('a forced export is an exact reload: the same rows, never doubled', async () => {
      await world();
      await exp({ clock: at(T1) });
      const before = await snapshot();
      const forced = await exp({ clock: at(T2), force: true });
      expect(forced).toMatchObject({ partitions_loaded: 3, partitions_skipped: 0, rows: { quarry_events: 18, quarry_items: 9, quarry_artifacts: 3 } });
      expect(forced.loaded.map((l) => [l.action, l.previous_run_id, l.run_id])).toEqual([['replaced', 'e1', 'e1'], ['replaced', 'a1', 'a1'], ['replaced', 'b1', 'b1']]);
      const after = await snapshot();
      for (const t of ['quarry_events', 'quarry_items', 'quarry_artifacts'] as const) expect(after[t]).toEqual(before[t]);
      expect(after._quarry_loads).not.toEqual(before._quarry_loads);
    });

    it('after a reprocess, re-export replaces that partition with the new run and leaves every other partition byte for byte the same', async () => {
      await world();
      await exp({ clock: at(T1) });
      const bBefore = await snapshot(whereDay(B));
      const eBefore = await snapshot(whereDay(E));
      const aBefore = await snapshot(whereDay(A));
      await reprocessA();

      const s = await exp({ clock: at(T2) });
      expect(s).toMatchObject({ partitions_matched: 3, partitions_loaded: 1, partitions_skipped: 2, rows: { quarry_events: 8, quarry_items: 5, quarry_artifacts: 1 } });
      expect(s.loaded).toEqual([{ ...A, run_id: 'a2', action: 'replaced', previous_run_id: 'a1', rows: { quarry_events: 8, quarry_items: 5, quarry_artifacts: 1 } }]);

      for (const t of ['quarry_events', 'quarry_items', 'quarry_artifacts', '_quarry_loads'] as const) {
        expect((await rows(t, whereDay(A))).map((r) => r.run_id)).toEqual(Array((await rows(t, whereDay(A))).length).fill('a2'));
      }
      expect(await count('quarry_items', whereDay(A))).toBe(5);
      expect(await count('quarry_events', `run_id = 'a1'`)).toBe(0);
      expect((await snapshot(whereDay(A)))._quarry_loads).not.toEqual(aBefore._quarry_loads);
      // B and E: every row of every table, their _quarry_loads rows (loaded_at of T1) included, unchanged.
      expect(await snapshot(whereDay(B))).toEqual(bBefore);
      expect(await snapshot(whereDay(E))).toEqual(eBefore);
      const bLoad = await wh.query(`SELECT CAST(EXTRACT(EPOCH FROM loaded_at) AS VARCHAR) AS e FROM _quarry_loads WHERE ${whereDay(B)}`);
      expect(Number(bLoad[0]!.e)).toBe(T1.getTime() / 1000);
      expect(await count('quarry_events')).toBe(6 + 6 + 8);
    });

    it('a load failing mid-partition rolls back: the partition keeps its old rows and load row, and a rerun finishes it', async () => {
      await world();
      await exp({ clock: at(T1) });
      const before = await snapshot();
      await reprocessA({ items: 20, itemsPerSegment: 2 });
      // The 4th item segment of a2 fails to read: by then batches of 2 rows went into the open transaction.
      let segments = 0;
      storage.onRead = (key) => {
        if (key.startsWith(runPrefix({ ...A, run_id: 'a2' })) && key.includes('event_type=item/') && ++segments === 4) {
          throw new StorageError('io', 'read', key, 'injected read failure');
        }
      };
      const err = await exp({ clock: at(T2), batchRows: 2 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ExportError);
      const e = err as ExportError;
      expect(e).toMatchObject({ code: 'load_failed', target: wh.location, runId: 'a2', partition: A });
      expect(e.message).toContain(`export to ${wh.location}`);
      expect(e.message).toContain('shop/category=default/day=2024-06-10');
      expect(e.message).toContain('injected read failure');
      expect(e.message).toContain('previous rows are unchanged');
      // E (news) comes first in key order and was current: the summary of what was done says so.
      expect(e.completed).toMatchObject({ partitions_loaded: 0, partitions_skipped: 1 });
      expect(await snapshot()).toEqual(before);

      storage.onRead = undefined;
      const rerun = await exp({ clock: at(T3), batchRows: 2 });
      expect(rerun).toMatchObject({ partitions_loaded: 1, partitions_skipped: 2, rows: { quarry_items: 20 } });
      expect(await runsIn('quarry_items')).toEqual(['a2', 'b1', 'e1']);
      expect(await snapshot(whereDay(B))).toEqual(Object.fromEntries(Object.entries(before).map(([t, r]) => [t, r.filter((x) => x.day === B.day && x.source === B.source)])));
    });

    it('filters choose the partitions; partitions outside them are neither loaded nor touched', async () => {
      await world();
      expect(await exp({ filters: { source: 'news' } })).toMatchObject({ partitions_matched: 1, partitions_loaded: 1 });
      expect(await runsIn('_quarry_loads')).toEqual(['e1']);
      const eRows = await snapshot(whereDay(E));
      expect(await exp({ filters: { day: '2024-06-11' } })).toMatchObject({ partitions_matched: 1, loaded: [{ run_id: 'b1' }] });
      expect(await exp({ filters: { from: '2024-06-10', to: '2024-06-13', source: 'shop' }, clock: at(T2) })).toMatchObject({ partitions_matched: 2, partitions_loaded: 1, partitions_skipped: 1, loaded: [{ run_id: 'a1' }] });
      expect(await runsIn('quarry_events')).toEqual(['a1', 'b1', 'e1']);
      expect(await snapshot(whereDay(E))).toEqual(eRows);
    });

    it('an event-type selection loads only those events; widening it reloads the partitions', async () => {
      await world();
      const only = await exp({ eventTypes: ['item'] });
      expect(only).toMatchObject({ partitions_loaded: 3, rows: { quarry_events: 9, quarry_items: 9, quarry_artifacts: 0 } });
      expect((await wh.query(`SELECT DISTINCT CAST(event_type AS VARCHAR) AS t FROM quarry_events`)).map((r) => r.t)).toEqual(['item']);
      expect((await rows('_quarry_loads')).map((r) => r.event_types)).toEqual(['item', 'item', 'item']);
      expect(await exp({ eventTypes: ['item'] })).toMatchObject({ partitions_loaded: 0, partitions_skipped: 3 });

      const all = await exp();
      expect(all).toMatchObject({ partitions_loaded: 3, rows: { quarry_events: 18, quarry_items: 9, quarry_artifacts: 3 } });
      expect(await count('quarry_events')).toBe(18);
      expect(await count('quarry_items')).toBe(9);
    });

    it('a partition whose authoritative run changes while it loads is loaded at the newer run', async () => {
      await world();
      let reprocessed = false;
      storage.onRead = async (key) => {
        if (!reprocessed && key.startsWith(runPrefix({ ...A, run_id: 'a1' }))) {
          reprocessed = true;
          await reprocessA();
        }
      };
      const s = await exp();
      expect(reprocessed).toBe(true);
      expect(s.loaded.find((l) => l.day === A.day && l.source === 'shop')).toMatchObject({ run_id: 'a2', action: 'loaded', rows: { quarry_items: 5 } });
      expect((await rows('quarry_events', whereDay(A))).every((r) => r.run_id === 'a2')).toBe(true);
      expect((await rows('_quarry_loads', whereDay(A)))[0]).toMatchObject({ run_id: 'a2', items_rows: '5' });
    });

    it('a partition larger than a batch streams through in many batches and loads whole', async () => {
      await run({ run_id: 'big', ...A, items: 2500, itemsPerSegment: 400, logs: 0 });
      const s = await exp({ batchRows: 128 });
      expect(s.rows).toEqual({ quarry_events: 2502, quarry_items: 2500, quarry_artifacts: 1 });
      expect(await count('quarry_items')).toBe(2500);
      const seqs = await wh.query(`SELECT CAST(MIN(seq) AS VARCHAR) AS lo, CAST(MAX(seq) AS VARCHAR) AS hi FROM quarry_events`);
      expect(seqs[0]).toEqual({ lo: '1', hi: '2502' });
    });

    it('an aborted export rolls back the partition in flight and keeps what was committed', async () => {
      await world();
      const ac = new AbortController();
      storage.onRead = (key) => {
        if (key.startsWith(runPrefix({ ...A, run_id: 'a1' }))) ac.abort();
      };
      const err = await exp({ signal: ac.signal, batchRows: 1 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ExportError', code: 'aborted', partition: A, completed: { partitions_loaded: 1, loaded: [{ run_id: 'e1' }] } });
      expect(await runsIn('quarry_events')).toEqual(['e1']);
      expect(await runsIn('_quarry_loads')).toEqual(['e1']);
    });

    it('two exports into one warehouse at once load each partition exactly once', async () => {
      await world();
      const [x, y] = await Promise.all([exp({ batchRows: 2 }), exp({ batchRows: 3 })]);
      expect(x.partitions_loaded + y.partitions_loaded).toBe(3);
      expect(x.partitions_skipped + y.partitions_skipped).toBe(3);
      expect(await count('quarry_events')).toBe(18);
      expect(await count('_quarry_loads')).toBe(3);
    });

    it('an existing table of another shape is refused with the columns it lacks, and nothing is written', async () => {
      await world();
      await wh.query('CREATE TABLE quarry_items (dataset VARCHAR, payload VARCHAR)');
      const err = await exp().catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ExportError', code: 'schema' });
      expect((err as Error).message).toMatch(/quarry_items exists without column\(s\) source, category, day, run_id, seq/);
      expect(await count('quarry_items')).toBe(0);
    });

    it('a run changed behind the validator\'s back is refused as not readable, and the partition keeps its rows', async () => {
      await world();
      await exp({ clock: at(T1) });
      const before = await snapshot();
      const a2 = await writeRunFixture(fs, { run_id: 'a2', ...A, finalized_at: '2024-06-11T01:00:00.000Z' });
      await validateRun(fs, ledger, a2.partition, { now: at(T1) });
      await rewriteManifest(join(tmp.path, 'data'), a2.partition, { ...a2.manifest, message: 'edited after validation' });
      const err = await exp({ clock: at(T2) }).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'ExportError', code: 'not_readable', partition: A });
      expect((err as Error).message).toMatch(/partition quarry\/source=shop\/category=default\/day=2024-06-10 is not readable: .*changed after validation/);
      expect(await snapshot()).toEqual(before);
    });

    it('nothing to export is an empty summary, and the tables exist for readers', async () => {
      const s = await exp();
      expect(s).toMatchObject({ partitions_matched: 0, partitions_loaded: 0, partitions_skipped: 0, rows: { quarry_events: 0, quarry_items: 0, quarry_artifacts: 0 } });
      for (const t of EXPORT_TABLES) expect(await count(t.name)).toBe(0);
    });
  });
}
