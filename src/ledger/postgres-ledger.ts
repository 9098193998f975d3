/**
 * The scale-out ledger (SPEC §1.5, §8): PostgreSQL by URL, shared by
 * validators on many machines. `pg` is imported lazily (STYLE: heavy optional
 * clients load only in the backend that needs them).
 *
 * Concurrency: a write transaction (READ COMMITTED) first makes sure each
 * touched partition row exists (`INSERT … ON CONFLICT DO NOTHING`), then locks
 * them all with `SELECT … FOR UPDATE` in key order (so two batches never
 * deadlock), and only then reads, decides and writes. Two validators of one
 * partition therefore run one after the other; the unique `run_id` makes a
 * run's history row land once. Serialization failures and deadlocks, should
 * any occur, are retried with the whole transaction.
 */
import type { Pool, PoolClient } from 'pg';
import { reachKillPoint } from '../runtime/kill-point.js';
import type { LogicalPartition } from '../storage/layout.js';
import type { RunOutcome } from '../storage/manifest.js';
import { bindingConflict, runIdTaken, type RunBindingInput } from './binding.js';
import type { Ledger, RecordedRun, RecordedTree, RunBinding, TreeRecordInput } from './ledger.js';
import { jobRefusedByPostgres } from './postgres-json.js';
import { checkReaderSchema, MIGRATIONS, MIGRATIONS_TABLE, SCHEMA_VERSION } from './migrations.js';
import { redactUrl } from '../protocol/redact.js';
import { OUTBOX_COLUMNS, outboxRow, runAuthorityReason, type DeliveryLease, type DeliveryResult, type NotificationClaim, type NotificationDraft, type NotificationFilters, type NotificationRow, type NotificationSubject } from './outbox.js';
import { decodeOutboxRow, outboxListQuery, type OutboxRowSql } from './sql.js';
import { checkTreeRecord, nextPartitionState, nextTreePartitionState, runRole, treePartitionOutcomeNow, type AuthorityKey } from './promotion.js';
import { HISTORY_COLUMNS, latestSkips, PARTITION_COLUMNS, PARTITION_VALUE_COLUMNS, pendingSkipsQuery, TREE_COLUMNS, whereSql, type PendingSkipRowSql } from './sql.js';
import {
  checkLogicalPartition,
  compilePartitionFilters,
  compileRunFilters,
  LedgerError,
  type PartitionFilters,
  type PendingSkip,
  type PartitionState,
  type PartitionStatus,
  type RunFilters,
  type RunHistoryInput,
  type RunHistoryRow,
  type PartitionAuthority,
  type RunId,
  type TreeItemFailure,
  type TreeValidationRow,
  type ValidationReason,
  type ValidationStatus,
} from './types.js';

/** Options of {@link PostgresLedger.create}. */
export interface PostgresLedgerOptions {
  /** Connections in the pool. Default 4. */
  poolSize?: number;
  /** Attempts at a write transaction that hits a serialization failure or deadlock. Default 10. */
  conflictRetries?: number;
}

type Sql = Pick<PoolClient, 'query'>;

interface PartitionRowSql {
  dataset: string; source: string; category: string; day: string; status: string; current_run_id: string | null;
  attempts: number; last_run_id: string; last_error: string | null; updated_at: Date;
  authority: string; tree_manifest_sha256: string | null;
}

interface TreeRowSql {
  tree_id: string; dataset: string; job_id: string | null; manifest_sha256: string; started_at: Date; finalized_at: Date;
  valid: boolean; failures: number; allowed: number; items: number; reason: string | null; failed_items: string; validated_at: Date;
}

interface HistoryRowSql {
  history_id: string; run_id: string; dataset: string; source: string; category: string; day: string;
  job_id: string | null; attempt: number | null; parent_run_id: string | null; root_run_id: string; depth: number; fanout: boolean | null;
  job: unknown; script_path: string | null; script_sha256: string | null; manifest_sha256: string | null;
  outcome: string | null; message: string | null; skipped: boolean | null; started_at: Date | null;
  finalized_at: Date | null; validation_status: string; validation_reasons: ValidationReason[]; validated_at: Date;
}

/** Advisory lock key taken while migrating, so concurrent first opens do not race on CREATE TABLE. */
const MIGRATION_LOCK_KEY = 0x51_7a_11_ed;
const RETRYABLE = new Set(['40001', '40P01']);
const PARTITION_KEY_WHERE = 'dataset = $1 AND source = $2 AND category = $3 AND day = $4';

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

