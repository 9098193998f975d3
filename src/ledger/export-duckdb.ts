/**
 * The DuckDB warehouse sink of `quarry export` (SPEC §8: "DuckDB file by
 * default"). Rows go in through DuckDB's appender, inside the partition's
 * transaction, so a rollback discards them like any other write.
 *
 * Concurrency: DuckDB lets one process at a time open a file for writing (its
 * file lock; a second process gets an error naming the holder). Inside one
 * process every sink on a file shares one database ({@link DuckDBInstance.fromCache},
 * never two instances writing one file), and a per-partition lock here
 * serializes two exports of the same partition, as PostgreSQL's advisory lock does.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { DuckDBInstance, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import type { LogicalPartition } from '../storage/layout.js';
import { EXPORT_TABLES, LOADS_TABLE, loadCells, partitionKey, RECORD_TABLES, schemaMismatch, type ColumnDef, type ColumnType, type LoadRow, type LoadState, type RecordTable, type Row, type TableDef } from './export-schema.js';
import { errorMessage, ExportError } from './export-result.js';
import type { PartitionTransaction, WarehouseSink } from './export-sink.js';

const DUCKDB_TYPES: Readonly<Record<ColumnType, string>> = {
  text: 'VARCHAR',
  date: 'DATE',
  timestamptz: 'TIMESTAMPTZ',
  bigint: 'BIGINT',
  integer: 'INTEGER',
  json: 'JSON',
};

/** How long an open waits for this process's previous database on the file to finish closing. */
const CLOSING_WAIT_MS = 10_000;

/**
 * Opens `location` through DuckDB's instance cache. Closing a database is not
 * synchronous: after the last handle is dropped the cache may hand out a new
 * database while the old one is still attached to the file, and DuckDB then
 * refuses with "Unique file handle conflict". That refusal is retried for a
 * while (the old database is ours and is going away); anything else, such as
 * another process holding the file's lock, is thrown at once.
 */
