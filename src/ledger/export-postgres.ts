/**
 * The PostgreSQL warehouse sink of `quarry export` (SPEC §8: "PostgreSQL by
 * URL"). `pg` is imported lazily (STYLE: heavy optional clients load only in
 * the backend that needs them). Rows go in as multi-row INSERTs with bind
 * parameters, as many rows per statement as PostgreSQL's 65 535-parameter
 * limit allows.
 *
 * Concurrency: each partition's transaction first takes a transaction-scoped
 * advisory lock on the partition, so exporters on many machines load one
 * partition one after the other, and the second sees the first's load row and
 * skips. Table creation runs under its own advisory lock.
 */
import { redactUrl } from '../protocol/redact.js';
import type { Client } from 'pg';
import type { LogicalPartition } from '../storage/layout.js';
import { EXPORT_TABLES, LOADS_TABLE, loadCells, partitionKey, RECORD_TABLES, schemaMismatch, type ColumnType, type LoadRow, type LoadState, type RecordTable, type Row, type TableDef } from './export-schema.js';
import { errorMessage, ExportError } from './export-result.js';
import type { PartitionTransaction, WarehouseSink } from './export-sink.js';

const PG_TYPES: Readonly<Record<ColumnType, string>> = {
  text: 'text',
  date: 'date',
  timestamptz: 'timestamptz',
  bigint: 'bigint',
  integer: 'integer',
  json: 'jsonb',
};

/** PostgreSQL's limit on bind parameters per statement. */
export const PG_MAX_PARAMS = 65_535;
/** First key of every advisory lock the exporter takes ("QRRY"), so they never collide with the ledger's. */
const LOCK_NAMESPACE = 0x51525259;

const quote = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** `CREATE TABLE IF NOT EXISTS` for one export table, in PostgreSQL's types. */
export function postgresCreateTable(t: TableDef): string {
  const cols = t.columns.map((c) => `${quote(c.name)} ${PG_TYPES[c.type]}${c.nullable ? '' : ' NOT NULL'}`);
  return `CREATE TABLE IF NOT EXISTS ${quote(t.name)} (${cols.join(', ')}, PRIMARY KEY (${t.primaryKey.map(quote).join(', ')}))`;
}

/** A multi-row INSERT of `rows` rows into `t`, with numbered parameters. */
export function postgresInsert(t: TableDef, rows: number): string {
  const n = t.columns.length;
  const tuples: string[] = [];
  for (let r = 0; r < rows; r++) tuples.push(`(${t.columns.map((_, i) => `$${r * n + i + 1}`).join(', ')})`);
  return `INSERT INTO ${quote(t.name)} (${t.columns.map((c) => quote(c.name)).join(', ')}) VALUES ${tuples.join(', ')}`;
}

const PARTITION_WHERE = 'dataset = $1 AND source = $2 AND category = $3 AND day = $4::date';
const partitionParams = (p: LogicalPartition): string[] => [p.dataset, p.source, p.category, p.day];

/** A PostgreSQL database as an export warehouse. Create with {@link PostgresSink.create}. */
export class PostgresSink implements WarehouseSink {
  readonly kind = 'postgres' as const;
  readonly location: string;
  readonly #client: Client;
  #closed = false;

  private constructor(client: Client, location: string) {
    this.#client = client;
    this.location = location;
  }

  /**
   * Connects to `url` (one connection: the exporter loads one partition at a time).
   * @throws ExportError `unavailable` naming the URL without its password.
   */
  static async create(url: string, options: { connectTimeoutMs?: number } = {}): Promise<PostgresSink> {
    const location = redactUrl(url);
    const password = (() => {
      try {
        return decodeURIComponent(new URL(url).password);
      } catch {
        return '';
      }
    })();
    // A driver message could echo the connection string; never let the password through.
    const scrub = (text: string): string => (password === '' ? text : text.split(password).join('***'));
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000 });
    // A dropped connection must not crash the process; the next query reports it.
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => undefined);
      throw new ExportError('unavailable', location, `cannot connect (${scrub(errorMessage(err))}): check the URL, that the server is running, and that the user may log in to the database`);
    }
    return new PostgresSink(client, location);
  }

  maxBatchRows(table: RecordTable): number {
    return Math.floor(PG_MAX_PARAMS / RECORD_TABLES[table].columns.length);
  }

  async prepare(): Promise<void> {
    const c = this.#client;
    await c.query('BEGIN');
    try {
      // Two exporters creating the same tables at once would collide in the catalog; take turns.
      await c.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_NAMESPACE]);
      const { rows } = await c.query<{ table_name: string; column_name: string }>(
        'SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ANY($1)',
        [EXPORT_TABLES.map((t) => t.name)],
      );
      const existing = new Map<string, Set<string>>();
      for (const r of rows) existing.set(r.table_name, (existing.get(r.table_name) ?? new Set<string>()).add(r.column_name));
      const mismatch = schemaMismatch(existing);
      if (mismatch !== undefined) throw new ExportError('schema', this.location, `${mismatch}; export into another database or schema, or drop or rename the table`);
      for (const t of EXPORT_TABLES) if (!existing.has(t.name)) await c.query(postgresCreateTable(t));
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  async loads(): Promise<Map<string, LoadState>> {
    const { rows } = await this.#client.query<{ dataset: string; source: string; category: string; day: string; run_id: string; event_types: string }>(
      `SELECT dataset, source, category, to_char(day, 'YYYY-MM-DD') AS day, run_id, event_types FROM ${quote(LOADS_TABLE.name)}`,
    );
    return new Map(rows.map((r) => [partitionKey(r), { run_id: r.run_id, event_types: r.event_types }]));
  }

  async begin(partition: LogicalPartition): Promise<PartitionTransaction> {
    const c = this.#client;
    await c.query('BEGIN');
    try {
      await c.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, partitionKey(partition)]);
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    return new PostgresPartitionTransaction(c, partition);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client.end().catch(() => undefined);
  }
}

class PostgresPartitionTransaction implements PartitionTransaction {
  readonly #client: Client;
  readonly #partition: LogicalPartition;
  #open = true;

  constructor(client: Client, partition: LogicalPartition) {
    this.#client = client;
    this.#partition = partition;
  }

  async currentLoad(): Promise<LoadState | undefined> {
    const { rows } = await this.#client.query<LoadState>(`SELECT run_id, event_types FROM ${quote(LOADS_TABLE.name)} WHERE ${PARTITION_WHERE}`, partitionParams(this.#partition));
    return rows[0];
  }

  async deletePartition(): Promise<void> {
    for (const t of EXPORT_TABLES) await this.#client.query(`DELETE FROM ${quote(t.name)} WHERE ${PARTITION_WHERE}`, partitionParams(this.#partition));
  }

  async insert(table: RecordTable, rows: readonly Row[]): Promise<void> {
    if (rows.length === 0) return;
    await this.#client.query(postgresInsert(RECORD_TABLES[table], rows.length), rows.flat());
  }

  async recordLoad(row: LoadRow): Promise<void> {
    await this.#client.query(postgresInsert(LOADS_TABLE, 1), [...loadCells(row)]);
  }

  async commit(): Promise<void> {
    await this.#client.query('COMMIT');
    this.#open = false;
  }

  async rollback(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    await this.#client.query('ROLLBACK').catch(() => undefined);
  }
}
