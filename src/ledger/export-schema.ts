/**
 * The warehouse tables of `quarry export` (SPEC §8 consumers) and how a stored
 * record becomes their rows. Pure: column lists, key columns and row mapping
 * live here once, so the DuckDB and PostgreSQL sinks differ only in SQL
 * spelling and in how they send a batch.
 *
 * Every table carries the logical partition keys (`dataset`, `source`,
 * `category`, `day`) first: a reload deletes exactly one partition's rows by
 * them, and the primary key (partition, `run_id`, `seq`) makes a duplicate
 * row an error rather than a silent double count.
 */
import type { LogicalPartition } from '../storage/layout.js';
import type { EventRecord, StoredRecord } from '../storage/records.js';

/** A column's type, mapped to each warehouse's own type by its sink. */
export type ColumnType = 'text' | 'date' | 'timestamptz' | 'bigint' | 'integer' | 'json';

/** One column of an export table. */
export interface ColumnDef {
  readonly name: string;
  readonly type: ColumnType;
  readonly nullable: boolean;
}

/** A cell as the sinks receive it: JSON columns as JSON text, dates and instants as ISO strings. */
export type Cell = string | number | null;

/** One row, cells in the table's column order. */
export type Row = readonly Cell[];

/** The tables `quarry export` writes. */
export type ExportTable = 'quarry_events' | 'quarry_items' | 'quarry_artifacts' | '_quarry_loads';

/** The three tables of records (the fourth, `_quarry_loads`, records the loads). */
export type RecordTable = Exclude<ExportTable, '_quarry_loads'>;

/** A table's columns and primary key. */
export interface TableDef {
  readonly name: ExportTable;
  readonly columns: readonly ColumnDef[];
  readonly primaryKey: readonly string[];
}

const col = (name: string, type: ColumnType, nullable = false): ColumnDef => ({ name, type, nullable });

const PARTITION_COLUMNS: readonly ColumnDef[] = [col('dataset', 'text'), col('source', 'text'), col('category', 'text'), col('day', 'date')];
const RECORD_KEY = ['dataset', 'source', 'category', 'day', 'run_id', 'seq'] as const;
/** The columns naming a logical partition, in every table. */
export const PARTITION_KEY = ['dataset', 'source', 'category', 'day'] as const;

/** Every event of the authoritative run: one row per stored event record. */
export const EVENTS_TABLE: TableDef = {
  name: 'quarry_events',
  columns: [
    ...PARTITION_COLUMNS,
    col('run_id', 'text'),
    col('seq', 'bigint'),
    col('event_type', 'text'),
    col('record_kind', 'text'),
    col('event_id', 'text'),
    col('ts', 'timestamptz'),
    col('contract_version', 'text'),
    col('attempt', 'integer'),
    col('job_id', 'text', true),
    col('parent_run_id', 'text', true),
    col('payload', 'json'),
    col('artifact_path', 'text', true),
  ],
  primaryKey: RECORD_KEY,
};

/** `item` events, unpacked: the scraped data a pipeline mostly wants. */
export const ITEMS_TABLE: TableDef = {
  name: 'quarry_items',
  columns: [...PARTITION_COLUMNS, col('run_id', 'text'), col('seq', 'bigint'), col('event_id', 'text'), col('ts', 'timestamptz'), col('item_type', 'text'), col('data', 'json')],
  primaryKey: RECORD_KEY,
};

/** `artifact` events (the commit records of artifact bytes), unpacked. */
export const ARTIFACTS_TABLE: TableDef = {
  name: 'quarry_artifacts',
  columns: [
    ...PARTITION_COLUMNS,
    col('run_id', 'text'),
    col('seq', 'bigint'),
    col('event_id', 'text'),
    col('ts', 'timestamptz'),
    col('artifact_id', 'text'),
    col('name', 'text'),
    col('content_type', 'text'),
    col('size_bytes', 'bigint'),
    col('artifact_path', 'text', true),
  ],
  primaryKey: RECORD_KEY,
};

/** One row per exported logical partition: which authoritative run its rows are, and when they were loaded. */
export const LOADS_TABLE: TableDef = {
  name: '_quarry_loads',
  columns: [
    ...PARTITION_COLUMNS,
    col('run_id', 'text'),
    col('event_types', 'text'),
    col('ledger_updated_at', 'timestamptz'),
    col('loaded_at', 'timestamptz'),
    col('events_rows', 'bigint'),
    col('items_rows', 'bigint'),
    col('artifacts_rows', 'bigint'),
  ],
  primaryKey: PARTITION_KEY,
};

/** The four tables, in creation order. */
export const EXPORT_TABLES: readonly TableDef[] = [EVENTS_TABLE, ITEMS_TABLE, ARTIFACTS_TABLE, LOADS_TABLE];

