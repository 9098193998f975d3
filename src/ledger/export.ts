/**
 * `quarry export` as a library (SPEC §8 consumers): loads the authoritative
 * records of every `success` partition matching the filters into a warehouse
 * — a DuckDB file by default, PostgreSQL by URL — idempotently.
 *
 * Invariants:
 * - Only what the consumer API vouches for is loaded: `success` partitions at
 *   the run the ledger names, read through {@link openConsumer} (never by
 *   listing folders). Pending and failed partitions and other runs add nothing.
 * - One transaction per partition: delete its rows from every table, insert
 *   the authoritative run's rows, write its `_quarry_loads` row. A failure
 *   rolls it back, so the partition keeps its previous rows; other partitions'
 *   rows are never touched.
 * - A partition whose `_quarry_loads` row already names its authoritative run
 *   (and the same event types) is skipped without a write; after a reprocess
 *   (the ledger names a newer run) its rows are replaced.
 * - Records stream through in batches; a partition is never held in memory.
 */
import { redactUrl } from '../protocol/redact.js';
import type { StorageBackend } from '../storage/backend.js';
import type { LogicalPartition } from '../storage/layout.js';
import type { StoredRecord } from '../storage/records.js';
import { openConsumer, PartitionNotReadableError, type AuthoritativePartition, type Consumer, type ConsumerFilters } from './consumer.js';
import { ALL_EVENT_TYPES, ExportRecordError, partitionKey, RECORD_TABLES, recordRows, type LoadState, type RecordTable, type Row } from './export-schema.js';
import { errorMessage, ExportError, type ExportRowCounts, type ExportSummary, type PartitionExport } from './export-result.js';
import type { PartitionTransaction, WarehouseSink } from './export-sink.js';
import type { LedgerReader } from './ledger.js';
import { LedgerError } from './types.js';

export { ExportError, type ExportErrorCode, type ExportRowCounts, type ExportSummary, type PartitionExport } from './export-result.js';

/** The warehouse when none is given: a DuckDB file in the working directory. */
export const DEFAULT_EXPORT_TARGET = 'duckdb:quarry.duckdb';
/** Rows per bulk insert, per table, when not given. */
export const DEFAULT_EXPORT_BATCH_ROWS = 1000;
/** Largest `batchRows` accepted: a batch is held in memory. */
export const MAX_EXPORT_BATCH_ROWS = 100_000;
/** Times a partition is reloaded when its authoritative run changes while it loads. */
const LEDGER_MOVE_ATTEMPTS = 3;

/** Options of {@link exportPartitions}. */
export interface ExportOptions {
  /** Where the runs are. */
  storage: StorageBackend;
  /** Which partitions are `success`, at which run. Only read. */
  ledger: LedgerReader;
  /** `duckdb:<file>` (or a bare file path) or a `postgres://` / `postgresql://` URL. Default {@link DEFAULT_EXPORT_TARGET}. */
  target?: string;
  /** Which `success` partitions (dataset, source, category, day or from/to, limit). Default: all. */
  filters?: ConsumerFilters;
  /** Only events of these types (`item`, `artifact`, `log` …). Default: every event type. */
  eventTypes?: readonly string[];
  /** Reload partitions even when their loaded run is current (an exact reload: rows replaced, never doubled). */
  force?: boolean;
  /** Rows per bulk insert, per table (default {@link DEFAULT_EXPORT_BATCH_ROWS}). */
  batchRows?: number;
  /** For `loaded_at` and the duration. Default: `new Date()`. */
  clock?: () => Date;
  /** Stops the export: the partition in flight is rolled back, committed ones stay. */
  signal?: AbortSignal;
}

/** A parsed export target. `location` is what messages show: no password. */
export type ExportTarget =
  | { kind: 'duckdb'; path: string; location: string }
  | { kind: 'postgres'; url: string; location: string; secret: string };

const invalid = (target: string, message: string): ExportError => new ExportError('invalid_option', target, message);


/**
 * Parses a target: `duckdb:<file>` (also `duckdb://<file>`), a bare file path
 * (DuckDB), or a `postgres://` / `postgresql://` URL.
 * @throws ExportError `invalid_option` quoting the bad target (with its password hidden).
 */
