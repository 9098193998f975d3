/** The pure parts of quarry export: targets, options, and how a stored record becomes rows. */
import { describe, expect, it } from 'vitest';
import { compileExportOptions, DEFAULT_EXPORT_TARGET, parseExportTarget } from '../../src/ledger/export.js';
import { ARTIFACTS_TABLE, EVENTS_TABLE, ExportRecordError, ITEMS_TABLE, LOADS_TABLE, loadCells, recordRows, schemaMismatch } from '../../src/ledger/export-schema.js';
import { ExportError } from '../../src/ledger/export-result.js';
import { postgresInsert, PG_MAX_PARAMS } from '../../src/ledger/export-postgres.js';
import type { EventRecord, MetricsRecord } from '../../src/storage/records.js';

const P = { dataset: 'quarry', source: 'shop', category: 'default', day: '2024-06-10' };
const base: EventRecord = {
  record_kind: 'event', ...P, run_id: 'r1', event_type: 'item', seq: 7, event_id: 'r1-e7', ts: '2024-06-10T00:00:07.000Z',
  contract_version: '1.0.0', attempt: 1, payload: { item_type: 'product', data: { sku: 'a', price: 3 } },
};
const rowObject = (cols: readonly { name: string }[], row: readonly unknown[] | undefined) => Object.fromEntries(cols.map((c, i) => [c.name, row?.[i]]));

describe('parseExportTarget', () => {
  it('reads duckdb:<file>, duckdb://<file> and a bare path as DuckDB files', () => {
    expect(parseExportTarget('duckdb:out/w.duckdb')).toEqual({ kind: 'duckdb', path: 'out/w.duckdb', location: 'out/w.duckdb' });
    expect(parseExportTarget('duckdb:///tmp/w.duckdb')).toMatchObject({ kind: 'duckdb', path: '/tmp/w.duckdb' });
    expect(parseExportTarget('  w.duckdb ')).toMatchObject({ kind: 'duckdb', path: 'w.duckdb' });
    expect(parseExportTarget(DEFAULT_EXPORT_TARGET)).toMatchObject({ kind: 'duckdb', path: 'quarry.duckdb' });
  });

  it('reads postgres:// and postgresql:// URLs and never shows their password', () => {
    expect(parseExportTarget('postgres://u:p%40ss@db:5432/wh')).toEqual({ kind: 'postgres', url: 'postgres://u:p%40ss@db:5432/wh', location: 'postgres://u:***@db:5432/wh', secret: 'p@ss' });
    expect(parseExportTarget('postgresql://db/wh')).toMatchObject({ kind: 'postgres', location: 'postgresql://db/wh', secret: '' });
  });

  it('refuses an empty target, a duckdb: without a file and other schemes, quoting them without secrets', () => {
    expect(() => parseExportTarget(' ')).toThrow(/export target is empty: give duckdb:<file> or a postgres:\/\/ URL/);
    expect(() => parseExportTarget('duckdb:')).toThrow(/"duckdb:" names no file: use duckdb:<file>/);
    const err = (() => {
      try {
        parseExportTarget('mysql://root:hunter2@db/wh');
      } catch (e) {
        return e as ExportError;
      }
    })();
    expect(err).toBeInstanceOf(ExportError);
    expect(err).toMatchObject({ code: 'invalid_option', target: 'mysql://***@db/wh' });
    expect(err?.message).toContain('unsupported target scheme "mysql"');
    expect(err?.message).not.toContain('hunter2');
    expect(() => parseExportTarget('postgres://u:hunter2@:5432/wh')).toThrow('export to postgres://(unparseable url): the target is not a valid URL: use postgres://user:password@host:5432/database');
  });
});

describe('compileExportOptions', () => {
  it('defaults: the DuckDB file, every event type, batches of 1000, no force', () => {
    expect(compileExportOptions({})).toMatchObject({ target: { kind: 'duckdb', path: 'quarry.duckdb' }, eventTypes: undefined, eventTypesKey: '*', batchRows: 1000, force: false });
  });

  it('event types are deduplicated and sorted, so the same selection is recognised as current', () => {
    expect(compileExportOptions({ eventTypes: ['log', 'item', 'log'] })).toMatchObject({ eventTypes: ['item', 'log'], eventTypesKey: 'item,log' });
  });

  it('bad values are quoted with what is accepted', () => {
    expect(() => compileExportOptions({ batchRows: 0 })).toThrow(/batch size 0 must be an integer from 1 to 100000/);
    expect(() => compileExportOptions({ batchRows: 1.5 })).toThrow(/batch size 1.5/);
    expect(() => compileExportOptions({ eventTypes: [] })).toThrow(/event type list is empty/);
    expect(() => compileExportOptions({ eventTypes: ['item', 'a/b'] })).toThrow(/event type "a\/b" must be 1-128 characters/);
    expect(() => compileExportOptions({ eventTypes: ['metrics'] })).toThrow(/"metrics" is not an event/);
  });
});