/** The record tables, by name. */
export const RECORD_TABLES: Readonly<Record<RecordTable, TableDef>> = {
  quarry_events: EVENTS_TABLE,
  quarry_items: ITEMS_TABLE,
  quarry_artifacts: ARTIFACTS_TABLE,
};

/**
 * Why existing tables cannot take the export's rows, or undefined when they
 * can (or do not exist yet): the first table lacking columns, and which.
 * @param existing column names per existing table name
 */
export function schemaMismatch(existing: ReadonlyMap<string, ReadonlySet<string>>): string | undefined {
  for (const t of EXPORT_TABLES) {
    const cols = existing.get(t.name);
    if (cols === undefined) continue;
    const missing = t.columns.filter((c) => !cols.has(c.name)).map((c) => c.name);
    if (missing.length > 0) return `table ${t.name} exists without column(s) ${missing.join(', ')}: it was not made by this version of quarry export`;
  }
  return undefined;
}

/** `_quarry_loads.event_types` when every event type was exported. */
export const ALL_EVENT_TYPES = '*';

/** What `_quarry_loads` says about a partition: enough to decide whether it is current. */
export interface LoadState {
  run_id: string;
  /** {@link ALL_EVENT_TYPES}, or the exported event types sorted and comma-joined. */
  event_types: string;
}

/** A full `_quarry_loads` row, as the exporter writes it. */
export interface LoadRow extends LogicalPartition, LoadState {
  ledger_updated_at: string;
  loaded_at: string;
  events_rows: number;
  items_rows: number;
  artifacts_rows: number;
}

/** The `_quarry_loads` row as cells. */
export function loadCells(r: LoadRow): Row {
  return [r.dataset, r.source, r.category, r.day, r.run_id, r.event_types, r.ledger_updated_at, r.loaded_at, r.events_rows, r.items_rows, r.artifacts_rows];
}

/** A map key for a logical partition. Key values cannot contain `/` (layout.ts), so the join is unambiguous. */
export function partitionKey(p: LogicalPartition): string {
  return `${p.dataset}/${p.source}/${p.category}/${p.day}`;
}

/** A stored record the exporter cannot map to rows although the validator passed its run. */
export class ExportRecordError extends Error {
  override readonly name = 'ExportRecordError';
  constructor(
    readonly runId: string,
    readonly seq: number,
    message: string,
  ) {
    super(`run ${runId} seq ${seq}: ${message}`);
  }
}

function text(rec: EventRecord, field: string): string {
  const v = rec.payload[field];
  if (typeof v !== 'string') throw new ExportRecordError(rec.run_id, rec.seq, `${rec.event_type} payload field ${field} is ${JSON.stringify(v) ?? 'absent'}, not a string`);
  return v;
}

function json(rec: EventRecord, value: unknown, what: string): string {
  const s = JSON.stringify(value);
  if (s === undefined) throw new ExportRecordError(rec.run_id, rec.seq, `${what} is absent`);
  return s;
}

/** Rows one record contributes, per record table. */
export interface RecordRows {
  quarry_events?: Row;
  quarry_items?: Row;
  quarry_artifacts?: Row;
}

/**
 * Maps one stored record of partition `p` to its rows: every event to
 * `quarry_events`, an `item` event also to `quarry_items`, an artifact event
 * also to `quarry_artifacts`. The metrics record maps to nothing.
 * Partition keys come from `p` (what a reload deletes by), the run id from the
 * record (a tree's records keep their own run).
 * @throws ExportRecordError when an item or artifact payload lacks a required field.
 */
export function recordRows(p: LogicalPartition, rec: StoredRecord): RecordRows {
  if (rec.record_kind === 'metrics') return {};
  const keys: Cell[] = [p.dataset, p.source, p.category, p.day, rec.run_id, rec.seq];
  const out: { -readonly [K in keyof RecordRows]: RecordRows[K] } = {
    quarry_events: [
      ...keys,
      rec.event_type,
      rec.record_kind,
      rec.event_id,
      rec.ts,
      rec.contract_version,
      rec.attempt,
      rec.job_id ?? null,
      rec.parent_run_id ?? null,
      json(rec, rec.payload, 'payload'),
      rec.artifact_path ?? null,
    ],
  };
  if (rec.event_type === 'item') {
    out.quarry_items = [...keys, rec.event_id, rec.ts, text(rec, 'item_type'), json(rec, rec.payload.data, 'item payload field data')];
  } else if (rec.record_kind === 'artifact_event') {
    const size = rec.payload.size_bytes;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new ExportRecordError(rec.run_id, rec.seq, `artifact payload field size_bytes is ${JSON.stringify(size) ?? 'absent'}, not a byte count`);
    }
    out.quarry_artifacts = [...keys, rec.event_id, rec.ts, text(rec, 'artifact_id'), text(rec, 'name'), text(rec, 'content_type'), size, rec.artifact_path ?? null];
  }
  return out;
}