function toPartition(r: PartitionRowSql): PartitionState {
  return {
    dataset: r.dataset, source: r.source, category: r.category, day: r.day,
    status: r.status as PartitionStatus,
    current_run_id: r.current_run_id as RunId | null,
    attempts: r.attempts,
    last_run_id: r.last_run_id as RunId,
    last_error: r.last_error,
    updated_at: r.updated_at.toISOString(),
    authority: r.authority as PartitionAuthority,
    tree_manifest_sha256: r.tree_manifest_sha256,
  };
}

function toTree(r: TreeRowSql): TreeValidationRow {
  return {
    tree_id: r.tree_id as RunId, dataset: r.dataset, job_id: r.job_id, manifest_sha256: r.manifest_sha256,
    started_at: r.started_at.toISOString(), finalized_at: r.finalized_at.toISOString(), valid: r.valid, failures: r.failures,
    allowed: r.allowed, items: r.items, reason: r.reason, failed_items: JSON.parse(r.failed_items) as TreeItemFailure[], validated_at: r.validated_at.toISOString(),
  };
}

function treeParams(t: TreeValidationRow): unknown[] {
  return TREE_COLUMNS.map((c) => (c === 'failed_items' ? JSON.stringify(t.failed_items) : t[c]));
}

function toHistory(r: HistoryRowSql): RunHistoryRow {
  return {
    history_id: Number(r.history_id), run_id: r.run_id as RunId,
    dataset: r.dataset, source: r.source, category: r.category, day: r.day,
    job_id: r.job_id, attempt: r.attempt, parent_run_id: r.parent_run_id as RunId | null, root_run_id: r.root_run_id as RunId,
    depth: r.depth, fanout: r.fanout === true, job: r.job, script_path: r.script_path, script_sha256: r.script_sha256,
    manifest_sha256: r.manifest_sha256, outcome: r.outcome as RunOutcome | null, message: r.message,
    skipped: r.skipped, started_at: iso(r.started_at), finalized_at: iso(r.finalized_at),
    validation_status: r.validation_status as ValidationStatus,
    validation_reasons: r.validation_reasons,
    validated_at: r.validated_at.toISOString(),
  };
}

function historyParams(h: RunHistoryInput): unknown[] {
  const refused = jobRefusedByPostgres(h.job);
  if (refused) throw new LedgerError('invalid_argument', `run ${h.run_id}: ${refused}`);
  // JSON columns go as text: pg would turn a JS array into a PostgreSQL array.
  return HISTORY_COLUMNS.map((c) => (c === 'job' ? (h.job === undefined ? null : JSON.stringify(h.job)) : c === 'validation_reasons' ? JSON.stringify(h.validation_reasons) : c === 'fanout' ? h.fanout === true : h[c]));
}

export { redactUrl } from '../protocol/redact.js';

/** PostgreSQL implementation of the {@link Ledger} port. Create with {@link PostgresLedger.create}. */
export class PostgresLedger implements Ledger {
  readonly kind = 'postgres' as const;
  readonly location: string;
  readonly #pool: Pool;
  readonly #conflictRetries: number;

  private constructor(pool: Pool, location: string, conflictRetries: number) {
    this.#pool = pool;
    this.location = location;
    this.#conflictRetries = conflictRetries;
  }