export async function openDuckDbFile(location: string): Promise<DuckDBInstance> {
  const deadline = Date.now() + CLOSING_WAIT_MS;
  for (let wait = 10; ; wait = Math.min(wait * 2, 250)) {
    try {
      return await DuckDBInstance.fromCache(location);
    } catch (err) {
      if (!/Unique file handle conflict/.test(errorMessage(err)) || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

const quote = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** `CREATE TABLE IF NOT EXISTS` for one export table, in DuckDB's types. */
export function duckdbCreateTable(t: TableDef): string {
  const cols = t.columns.map((c) => `${quote(c.name)} ${DUCKDB_TYPES[c.type]}${c.nullable ? '' : ' NOT NULL'}`);
  return `CREATE TABLE IF NOT EXISTS ${quote(t.name)} (${cols.join(', ')}, PRIMARY KEY (${t.primaryKey.map(quote).join(', ')}))`;
}

const PARTITION_WHERE = 'dataset = ? AND source = ? AND category = ? AND day = CAST(? AS DATE)';
const partitionParams = (p: LogicalPartition): string[] => [p.dataset, p.source, p.category, p.day];

/** Tail of the lock chain per file and partition (or the file's tables); an entry lives while someone holds or waits for it. */
const partitionLocks = new Map<string, Promise<void>>();

async function lockPartition(key: string): Promise<() => void> {
  const previous = partitionLocks.get(key) ?? Promise.resolve();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const tail = previous.then(() => held);
  partitionLocks.set(key, tail);
  await previous;
  return () => {
    release();
    if (partitionLocks.get(key) === tail) partitionLocks.delete(key);
  };
}

function append(a: DuckDBAppender, c: ColumnDef, v: Row[number]): void {
  if (v === null) return a.appendNull();
  if (c.type === 'bigint') return a.appendBigInt(BigInt(v));
  if (c.type === 'integer') return a.appendInteger(Number(v));
  // DATE, TIMESTAMPTZ and JSON cast from text as they are appended (ISO strings, JSON text).
  return a.appendVarchar(String(v));
}

/** A DuckDB file as an export warehouse. Create with {@link DuckDbSink.create}. */
export class DuckDbSink implements WarehouseSink {
  readonly kind = 'duckdb' as const;
  readonly location: string;
  #instance: DuckDBInstance | undefined;
  #conn: DuckDBConnection | undefined;

  private constructor(location: string, instance: DuckDBInstance, conn: DuckDBConnection) {
    this.location = location;
    this.#instance = instance;
    this.#conn = conn;
  }

  /**
   * Opens (creating it and its folder when missing) the DuckDB file at `path`.
   * @throws ExportError `unavailable` when the file cannot be opened, e.g. another process holds it.
   */
  static async create(path: string): Promise<DuckDbSink> {
    const location = path === ':memory:' ? path : resolve(path);
    try {
      if (location !== ':memory:') await mkdir(dirname(location), { recursive: true });
      const instance = await openDuckDbFile(location);
      return new DuckDbSink(location, instance, await instance.connect());
    } catch (err) {
      throw new ExportError('unavailable', location, `cannot open the DuckDB file (${errorMessage(err)}): check that its folder is writable and that no other process (a DuckDB shell, another export) has it open`, { cause: err });
    }
  }

  #connection(): DuckDBConnection {
    if (this.#conn === undefined) throw new ExportError('unavailable', this.location, 'the DuckDB sink is closed');
    return this.#conn;
  }

  maxBatchRows(): number {
    return Number.MAX_SAFE_INTEGER;
  }

  async prepare(): Promise<void> {
    // Two sinks of one process creating the tables at once would hit DuckDB's catalog write-write conflict.
    const release = await lockPartition(`${this.location}\n(tables)`);
    try {
      await this.#prepare(this.#connection());
    } finally {
      release();
    }
  }

  async #prepare(conn: DuckDBConnection): Promise<void> {
    const names = EXPORT_TABLES.map((t) => `'${t.name}'`).join(', ');
    const found = (
      await conn.runAndReadAll(`SELECT table_name, column_name FROM information_schema.columns WHERE table_catalog = current_database() AND table_schema = current_schema() AND table_name IN (${names})`)
    ).getRowObjectsJson();
    const existing = new Map<string, Set<string>>();
    for (const r of found) {
      const set = existing.get(String(r.table_name)) ?? new Set<string>();
      set.add(String(r.column_name));
      existing.set(String(r.table_name), set);
    }
    // Check every existing table before creating any, so a refused export leaves the file as it was.
    const mismatch = schemaMismatch(existing);
    if (mismatch !== undefined) throw new ExportError('schema', this.location, `${mismatch}; export into another file, or drop or rename the table`);
    for (const t of EXPORT_TABLES) if (!existing.has(t.name)) await conn.run(duckdbCreateTable(t));
  }

  async loads(): Promise<Map<string, LoadState>> {
    const rows = (await this.#connection().runAndReadAll(`SELECT dataset, source, category, CAST(day AS VARCHAR) AS day, run_id, event_types FROM ${quote(LOADS_TABLE.name)}`)).getRowObjectsJson();
    const out = new Map<string, LoadState>();
    for (const r of rows) {
      out.set(partitionKey({ dataset: String(r.dataset), source: String(r.source), category: String(r.category), day: String(r.day) }), { run_id: String(r.run_id), event_types: String(r.event_types) });
    }
    return out;
  }

  async begin(partition: LogicalPartition): Promise<PartitionTransaction> {
    const conn = this.#connection();
    const release = await lockPartition(`${this.location}\n${partitionKey(partition)}`);
    try {
      await conn.run('BEGIN TRANSACTION');
    } catch (err) {
      release();
      throw err;
    }
    return new DuckDbPartitionTransaction(conn, partition, release);
  }

  close(): Promise<void> {
    // Dropping the last handle on a cached database closes it and frees the file lock.
    this.#conn?.closeSync();
    this.#instance?.closeSync();
    this.#conn = undefined;
    this.#instance = undefined;
    return Promise.resolve();
  }
}

class DuckDbPartitionTransaction implements PartitionTransaction {
  readonly #conn: DuckDBConnection;
  readonly #partition: LogicalPartition;
  readonly #appenders = new Map<RecordTable, DuckDBAppender>();
  #release: (() => void) | undefined;

  constructor(conn: DuckDBConnection, partition: LogicalPartition, release: () => void) {
    this.#conn = conn;
    this.#partition = partition;
    this.#release = release;
  }

  async currentLoad(): Promise<LoadState | undefined> {
    const rows = (await this.#conn.runAndReadAll(`SELECT run_id, event_types FROM ${quote(LOADS_TABLE.name)} WHERE ${PARTITION_WHERE}`, partitionParams(this.#partition))).getRowObjectsJson();
    const r = rows[0];
    return r === undefined ? undefined : { run_id: String(r.run_id), event_types: String(r.event_types) };
  }

  async deletePartition(): Promise<void> {
    for (const t of EXPORT_TABLES) await this.#conn.run(`DELETE FROM ${quote(t.name)} WHERE ${PARTITION_WHERE}`, partitionParams(this.#partition));
  }

  async insert(table: RecordTable, rows: readonly Row[]): Promise<void> {
    let a = this.#appenders.get(table);
    if (a === undefined) {
      a = await this.#conn.createAppender(table);
      this.#appenders.set(table, a);
    }
    const columns = RECORD_TABLES[table].columns;
    for (const row of rows) {
      columns.forEach((c, i) => append(a, c, row[i] ?? null));
      a.endRow();
    }
    // Flushing per batch moves the rows into the transaction's storage: the appender never holds more than a batch.
    a.flushSync();
  }

  async recordLoad(row: LoadRow): Promise<void> {
    const cells = loadCells(row);
    await this.#conn.run(`INSERT INTO ${quote(LOADS_TABLE.name)} VALUES (${cells.map(() => '?').join(', ')})`, [...cells]);
  }

  async commit(): Promise<void> {
    this.#closeAppenders(false);
    await this.#conn.run('COMMIT');
    this.#done();
  }

  async rollback(): Promise<void> {
    if (this.#release === undefined) return;
    this.#closeAppenders(true);
    try {
      await this.#conn.run('ROLLBACK');
    } catch {
      // No transaction left to roll back (DuckDB ends a failed COMMIT's transaction itself).
    }
    this.#done();
  }

  #closeAppenders(discard: boolean): void {
    const appenders = [...this.#appenders.values()];
    this.#appenders.clear();
    let first: unknown;
    for (const a of appenders) {
      try {
        if (discard) a.clear();
        a.closeSync();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined && !discard) throw first;
  }

  #done(): void {
    this.#release?.();
    this.#release = undefined;
  }
}
