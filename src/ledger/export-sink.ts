/**
 * The warehouse port of `quarry export` (SPEC §8): one small interface, one
 * implementation per warehouse (`export-duckdb.ts`, `export-postgres.ts`), one
 * test suite both pass (test/ledger/export-suite.ts). The exporter decides
 * what to load; a sink only runs one partition's transaction at a time.
 */
import type { LogicalPartition } from '../storage/layout.js';
import type { LoadRow, LoadState, RecordTable, Row } from './export-schema.js';

/** Which warehouse a sink writes. */
export type WarehouseKind = 'duckdb' | 'postgres';

/** A connection to one warehouse, opened by the exporter and closed when it is done. */
export interface WarehouseSink {
  readonly kind: WarehouseKind;
  /** Where the warehouse is, for messages: a file path, or a URL without its password. */
  readonly location: string;
  /** Largest batch {@link PartitionTransaction.insert} takes for `table` (PostgreSQL: bind-parameter limit). */
  maxBatchRows(table: RecordTable): number;
  /**
   * Creates the export tables that are missing and checks that existing ones
   * have every column the exporter writes.
   * @throws ExportError `schema` naming the table and the missing columns.
   */
  prepare(): Promise<void>;
  /** Every partition's `_quarry_loads` state, by {@link partitionKey}. */
  loads(): Promise<Map<string, LoadState>>;
  /**
   * Starts the one transaction in which a partition's rows are replaced, and
   * takes that partition's lock for it, so two exporters never load one
   * partition at once. Only one transaction is open per sink at a time.
   */
  begin(partition: LogicalPartition): Promise<PartitionTransaction>;
  /** Releases the connection (and, for DuckDB, the file). Safe to call twice. */
  close(): Promise<void>;
}

/** One partition's replacement, all or nothing. */
export interface PartitionTransaction {
  /** The partition's `_quarry_loads` state as this transaction sees it, under its lock. */
  currentLoad(): Promise<LoadState | undefined>;
  /** Deletes the partition's rows from every export table, its `_quarry_loads` row included. */
  deletePartition(): Promise<void>;
  /** Inserts rows (at most {@link WarehouseSink.maxBatchRows}) into `table` as one bulk write. */
  insert(table: RecordTable, rows: readonly Row[]): Promise<void>;
  /** Inserts the partition's `_quarry_loads` row (after {@link deletePartition}). */
  recordLoad(row: LoadRow): Promise<void>;
  /** Makes every change of the transaction visible at once. */
  commit(): Promise<void>;
  /** Discards every change; safe after a failed statement and safe to call twice. */
  rollback(): Promise<void>;
}