  /**
   * Connects to `url` and applies pending migrations (under an advisory lock).
   * @throws LedgerError `unavailable` when the server cannot be reached, `schema` when a newer Quarry migrated it.
   */
  static async create(url: string, options: PostgresLedgerOptions = {}): Promise<PostgresLedger> {
    const { default: pg } = await import('pg');
    const location = redactUrl(url);
    const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 4 });
    // An idle client's network error must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    const ledger = new PostgresLedger(pool, location, options.conflictRetries ?? 10);
    try {
      await ledger.#transaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
        await c.query(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)`);
        const { rows } = await c.query<{ version: number }>(`SELECT version FROM ${MIGRATIONS_TABLE}`);
        const applied = new Set(rows.map((r) => r.version));
        const newest = Math.max(0, ...applied);
        if (newest > SCHEMA_VERSION) {
          throw new LedgerError('schema', `ledger schema version ${newest} is newer than this Quarry's (${SCHEMA_VERSION}): upgrade Quarry`);
        }
        for (const m of MIGRATIONS) {
          if (applied.has(m.version)) continue;
          for (const s of m.statements.postgres) await c.query(s);
          await c.query(`INSERT INTO ${MIGRATIONS_TABLE} (version, name, applied_at) VALUES ($1, $2, now())`, [m.version, m.name]);
        }
      });
    } catch (err) {
      await pool.end().catch(() => undefined);
      if (err instanceof LedgerError) throw err;
      throw new LedgerError('unavailable', `cannot open PostgreSQL ledger ${location}: ${(err as Error).message}`, { cause: err });
    }
    return ledger;
  }

  /**
   * Connects to `url` for reading only (SPEC §8: readers never write): no
   * migration; the schema must be exactly this Quarry's.
   * @throws LedgerError `unavailable` when the server cannot be reached, `schema` when the schema is older or newer.
   */
  static async openReader(url: string, options: PostgresLedgerOptions = {}): Promise<PostgresLedger> {
    const { default: pg } = await import('pg');
    const location = redactUrl(url);
    const pool = new pg.Pool({ connectionString: url, max: options.poolSize ?? 4 });
    pool.on('error', () => undefined);
    try {
      const { rows } = await pool.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [MIGRATIONS_TABLE]);
      let newest = 0;
      if (rows[0]?.t) newest = (await pool.query<{ v: number | null }>(`SELECT MAX(version) AS v FROM ${MIGRATIONS_TABLE}`)).rows[0]?.v ?? 0;
      checkReaderSchema(newest, location);
    } catch (err) {
      await pool.end().catch(() => undefined);
      if (err instanceof LedgerError) throw err;
      throw new LedgerError('unavailable', `cannot open PostgreSQL ledger ${location}: ${(err as Error).message}`, { cause: err });
    }
    return new PostgresLedger(pool, location, options.conflictRetries ?? 10);
  }

  /** Runs `fn` in a transaction, retrying the whole of it on serialization failure or deadlock. */
  async #transaction<T>(fn: (c: Sql) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.#pool.connect();
      // A connection cut mid-transaction (server restart, pg_terminate_backend) is also emitted as an
      // 'error' event on the checked-out client; unheard, it would kill the process. The query rejects too.
      const onError = (): void => undefined;
      client.on('error', onError);
      let broken = false;
      try {
        await client.query('BEGIN');
        const out = await fn(client);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        broken = typeof code !== 'string' || code.startsWith('57P') || code.startsWith('08');
        if (!broken) await client.query('ROLLBACK').catch(() => undefined);
        if (typeof code !== 'string' || !RETRYABLE.has(code) || attempt >= this.#conflictRetries) throw err;
      } finally {
        client.off('error', onError);
        // A broken connection is destroyed, not returned to the pool.
        client.release(broken);
      }
      await new Promise((r) => setTimeout(r, 10 + Math.floor(Math.random() * 50) * attempt));
    }
  }

  /** {@inheritDoc LedgerReader.getPartition} */
  async getPartition(partition: LogicalPartition): Promise<PartitionState | undefined> {
    checkLogicalPartition(partition);
    return partitionNow(this.#pool, partition);
  }

  /** {@inheritDoc LedgerReader.listPartitions} */
  async listPartitions(filters: PartitionFilters = {}): Promise<PartitionState[]> {
    const f = compilePartitionFilters(filters);
    const w = whereSql(f, (i) => `$${i}`);
    const limit = f.limit === undefined ? '' : ` LIMIT ${f.limit}`;
    const { rows } = await this.#pool.query<PartitionRowSql>(
      `SELECT * FROM partition_state ${w.sql} ORDER BY dataset, source, category, day${limit}`,
      w.params,
    );
    return rows.map(toPartition);
  }

  /** {@inheritDoc LedgerReader.getRun} */
  async getRun(runId: string): Promise<RunHistoryRow | undefined> {
    const { rows } = await this.#pool.query<HistoryRowSql>('SELECT * FROM run_history WHERE run_id = $1', [runId]);
    return rows[0] === undefined ? undefined : toHistory(rows[0]);
  }

  /** {@inheritDoc LedgerReader.listRuns} */
  async listRuns(filters: RunFilters = {}): Promise<RunHistoryRow[]> {
    const f = compileRunFilters(filters);
    const w = whereSql(f, (i) => `$${i}`);
    const limit = f.limit === undefined ? '' : ` LIMIT ${f.limit}`;
    const { rows } = await this.#pool.query<HistoryRowSql>(`SELECT * FROM run_history ${w.sql} ORDER BY history_id${limit}`, w.params);
    return rows.map(toHistory);
  }

  /** {@inheritDoc LedgerReader.runsOfPartition} */
  async runsOfPartition(partition: LogicalPartition): Promise<RunHistoryRow[]> {
    checkLogicalPartition(partition);
    const { rows } = await this.#pool.query<HistoryRowSql>(
      `SELECT * FROM run_history WHERE ${PARTITION_KEY_WHERE} ORDER BY history_id`,
      [partition.dataset, partition.source, partition.category, partition.day],
    );
    return rows.map(toHistory);
  }

  /** {@inheritDoc LedgerReader.pendingSkips} */
  async pendingSkips(filters: Omit<PartitionFilters, 'status' | 'limit'> = {}): Promise<PendingSkip[]> {
    const q = pendingSkipsQuery(filters, (i) => `$${i}`, 'skipped IS TRUE');
    const { rows } = await this.#pool.query<PendingSkipRowSql>(q.sql, q.params);
    return latestSkips(rows);
  }

  /** {@inheritDoc LedgerReader.recordedRunIds} */
  async recordedRunIds(runIds: readonly string[]): Promise<Set<RunId>> {
    if (runIds.length === 0) return new Set();
    const { rows } = await this.#pool.query<{ run_id: string }>('SELECT run_id FROM run_history WHERE run_id = ANY($1::text[])', [runIds]);
    return new Set(rows.map((r) => r.run_id as RunId));
  }

  /** {@inheritDoc Ledger.recordRuns} */
  async recordRuns(runs: readonly RunHistoryInput[], now: Date): Promise<RecordedRun[]> {
    for (const r of runs) checkLogicalPartition(r);
    const nowIso = now.toISOString();
    const standalone = runs.filter((r) => runRole(r) === 'standalone');
    return this.#transaction(async (c) => {
      const placeholders = await lockPartitions(c, standalone.map((r) => ({ partition: r, last_run_id: r.run_id })), nowIso);
      const out: RecordedRun[] = [];
      for (const run of runs) out.push(await this.#recordOne(c, run, nowIso, placeholders));
      await dropPlaceholders(c, placeholders);
      reachKillPoint('during_validation');
      return out;
    });
  }

  /** {@inheritDoc Ledger.recordTree} */
  async recordTree(input: TreeRecordInput, now: Date): Promise<RecordedTree> {
    const treeId = checkTreeRecord(input.tree.tree_id, input.members, input.partitions);
    const nowIso = now.toISOString();
    return this.#transaction(async (c) => {
      // Partitions first, in key order, as recordRuns locks them: a concurrent validation of the same tree waits here.
      const placeholders = await lockPartitions(c, input.partitions.map((p) => ({ partition: p.partition, last_run_id: treeId })), nowIso);
      const ins = await c.query(
        `INSERT INTO tree_validation (${TREE_COLUMNS.join(', ')}) VALUES (${TREE_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})
         ON CONFLICT (tree_id) DO NOTHING RETURNING 1`,
        treeParams(input.tree),
      );
      if (ins.rowCount !== 1) {
        await dropPlaceholders(c, placeholders);
        const { rows } = await c.query<TreeRowSql>('SELECT * FROM tree_validation WHERE tree_id = $1', [treeId]);
        const tree = toTree(rows[0]!);
        const partitions = [];
        for (const p of input.partitions) {
          const state = await partitionNow(c, p.partition);
          partitions.push({ partition: p.partition, outcome: treePartitionOutcomeNow(treeId, tree.valid, p, state), state });
        }
        return { tree, recorded: false, members: [], partitions, notification_id: null };
      }
      const members: RecordedRun[] = [];
      for (const m of input.members) members.push(await this.#recordOne(c, m, nowIso, placeholders));
      const candidate = { tree_id: treeId, finalized_at: input.tree.finalized_at, manifest_sha256: input.tree.manifest_sha256, valid: input.tree.valid, reason: input.tree.reason };
      const partitions = [];
      for (const p of input.partitions) {
        const key = partitionKey(p.partition);
        const prev = placeholders.has(key) ? undefined : await partitionNow(c, p.partition);
        const { state, outcome } = nextTreePartitionState(p.partition, prev, await currentKey(c, prev), candidate, p, nowIso);
        if (state !== undefined) {
          placeholders.delete(key);
          await updatePartition(c, state);
        }
        partitions.push({ partition: p.partition, outcome, state });
      }
      await dropPlaceholders(c, placeholders);
      const authoritative = partitions.some((p) => p.outcome === 'promoted');
      const reason = !input.tree.valid ? 'rejected' : authoritative ? 'promoted' : partitions.some((p) => p.outcome === 'superseded') ? 'superseded' : 'skipped';
      const notification_id = input.notify === undefined ? null : await insertNotification(c, input.notify, 'tree', authoritative, reason, nowIso);
      reachKillPoint('during_validation');
      return { tree: input.tree, recorded: true, members, partitions, notification_id };
    });
  }

  /** {@inheritDoc LedgerReader.getTree} */
  async getTree(treeId: string): Promise<TreeValidationRow | undefined> {
    const { rows } = await this.#pool.query<TreeRowSql>('SELECT * FROM tree_validation WHERE tree_id = $1', [treeId]);
    return rows[0] === undefined ? undefined : toTree(rows[0]);
  }

  /** {@inheritDoc LedgerReader.recordedTreeIds} */
  async recordedTreeIds(treeIds: readonly string[]): Promise<Set<RunId>> {
    if (treeIds.length === 0) return new Set();
    const { rows } = await this.#pool.query<{ tree_id: string }>('SELECT tree_id FROM tree_validation WHERE tree_id = ANY($1::text[])', [treeIds]);
    return new Set(rows.map((r) => r.tree_id as RunId));
  }

  /** {@inheritDoc Ledger.bindRun} */
  async bindRun(input: RunBindingInput, now: Date): Promise<RunBinding> {
    return this.#transaction(async (c) => {
      // Insert-then-read: under READ COMMITTED a racing first use waits for the other's commit, then reads its row.
      const ins = await c.query('INSERT INTO dataset_binding (dataset, storage, bound_at) VALUES ($1, $2, $3) ON CONFLICT (dataset) DO NOTHING RETURNING 1', [input.dataset, input.storage, now]);
      if (ins.rowCount !== 1) {
        const { rows } = await c.query<{ storage: string }>('SELECT storage FROM dataset_binding WHERE dataset = $1', [input.dataset]);
        if (rows[0] !== undefined && rows[0].storage !== input.storage) throw bindingConflict(input.dataset, rows[0].storage, input.storage);
      }
      const rec = await c.query<LogicalPartition>('SELECT dataset, source, category, day FROM run_history WHERE run_id = $1', [input.run_id]);
      const r = rec.rows[0];
      if (r !== undefined) throw runIdTaken(input.run_id, `a recorded run of ${r.dataset}/${r.source}/${r.category}/${r.day}`);
      await c.query('INSERT INTO run_reservation (run_id, dataset, reserved_at) VALUES ($1, $2, $3) ON CONFLICT (run_id) DO NOTHING', [input.run_id, input.dataset, now]);
      const { rows } = await c.query<{ dataset: string }>('SELECT dataset FROM run_reservation WHERE run_id = $1', [input.run_id]);
      if (rows[0] !== undefined && rows[0].dataset !== input.dataset) throw runIdTaken(input.run_id, `a run of dataset ${JSON.stringify(rows[0].dataset)}`);
      return { bound_now: ins.rowCount === 1 };
    });
  }

  async #recordOne(c: Sql, input: RunHistoryInput, nowIso: string, placeholders: Set<string>): Promise<RecordedRun> {
    const { notify, ...run } = input;
    const role = runRole(run);
    const key = partitionKey(run);
    const inserted = await c.query<HistoryRowSql>(
      `INSERT INTO run_history (${HISTORY_COLUMNS.join(', ')}) VALUES (${HISTORY_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})
       ON CONFLICT (run_id) DO NOTHING RETURNING *`,
      historyParams(run),
    );
    const fresh = inserted.rows[0];
    if (fresh === undefined) {
      const { rows } = await c.query<HistoryRowSql>('SELECT * FROM run_history WHERE run_id = $1', [run.run_id]);
      const row = toHistory(rows[0]!);
      if (row.dataset !== run.dataset || row.source !== run.source || row.category !== run.category || row.day !== run.day) {
        throw new LedgerError('run_id_conflict', `run ${run.run_id} is already recorded for ${row.dataset}/${row.source}/${row.category}/${row.day}, not ${run.dataset}/${run.source}/${run.category}/${run.day}`);
      }
      return { run: row, recorded: false, role, promoted: false, partition: await this.#visiblePartition(c, run, placeholders), notification_id: null };
    }
    const stored = toHistory(fresh);
    if (role === 'tree_member') return { run: stored, recorded: true, role, promoted: false, partition: await partitionNow(c, run), notification_id: null };

    const prev = placeholders.has(key) ? undefined : await partitionNow(c, run);
    const { state, promoted } = nextPartitionState(prev, await currentKey(c, prev), run, nowIso);
    // No row to keep (a skip on a pending partition): the placeholder, if any, is deleted at the end.
    if (state !== undefined) {
      placeholders.delete(key);
      await updatePartition(c, state);
    }
    const notification_id = notify === undefined
      ? null
      : await insertNotification(c, notify, 'run', promoted, runAuthorityReason(run.validation_status === 'valid', run.skipped === true, promoted), nowIso);
    return { run: stored, recorded: true, role, promoted, partition: state, notification_id };
  }

  /** The partition row as others will see it: a placeholder of this transaction is no row. */
  async #visiblePartition(c: Sql, p: LogicalPartition, placeholders: Set<string>): Promise<PartitionState | undefined> {
    return placeholders.has(partitionKey(p)) ? undefined : partitionNow(c, p);
  }

  /** {@inheritDoc LedgerReader.listNotifications} */
  async listNotifications(filters: NotificationFilters = {}): Promise<NotificationRow[]> {
    const q = outboxListQuery(filters, (i) => `$${i}`);
    const { rows } = await this.#pool.query<OutboxRowSql>(q.sql, q.params);
    return rows.map(decodeOutboxRow);
  }

  /** {@inheritDoc Ledger.claimNotifications} */
  async claimNotifications(claim: NotificationClaim, lease: DeliveryLease, now: Date): Promise<NotificationRow[]> {
    if (claim.ids !== undefined && claim.ids.length === 0) return [];
    return this.#transaction(async (c) => {
      const params: unknown[] = [now, lease.owner, lease.until];
      const conds = ["status = 'pending'", '(lease_until IS NULL OR lease_until < $1)'];
      if (claim.dataset !== undefined) {
        params.push(claim.dataset);
        conds.push(`dataset = $${params.length}`);
      }
      if (claim.ids !== undefined) {
        params.push(claim.ids);
        conds.push(`notification_id = ANY($${params.length}::text[])`);
      }
      // SKIP LOCKED: a concurrent drain takes other rows instead of waiting for these.
      const { rows } = await c.query<OutboxRowSql>(
        `UPDATE notification_outbox SET lease_owner = $2, lease_until = $3 WHERE notification_id IN (
           SELECT notification_id FROM notification_outbox WHERE ${conds.join(' AND ')}
           ORDER BY created_at, notification_id LIMIT ${claim.limit ?? 100} FOR UPDATE SKIP LOCKED)
         RETURNING *`,
        params,
      );
      return rows.map(decodeOutboxRow).sort((a, b) => (a.created_at === b.created_at ? (a.notification_id < b.notification_id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1));
    });
  }

  /** {@inheritDoc Ledger.recordDelivery} */
  async recordDelivery(notificationId: string, owner: string, result: DeliveryResult, now: Date): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE notification_outbox SET status = $1, attempts = attempts + $2, last_attempt_at = COALESCE($3, last_attempt_at), last_error = COALESCE($4, last_error), delivered_at = $5, lease_owner = NULL, lease_until = NULL
       WHERE notification_id = $6 AND lease_owner = $7 AND status = 'pending'`,
      [result.delivered ? 'delivered' : 'pending', result.attempts, result.attempts > 0 ? now : null, result.error, result.delivered ? now : null, notificationId, owner],
    );
    return r.rowCount === 1;
  }

  /** {@inheritDoc Ledger.supersedeNotifications} */
  async supersedeNotifications(ids: readonly string[], by: string, now: Date): Promise<void> {
    void now;
    if (ids.length === 0) return;
    await this.#pool.query("UPDATE notification_outbox SET status = 'superseded', superseded_by = $1 WHERE notification_id = ANY($2::text[]) AND status = 'pending'", [by, ids]);
  }

  /** {@inheritDoc LedgerReader.close} */
  async close(): Promise<void> {
    await this.#pool.end();
  }
}

/**
 * Makes sure each partition row exists and locks it, one key at a time in key
 * order (every transaction takes its locks in the same order, so two never
 * deadlock). Returns the keys of rows created only to be locked: for the
 * rules they do not exist yet.
 */
async function lockPartitions(c: Sql, parts: ReadonlyArray<{ partition: LogicalPartition; last_run_id: string }>, nowIso: string): Promise<Set<string>> {
  const keys = [...new Map(parts.map((p) => [partitionKey(p.partition), p] as const)).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const placeholders = new Set<string>();
  for (const [key, { partition: p, last_run_id }] of keys) {
    const ins = await c.query(
      `INSERT INTO partition_state (${PARTITION_COLUMNS.join(', ')}) VALUES ($1, $2, $3, $4, 'failed', NULL, 1, $5, NULL, $6, 'run', NULL)
       ON CONFLICT (dataset, source, category, day) DO NOTHING RETURNING 1`,
      [p.dataset, p.source, p.category, p.day, last_run_id, nowIso],
    );
    if (ins.rowCount === 1) placeholders.add(key);
    else await c.query(`SELECT 1 FROM partition_state WHERE ${PARTITION_KEY_WHERE} FOR UPDATE`, [p.dataset, p.source, p.category, p.day]);
  }
  return placeholders;
}

/** Deletes rows created only for locking whose runs keep no row (skips, interruptions on a pending partition). */
async function dropPlaceholders(c: Sql, placeholders: ReadonlySet<string>): Promise<void> {
  for (const key of placeholders) {
    const [dataset, source, category, day] = JSON.parse(key) as [string, string, string, string];
    await c.query(`DELETE FROM partition_state WHERE ${PARTITION_KEY_WHERE}`, [dataset, source, category, day]);
  }
}

async function updatePartition(c: Sql, state: PartitionState): Promise<void> {
  await c.query(
    `UPDATE partition_state SET ${PARTITION_VALUE_COLUMNS.map((col, i) => `${col} = $${i + 5}`).join(', ')} WHERE ${PARTITION_KEY_WHERE}`,
    PARTITION_COLUMNS.map((col) => state[col]),
  );
}

/** The authority key of a row's current run or tree (SPEC §8 "Who wins"); undefined when none or unknown. */
async function currentKey(c: Sql, prev: PartitionState | undefined): Promise<AuthorityKey | undefined> {
  if (prev?.current_run_id == null) return undefined;
  const sql = prev.authority === 'tree'
    ? 'SELECT tree_id AS run_id, finalized_at FROM tree_validation WHERE tree_id = $1'
    : 'SELECT run_id, finalized_at FROM run_history WHERE run_id = $1';
  const { rows } = await c.query<{ run_id: string; finalized_at: Date | null }>(sql, [prev.current_run_id]);
  const cur = rows[0];
  return cur?.finalized_at != null ? { run_id: cur.run_id, finalized_at: cur.finalized_at.toISOString() } : undefined;
}

/** Inserts an outbox row in the current transaction (SPEC §11); returns its id. */
async function insertNotification(c: Sql, draft: NotificationDraft, subject: NotificationSubject, authoritative: boolean, reason: string, nowIso: string): Promise<string> {
  const { values } = outboxRow(draft, subject, authoritative, reason, nowIso);
  await c.query(`INSERT INTO notification_outbox (${OUTBOX_COLUMNS.join(', ')}) VALUES (${OUTBOX_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`, OUTBOX_COLUMNS.map((col) => values[col]));
  return values.notification_id!;
}

function partitionKey(p: LogicalPartition): string {
  return JSON.stringify([p.dataset, p.source, p.category, p.day]);
}

async function partitionNow(c: Sql | Pool, p: LogicalPartition): Promise<PartitionState | undefined> {
  const { rows } = await c.query<PartitionRowSql>(`SELECT * FROM partition_state WHERE ${PARTITION_KEY_WHERE}`, [p.dataset, p.source, p.category, p.day]);
  return rows[0] === undefined ? undefined : toPartition(rows[0]);
}