export function parseExportTarget(target: string): ExportTarget {
  const t = target.trim();
  if (t === '') throw invalid('(no target)', 'the export target is empty: give duckdb:<file> or a postgres:// URL');
  if (/^postgres(ql)?:\/\//i.test(t)) {
    let u: URL;
    try {
      u = new URL(t);
    } catch {
      throw invalid('postgres://(unparseable url)', 'the target is not a valid URL: use postgres://user:password@host:5432/database');
    }
    return { kind: 'postgres', url: t, location: redactUrl(u), secret: decodeURIComponent(u.password) };
  }
  const duck = /^duckdb:(?:\/\/)?(.*)$/i.exec(t);
  if (duck !== null) {
    const path = duck[1]!;
    if (path === '') throw invalid(t, `${JSON.stringify(t)} names no file: use duckdb:<file>, e.g. duckdb:warehouse.duckdb`);
    return { kind: 'duckdb', path, location: path };
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(t);
  if (scheme !== null) throw invalid(t.replace(/\/\/[^@/]*@/, '//***@'), `unsupported target scheme ${JSON.stringify(scheme[1])}: use duckdb:<file> or a postgres:// URL`);
  return { kind: 'duckdb', path: t, location: t };
}

/** Options checked and defaulted: what {@link exportPartitions} runs with. */
export interface CompiledExportOptions {
  target: ExportTarget;
  /** Undefined: every event type. */
  eventTypes: readonly string[] | undefined;
  /** `_quarry_loads.event_types` for this selection. */
  eventTypesKey: string;
  batchRows: number;
  force: boolean;
}

const EVENT_TYPE_RE = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Checks and defaults the options of an export (pure).
 * @throws ExportError `invalid_option` quoting the bad value and saying what is accepted.
 */
export function compileExportOptions(o: Pick<ExportOptions, 'target' | 'eventTypes' | 'batchRows' | 'force'>): CompiledExportOptions {
  const target = parseExportTarget(o.target ?? DEFAULT_EXPORT_TARGET);
  const batchRows = o.batchRows ?? DEFAULT_EXPORT_BATCH_ROWS;
  if (!Number.isSafeInteger(batchRows) || batchRows < 1 || batchRows > MAX_EXPORT_BATCH_ROWS) {
    throw invalid(target.location, `batch size ${JSON.stringify(batchRows)} must be an integer from 1 to ${MAX_EXPORT_BATCH_ROWS}`);
  }
  let eventTypes: string[] | undefined;
  if (o.eventTypes !== undefined) {
    if (o.eventTypes.length === 0) throw invalid(target.location, 'the event type list is empty: name at least one event type (item, artifact, log …) or leave it out for all');
    for (const t of o.eventTypes) {
      if (!EVENT_TYPE_RE.test(t)) throw invalid(target.location, `event type ${JSON.stringify(t)} must be 1-128 characters of A-Z a-z 0-9 . _ -`);
      if (t === 'metrics') throw invalid(target.location, 'event type "metrics" is not an event: the metrics record is not exported (quarry stats metrics reads it)');
    }
    eventTypes = [...new Set(o.eventTypes)].sort();
  }
  return { target, eventTypes, eventTypesKey: eventTypes === undefined ? ALL_EVENT_TYPES : eventTypes.join(','), batchRows, force: o.force ?? false };
}

async function openSink(target: ExportTarget): Promise<WarehouseSink> {
  if (target.kind === 'postgres') {
    const { PostgresSink } = await import('./export-postgres.js');
    return PostgresSink.create(target.url);
  }
  const { DuckDbSink } = await import('./export-duckdb.js');
  return DuckDbSink.create(target.path);
}

const describe = (p: LogicalPartition): string => `${p.dataset}/source=${p.source}/category=${p.category}/day=${p.day}`;
const noRows = (): ExportRowCounts => ({ quarry_events: 0, quarry_items: 0, quarry_artifacts: 0 });
const TABLES = Object.keys(RECORD_TABLES) as RecordTable[];

/** Where a partition's load was when it failed: decides what the message tells a person to fix. */
type Phase = 'open' | 'read' | 'ledger' | 'write';

/** Hides a PostgreSQL target's password in any text (a driver message could echo the connection string). */
function scrubber(target: ExportTarget): (text: string) => string {
  return target.kind === 'postgres' && target.secret !== '' ? (text) => text.split(target.secret).join('***') : (text) => text;
}

/** One export in progress. */
interface Run {
  consumer: Consumer;
  storage: StorageBackend;
  ledger: LedgerReader;
  sink: WarehouseSink;
  opts: CompiledExportOptions;
  clock: () => Date;
  signal: AbortSignal | undefined;
}

class PartitionFailure extends Error {
  constructor(
    readonly phase: Phase,
    readonly runId: string | undefined,
    override readonly cause: unknown,
  ) {
    super(errorMessage(cause));
  }
}

/** Runs one warehouse or ledger step, tagging its failure with the phase it belongs to. */
async function step<T>(phase: Phase, runId: string | undefined, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw err instanceof PartitionFailure || err instanceof ExportError ? err : new PartitionFailure(phase, runId, err);
  }
}

function checkAborted(run: Run, partition?: LogicalPartition): void {
  if (run.signal?.aborted === true) {
    throw new ExportError('aborted', run.sink.location, partition === undefined ? 'stopped on request' : `stopped on request while loading ${describe(partition)}; its previous rows are unchanged`, partition === undefined ? {} : { partition });
  }
}