describe('recordRows', () => {
  it('an item event is one events row and one items row, with the partition keys first', () => {
    const r = recordRows(P, { ...base, job_id: 'j', parent_run_id: 'r0' });
    expect(rowObject(EVENTS_TABLE.columns, r.quarry_events)).toEqual({
      ...P, run_id: 'r1', seq: 7, event_type: 'item', record_kind: 'event', event_id: 'r1-e7', ts: '2024-06-10T00:00:07.000Z',
      contract_version: '1.0.0', attempt: 1, job_id: 'j', parent_run_id: 'r0', payload: JSON.stringify(base.payload), artifact_path: null,
    });
    expect(rowObject(ITEMS_TABLE.columns, r.quarry_items)).toEqual({ ...P, run_id: 'r1', seq: 7, event_id: 'r1-e7', ts: base.ts, item_type: 'product', data: '{"sku":"a","price":3}' });
    expect(r.quarry_artifacts).toBeUndefined();
  });

  it('an artifact event is one events row and one artifacts row', () => {
    const rec: EventRecord = { ...base, record_kind: 'artifact_event', event_type: 'artifact', payload: { artifact_id: 'shot', name: 's.png', content_type: 'image/png', size_bytes: 42 }, artifact_path: 'artifacts/shot' };
    const r = recordRows(P, rec);
    expect(rowObject(ARTIFACTS_TABLE.columns, r.quarry_artifacts)).toEqual({ ...P, run_id: 'r1', seq: 7, event_id: 'r1-e7', ts: base.ts, artifact_id: 'shot', name: 's.png', content_type: 'image/png', size_bytes: 42, artifact_path: 'artifacts/shot' });
    expect(r.quarry_events?.[EVENTS_TABLE.columns.findIndex((c) => c.name === 'artifact_path')]).toBe('artifacts/shot');
    expect(r.quarry_items).toBeUndefined();
  });

  it('other events go to the events table only; the metrics record to none', () => {
    expect(Object.keys(recordRows(P, { ...base, event_type: 'log', payload: { level: 'info', message: 'hi' } }))).toEqual(['quarry_events']);
    const metrics = { record_kind: 'metrics', ...P, run_id: 'r1', event_type: 'metrics', metrics: {} } as unknown as MetricsRecord;
    expect(recordRows(P, metrics)).toEqual({});
  });

  it('an item without item_type or data, or an artifact without a byte count, names the run and seq', () => {
    expect(() => recordRows(P, { ...base, payload: { data: {} } })).toThrow(new ExportRecordError('r1', 7, 'item payload field item_type is absent, not a string'));
    expect(() => recordRows(P, { ...base, payload: { item_type: 'x' } })).toThrow(/run r1 seq 7: item payload field data is absent/);
    expect(() => recordRows(P, { ...base, record_kind: 'artifact_event', event_type: 'artifact', payload: { artifact_id: 'a', name: 'n', content_type: 'c', size_bytes: -1 } })).toThrow(/size_bytes is -1, not a byte count/);
  });
});

describe('tables', () => {
  it('every table keys on the partition first, so a reload deletes by an index prefix', () => {
    for (const t of [EVENTS_TABLE, ITEMS_TABLE, ARTIFACTS_TABLE, LOADS_TABLE]) expect(t.primaryKey.slice(0, 4)).toEqual(['dataset', 'source', 'category', 'day']);
    expect(loadCells({ ...P, run_id: 'r', event_types: '*', ledger_updated_at: 'u', loaded_at: 'l', events_rows: 1, items_rows: 2, artifacts_rows: 3 })).toHaveLength(LOADS_TABLE.columns.length);
  });

  it('an existing table lacking columns is named with them; tables not there yet are fine', () => {
    expect(schemaMismatch(new Map())).toBeUndefined();
    expect(schemaMismatch(new Map([['quarry_items', new Set(ITEMS_TABLE.columns.map((c) => c.name))]]))).toBeUndefined();
    expect(schemaMismatch(new Map([['_quarry_loads', new Set(['dataset', 'source', 'category', 'day', 'run_id'])]]))).toMatch(/table _quarry_loads exists without column\(s\) event_types, ledger_updated_at, loaded_at/);
  });

  it('a PostgreSQL batch stays under the bind-parameter limit', () => {
    const sql = postgresInsert(ITEMS_TABLE, 2);
    expect(sql).toBe('INSERT INTO "quarry_items" ("dataset", "source", "category", "day", "run_id", "seq", "event_id", "ts", "item_type", "data") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10), ($11, $12, $13, $14, $15, $16, $17, $18, $19, $20)');
    expect(Math.floor(PG_MAX_PARAMS / EVENTS_TABLE.columns.length) * EVENTS_TABLE.columns.length).toBeLessThanOrEqual(PG_MAX_PARAMS);
  });
});