/** Streams the records into the transaction in batches; returns the rows written per table. */
async function copyRecords(run: Run, tx: PartitionTransaction, p: LogicalPartition, runId: string, records: AsyncIterable<StoredRecord>): Promise<ExportRowCounts> {
  const counts = noRows();
  const limit = (t: RecordTable): number => Math.min(run.opts.batchRows, run.sink.maxBatchRows(t));
  const batches = new Map<RecordTable, Row[]>(TABLES.map((t) => [t, []]));
  const flush = async (t: RecordTable): Promise<void> => {
    const rows = batches.get(t)!;
    if (rows.length === 0) return;
    checkAborted(run, p);
    await step('write', runId, () => tx.insert(t, rows));
    counts[t] += rows.length;
    batches.set(t, []);
  };
  const it = records[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<StoredRecord>;
      try {
        next = await it.next();
      } catch (err) {
        throw new PartitionFailure('read', runId, err);
      }
      if (next.done === true) break;
      const rows = recordRows(p, next.value);
      for (const t of TABLES) {
        const row = rows[t];
        if (row === undefined) continue;
        const batch = batches.get(t)!;
        batch.push(row);
        if (batch.length >= limit(t)) await flush(t);
      }
    }
  } finally {
    // Stops the storage streams when a write failed before the records ran out.
    await it.return?.();
  }
  for (const t of TABLES) await flush(t);
  return counts;
}

const isCurrent = (load: LoadState | undefined, runId: string, opts: CompiledExportOptions): boolean =>
  !opts.force && load !== undefined && load.run_id === runId && load.event_types === opts.eventTypesKey;

/** Loads one partition in one transaction, following the ledger if it moves meanwhile; undefined when already current. */
async function loadPartition(run: Run, p: AuthoritativePartition): Promise<PartitionExport | undefined> {
  const key: LogicalPartition = { dataset: p.dataset, source: p.source, category: p.category, day: p.day };
  for (let attempt = 1; ; attempt++) {
    checkAborted(run, key);
    const runId = (await step('open', undefined, () => run.consumer.open(key))).partition.run_id;
    const tx = await step('write', runId, () => run.sink.begin(key));
    try {
      const before = await step('write', runId, () => tx.currentLoad());
      if (isCurrent(before, runId, run.opts)) {
        // Another exporter loaded it while this one waited for the partition's lock.
        await tx.rollback();
        return undefined;
      }
      await step('write', runId, () => tx.deletePartition());
      const records = run.consumer.records(key, run.opts.eventTypes === undefined ? {} : { eventTypes: run.opts.eventTypes });
      const rows = await copyRecords(run, tx, key, runId, records);
      // The ledger only moves forward (§8 promotion), so the same run before and after means the stream was of it.
      const after = await step('ledger', runId, () => run.ledger.getPartition(key));
      if (after?.status !== 'success' || after.current_run_id !== runId) {
        await tx.rollback();
        if (attempt < LEDGER_MOVE_ATTEMPTS) continue;
        throw new ExportError('ledger_moved', run.sink.location, `the authoritative run of ${describe(key)} changed ${attempt} times while it was loading (last ${after?.current_run_id ?? 'none'}); its previous rows are unchanged: rerun quarry export`, { partition: key, runId });
      }
      checkAborted(run, key);
      const load = {
        ...key,
        run_id: runId,
        event_types: run.opts.eventTypesKey,
        ledger_updated_at: after.updated_at,
        loaded_at: run.clock().toISOString(),
        events_rows: rows.quarry_events,
        items_rows: rows.quarry_items,
        artifacts_rows: rows.quarry_artifacts,
      };
      await step('write', runId, () => tx.recordLoad(load));
      await step('write', runId, () => tx.commit());
      return { ...key, run_id: runId, action: before === undefined ? 'loaded' : 'replaced', previous_run_id: before?.run_id ?? null, rows };
    } catch (err) {
      await tx.rollback();
      throw err;
    }
  }
}

/** Turns whatever stopped a partition into an ExportError that says what to fix, without the target's password. */
function failure(run: Run, p: LogicalPartition, err: unknown, completed: ExportSummary): ExportError {
  const scrub = scrubber(run.opts.target);
  const where = describe(p);
  const target = run.sink.location;
  if (err instanceof ExportError) {
    return new ExportError(err.code, target, scrub(err.detail), { cause: err.cause, partition: err.partition ?? p, runId: err.runId, completed });
  }
  const f = err instanceof PartitionFailure ? err : new PartitionFailure('write', err instanceof ExportRecordError ? err.runId : undefined, err);
  const cause = f.cause;
  const ctx = { cause, partition: p, runId: f.runId, completed };
  const run_ = f.runId === undefined ? '' : ` (run ${f.runId})`;
  const unchanged = 'its previous rows are unchanged';
  const rerun = 'rerun quarry export (partitions already loaded are skipped)';
  if (cause instanceof PartitionNotReadableError) {
    return new ExportError('not_readable', target, `partition ${where} is not readable: ${cause.message}; nothing of it was exported`, ctx);
  }
  if (cause instanceof LedgerError || f.phase === 'ledger') {
    return new ExportError('unavailable', target, `reading the ledger at ${run.ledger.location} for ${where} failed: ${scrub(errorMessage(cause))}; ${unchanged}: check the ledger and ${rerun}`, ctx);
  }
  if (cause instanceof ExportRecordError) {
    return new ExportError('load_failed', target, `partition ${where}${run_}: ${cause.message}, although the validator passed the run; ${unchanged}: report it with the run id`, ctx);
  }
  const msg = scrub(errorMessage(cause));
  if (f.phase === 'open') {
    return new ExportError('load_failed', target, `opening the authoritative run of ${where} (ledger ${run.ledger.location}, storage ${run.storage.location}) failed: ${msg}; ${unchanged}: fix the cause and ${rerun}`, ctx);
  }
  if (f.phase === 'read') {
    return new ExportError('load_failed', target, `reading partition ${where}${run_} from ${run.storage.location} failed: ${msg}; ${unchanged}: fix the storage problem and ${rerun}`, ctx);
  }
  return new ExportError('load_failed', target, `writing partition ${where}${run_} failed and was rolled back: ${msg}; ${unchanged}: fix the warehouse problem and ${rerun}`, ctx);
}

/**
 * Exports the authoritative records of every `success` partition matching
 * `filters` into the target warehouse (SPEC §8 `quarry export`): tables
 * `quarry_events`, `quarry_items`, `quarry_artifacts`, and `_quarry_loads`
 * (one row per partition: its run, event types, load time and row counts).
 * Tables are created when missing. Partitions are loaded one at a time in
 * key order, each in its own transaction; already-current ones are skipped.
 *
 * @returns what was loaded and skipped, rows per table, and the duration.
 * @throws ExportError: `invalid_option` (bad target, batch size, event type or
 *   filter — before anything is opened), `unavailable`, `schema`, or, for the
 *   partition in flight (rolled back; `completed` lists what was committed
 *   before), `not_readable`, `load_failed`, `ledger_moved`, `aborted`.
 */
export async function exportPartitions(options: ExportOptions): Promise<ExportSummary> {
  const opts = compileExportOptions(options);
  const clock = options.clock ?? ((): Date => new Date());
  const started = clock().getTime();
  const consumer = openConsumer({ storage: options.storage, ledger: options.ledger });
  let partitions: AuthoritativePartition[];
  try {
    partitions = await consumer.partitions(options.filters ?? {});
  } catch (err) {
    if (err instanceof LedgerError && err.code === 'invalid_argument') throw new ExportError('invalid_option', opts.target.location, err.message, { cause: err });
    throw new ExportError('unavailable', opts.target.location, `reading the ledger at ${options.ledger.location} failed: ${errorMessage(err)}; nothing was exported`, { cause: err });
  }
  const sink = await openSink(opts.target);
  const run: Run = { consumer, storage: options.storage, ledger: options.ledger, sink, opts, clock, signal: options.signal };
  const summary: ExportSummary = { target: sink.location, partitions_matched: partitions.length, partitions_loaded: 0, partitions_skipped: 0, loaded: [], rows: noRows(), duration_ms: 0 };
  const done = (): ExportSummary => ({ ...summary, loaded: [...summary.loaded], rows: { ...summary.rows }, duration_ms: Math.max(0, clock().getTime() - started) });
  try {
    await sink.prepare();
    const loads = await sink.loads();
    for (const p of partitions) {
      if (isCurrent(loads.get(partitionKey(p)), p.run_id, opts)) {
        summary.partitions_skipped++;
        continue;
      }
      let result: PartitionExport | undefined;
      try {
        result = await loadPartition(run, p);
      } catch (err) {
        throw failure(run, p, err, done());
      }
      if (result === undefined) {
        summary.partitions_skipped++;
        continue;
      }
      summary.partitions_loaded++;
      summary.loaded.push(result);
      for (const t of TABLES) summary.rows[t] += result.rows[t];
    }
    return done();
  } catch (err) {
    if (err instanceof ExportError) throw err;
    throw new ExportError('unavailable', sink.location, `preparing the export tables failed: ${scrubber(opts.target)(errorMessage(err))}; nothing was exported: check the warehouse`, { cause: err, completed: done() });
  } finally {
    await sink.close();
  }
}
