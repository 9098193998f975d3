/**
 * The embedded ledger (SPEC §1.5, §8): one SQLite file, WAL mode, written by
 * any number of validator processes on one machine.
 *
 * Concurrency: every write is one `BEGIN IMMEDIATE` transaction, which takes
 * the database's single write lock before reading anything, so the
 * read-decide-write of a promotion can never interleave with another's. A
 * writer that finds the lock taken waits (busy timeout), then retries.
 */
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { reachKillPoint } from '../runtime/kill-point.js';
import type { LogicalPartition } from '../storage/layout.js';
import type { RunOutcome } from '../storage/manifest.js';
import { bindingConflict, runIdTaken, type RunBindingInput } from './binding.js';
import type { Ledger, RecordedRun, RecordedTree, RunBinding, TreeRecordInput } from './ledger.js';
import { checkReaderSchema, MIGRATIONS, MIGRATIONS_TABLE, SCHEMA_VERSION } from './migrations.js';
import { OUTBOX_COLUMNS, outboxRow, runAuthorityReason, type DeliveryLease, type DeliveryResult, type NotificationClaim, type NotificationDraft, type NotificationFilters, type NotificationRow, type NotificationSubject } from './outbox.js';
import { decodeOutboxRow, outboxListQuery, type OutboxRowSql } from './sql.js';
import { checkTreeRecord, nextPartitionState, nextTreePartitionState, runRole, treePartitionOutcomeNow, type AuthorityKey } from './promotion.js';
import { HISTORY_COLUMNS, latestSkips, PARTITION_COLUMNS, PARTITION_VALUE_COLUMNS, parseJsonColumn, pendingSkipsQuery, TREE_COLUMNS, whereSql, type PendingSkipRowSql } from './sql.js';
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

/** Options of {@link SqliteLedger.create}. */
export interface SqliteLedgerOptions {
  /** How long one attempt waits for the write lock (ms). Default 10 000. */
  busyTimeoutMs?: number;
  /** Attempts at a write transaction that keeps finding the database busy. Default 20. */
  busyRetries?: number;
}

interface PartitionRowSql {
  dataset: string; source: string; category: string; day: string; status: string; current_run_id: string | null;
  attempts: number; last_run_id: string; last_error: string | null; updated_at: string;
  authority: string; tree_manifest_sha256: string | null;
}

interface TreeRowSql {
  tree_id: string; dataset: string; job_id: string | null; manifest_sha256: string; started_at: string; finalized_at: string;
  valid: number; failures: number; allowed: number; items: number; reason: string | null; failed_items: string; validated_at: string;
}

interface HistoryRowSql {
  history_id: number; run_id: string; dataset: string; source: string; category: string; day: string;
  job_id: string | null; attempt: number | null; parent_run_id: string | null; root_run_id: string; depth: number; fanout: number | null;
  job: string | null; script_path: string | null; script_sha256: string | null; manifest_sha256: string | null;
  outcome: string | null; message: string | null; skipped: number | null; started_at: string | null;
  finalized_at: string | null; validation_status: string; validation_reasons: string; validated_at: string;
}

const PARTITION_KEY_WHERE = 'dataset = ? AND source = ? AND category = ? AND day = ?';

function toPartition(r: PartitionRowSql): PartitionState {
  return {
    dataset: r.dataset, source: r.source, category: r.category, day: r.day,
    status: r.status as PartitionStatus,
    current_run_id: r.current_run_id as RunId | null,
    attempts: r.attempts,
    last_run_id: r.last_run_id as RunId,
    last_error: r.last_error,
    updated_at: r.updated_at,
    authority: r.authority as PartitionAuthority,
    tree_manifest_sha256: r.tree_manifest_sha256,
  };
}

function toTree(r: TreeRowSql): TreeValidationRow {
  return {
    tree_id: r.tree_id as RunId, dataset: r.dataset, job_id: r.job_id, manifest_sha256: r.manifest_sha256,
    started_at: r.started_at, finalized_at: r.finalized_at, valid: r.valid !== 0, failures: r.failures, allowed: r.allowed,
    items: r.items, reason: r.reason, failed_items: parseJsonColumn(r.failed_items) as TreeItemFailure[], validated_at: r.validated_at,
  };
}

function treeParams(t: TreeValidationRow): Array<string | number | null> {
  return TREE_COLUMNS.map((c) => (c === 'valid' ? (t.valid ? 1 : 0) : c === 'failed_items' ? JSON.stringify(t.failed_items) : t[c]));
}

function toHistory(r: HistoryRowSql): RunHistoryRow {
  return {
    history_id: r.history_id, run_id: r.run_id as RunId,
    dataset: r.dataset, source: r.source, category: r.category, day: r.day,
    job_id: r.job_id, attempt: r.attempt, parent_run_id: r.parent_run_id as RunId | null, root_run_id: r.root_run_id as RunId,
    depth: r.depth, fanout: r.fanout === 1, job: parseJsonColumn(r.job), script_path: r.script_path, script_sha256: r.script_sha256,
    manifest_sha256: r.manifest_sha256, outcome: r.outcome as RunOutcome | null, message: r.message,
    skipped: r.skipped === null ? null : r.skipped !== 0, started_at: r.started_at, finalized_at: r.finalized_at,
    validation_status: r.validation_status as ValidationStatus,
    validation_reasons: parseJsonColumn(r.validation_reasons) as ValidationReason[],
    validated_at: r.validated_at,
  };
}

function historyParams(h: RunHistoryInput): Array<string | number | null> {
  return HISTORY_COLUMNS.map((c) => {
    const v = h[c];
    if (c === 'job') return v === undefined ? null : JSON.stringify(v);
    if (c === 'validation_reasons') return JSON.stringify(v);
    if (c === 'skipped') return v === null ? null : v ? 1 : 0;
    if (c === 'fanout') return v === true ? 1 : 0;
    return v as string | number | null;
  });
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED';
}

function writable(folder: string): boolean {
  try {
    accessSync(folder, constants.W_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function ownerOf(file: string): number | undefined {
  try {
    return statSync(file).uid;
  } catch {
    return undefined;
  }
}

/** SQLite implementation of the {@link Ledger} port. Create with {@link SqliteLedger.create}. */
export class SqliteLedger implements Ledger {
  readonly kind = 'sqlite' as const;
  readonly location: string;
  readonly #db: Database.Database;
  readonly #busyRetries: number;
  readonly #statements = new Map<string, Database.Statement>();

  private constructor(db: Database.Database, location: string, busyRetries: number) {
    this.#db = db;
    this.location = location;
    this.#busyRetries = busyRetries;
  }

  /**
   * Opens the ledger file at `path` (creating it and its folder), switches it
   * to WAL and applies pending migrations.
   * @throws LedgerError `unavailable` when the file cannot be opened, `schema` when a newer Quarry migrated it.
   */
  static async create(path: string, options: SqliteLedgerOptions = {}): Promise<SqliteLedger> {
    const location = resolve(path);
    const busyTimeoutMs = options.busyTimeoutMs ?? 10_000;
    const ledger = await SqliteLedger.#retryBusy(options.busyRetries ?? 20, () => {
      let db: Database.Database | undefined;
      try {
        mkdirSync(dirname(location), { recursive: true });
        db = new Database(location, { timeout: busyTimeoutMs });
        db.pragma('journal_mode = WAL');
        // FULL: a promotion that returned is on disk; ledger writes are one per run, so the fsync is cheap.
        db.pragma('synchronous = FULL');
        SqliteLedger.#migrate(db);
        return new SqliteLedger(db, location, options.busyRetries ?? 20);
      } catch (err) {
        db?.close();
        if (err instanceof LedgerError || isBusy(err)) throw err;
        throw new LedgerError('unavailable', `cannot open SQLite ledger ${location}: ${(err as Error).message}`, { cause: err });
      }
    });
    return ledger;
  }

  /**
   * Opens an existing ledger file for reading only (SPEC §8: readers never
   * write): no migration, no journal-mode change, `readonly` + `fileMustExist`.
   * SQLite's WAL mode needs the `-shm` file to read; when no writer has it open
   * the reader would have to create it, which it refuses to do in a folder it
   * cannot write (it could not) or as another user than the ledger's owner (the
   * owner could not open what it left behind).
   * @throws LedgerError `unavailable` naming the folder and what to do; `schema` when the ledger's schema is not this Quarry's.
   */
  static async openReader(path: string, options: SqliteLedgerOptions = {}): Promise<SqliteLedger> {
    const location = resolve(path);
    const folder = dirname(location);
    if (!existsSync(`${location}-shm`)) {
      if (!writable(folder)) {
        throw new LedgerError('unavailable', `cannot read the SQLite ledger ${location}: no writer has it open and this user cannot write its folder ${folder}, which SQLite's WAL mode needs for reading; grant this user write access to ${folder}, or use a PostgreSQL ledger (--ledger postgres://...)`);
      }
      const owner = ownerOf(location);
      const uid = process.geteuid?.();
      if (owner !== undefined && uid !== undefined && uid !== 0 && uid !== owner) {
        throw new LedgerError('unavailable', `cannot read the SQLite ledger ${location}: no writer has it open, and reading it as uid ${uid} would leave files in ${folder} that its owner (uid ${owner}) cannot open; read it as its owner, or use a PostgreSQL ledger (--ledger postgres://...)`);
      }
    }
    let db: Database.Database | undefined;
    try {
      db = new Database(location, { readonly: true, fileMustExist: true, timeout: options.busyTimeoutMs ?? 10_000 });
      const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(MIGRATIONS_TABLE) !== undefined;
      const newest = hasTable ? ((db.prepare(`SELECT MAX(version) AS v FROM ${MIGRATIONS_TABLE}`).get() as { v: number | null }).v ?? 0) : 0;
      checkReaderSchema(newest, location);
      return new SqliteLedger(db, location, options.busyRetries ?? 20);
    } catch (err) {
      db?.close();
      if (err instanceof LedgerError) throw err;
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && /^SQLITE_(CANTOPEN|READONLY)/.test(code)) {
        throw new LedgerError('unavailable', `cannot read the SQLite ledger ${location}: ${(err as Error).message} (no writer has it open and this user cannot set up its -shm file in ${folder}); grant this user write access to ${folder}, or use a PostgreSQL ledger (--ledger postgres://...)`, { cause: err });
      }
      throw new LedgerError('unavailable', `cannot read SQLite ledger ${location}: ${(err as Error).message}`, { cause: err });
    }
  }

  static #migrate(db: Database.Database): void {
    // A ledger already at this schema (every run after the first) is only read: no write lock is taken,
    // so opening it never waits behind another run's writer.
    if (SqliteLedger.#isCurrent(db)) return;
    db.transaction(() => {
      db.exec(`CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
      const applied = new Set((db.prepare(`SELECT version FROM ${MIGRATIONS_TABLE}`).all() as Array<{ version: number }>).map((r) => r.version));
      const newest = Math.max(0, ...applied);
      if (newest > SCHEMA_VERSION) {
        throw new LedgerError('schema', `ledger schema version ${newest} is newer than this Quarry's (${SCHEMA_VERSION}): upgrade Quarry`);
      }
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        for (const s of m.statements.sqlite) db.exec(s);
        db.prepare(`INSERT INTO ${MIGRATIONS_TABLE} (version, name, applied_at) VALUES (?, ?, ?)`).run(m.version, m.name, new Date().toISOString());
      }
    }).immediate();
  }

  /** Whether every migration of this Quarry is applied and none newer (read only; the migration's transaction decides otherwise). */
  static #isCurrent(db: Database.Database): boolean {
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(MIGRATIONS_TABLE) === undefined) return false;
    const applied = new Set((db.prepare(`SELECT version FROM ${MIGRATIONS_TABLE}`).all() as Array<{ version: number }>).map((r) => r.version));
    return Math.max(0, ...applied) <= SCHEMA_VERSION && MIGRATIONS.every((m) => applied.has(m.version));
  }

  /** Retries `fn` while SQLite stays busy past its busy timeout (many writers on one file). */
  static async #retryBusy<T>(retries: number, fn: () => T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return fn();
      } catch (err) {
        if (!isBusy(err) || attempt >= retries) {
          if (isBusy(err)) throw new LedgerError('unavailable', `SQLite ledger stayed busy after ${attempt} attempts`, { cause: err });
          throw err;
        }
        // Jitter: writers that collided should not wake in step.
        await sleep(20 + Math.floor(Math.random() * 80));
      }
    }
  }

  #stmt(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /** {@inheritDoc LedgerReader.getPartition} */
  async getPartition(partition: LogicalPartition): Promise<PartitionState | undefined> {
    checkLogicalPartition(partition);
    const r = this.#stmt(`SELECT * FROM partition_state WHERE ${PARTITION_KEY_WHERE}`)
      .get(partition.dataset, partition.source, partition.category, partition.day) as PartitionRowSql | undefined;
    return r === undefined ? undefined : toPartition(r);
  }

  /** {@inheritDoc LedgerReader.listPartitions} */
  async listPartitions(filters: PartitionFilters = {}): Promise<PartitionState[]> {
    const f = compilePartitionFilters(filters);
    const w = whereSql(f, () => '?');
    const limit = f.limit === undefined ? '' : ` LIMIT ${f.limit}`;
    const rows = this.#stmt(`SELECT * FROM partition_state ${w.sql} ORDER BY dataset, source, category, day${limit}`).all(...w.params) as PartitionRowSql[];
    return rows.map(toPartition);
  }

  /** {@inheritDoc LedgerReader.getRun} */
  async getRun(runId: string): Promise<RunHistoryRow | undefined> {
    const r = this.#stmt('SELECT * FROM run_history WHERE run_id = ?').get(runId) as HistoryRowSql | undefined;
    return r === undefined ? undefined : toHistory(r);
  }

  /** {@inheritDoc LedgerReader.listRuns} */
  async listRuns(filters: RunFilters = {}): Promise<RunHistoryRow[]> {
    const f = compileRunFilters(filters);
    const w = whereSql(f, () => '?');
    const limit = f.limit === undefined ? '' : ` LIMIT ${f.limit}`;
    const rows = this.#stmt(`SELECT * FROM run_history ${w.sql} ORDER BY history_id${limit}`).all(...w.params) as HistoryRowSql[];
    return rows.map(toHistory);
  }

  /** {@inheritDoc LedgerReader.runsOfPartition} */
  async runsOfPartition(partition: LogicalPartition): Promise<RunHistoryRow[]> {
    checkLogicalPartition(partition);
    const rows = this.#stmt(`SELECT * FROM run_history WHERE ${PARTITION_KEY_WHERE} ORDER BY history_id`)
      .all(partition.dataset, partition.source, partition.category, partition.day) as HistoryRowSql[];
    return rows.map(toHistory);
  }

  /** {@inheritDoc LedgerReader.pendingSkips} */
  async pendingSkips(filters: Omit<PartitionFilters, 'status' | 'limit'> = {}): Promise<PendingSkip[]> {
    const q = pendingSkipsQuery(filters, () => '?', 'skipped = 1');
    return latestSkips(this.#stmt(q.sql).all(...q.params) as PendingSkipRowSql[]);
  }

  /** {@inheritDoc LedgerReader.recordedRunIds} */
  async recordedRunIds(runIds: readonly string[]): Promise<Set<RunId>> {
    const found = new Set<RunId>();
    const CHUNK = 500; // under SQLite's parameter limit
    for (let i = 0; i < runIds.length; i += CHUNK) {
      const part = runIds.slice(i, i + CHUNK);
      const rows = this.#db.prepare(`SELECT run_id FROM run_history WHERE run_id IN (${part.map(() => '?').join(',')})`).all(...part) as Array<{ run_id: string }>;
      for (const r of rows) found.add(r.run_id as RunId);
    }
    return found;
  }

  /** {@inheritDoc Ledger.recordRuns} */
  async recordRuns(runs: readonly RunHistoryInput[], now: Date): Promise<RecordedRun[]> {
    for (const r of runs) checkLogicalPartition(r);
    const nowIso = now.toISOString();
    const tx = this.#db.transaction((batch: readonly RunHistoryInput[]) => {
      const out = batch.map((run) => this.#recordOne(run, nowIso));
      reachKillPoint('during_validation');
      return out;
    });
    return SqliteLedger.#retryBusy(this.#busyRetries, () => tx.immediate(runs));
  }

  /** {@inheritDoc Ledger.bindRun} */
  async bindRun(input: RunBindingInput, now: Date): Promise<RunBinding> {
    const nowIso = now.toISOString();
    const tx = this.#db.transaction((): RunBinding => {
      const bound = this.#stmt('SELECT storage FROM dataset_binding WHERE dataset = ?').get(input.dataset) as { storage: string } | undefined;
      if (bound !== undefined && bound.storage !== input.storage) throw bindingConflict(input.dataset, bound.storage, input.storage);
      const rec = this.#stmt('SELECT dataset, source, category, day FROM run_history WHERE run_id = ?').get(input.run_id) as LogicalPartition | undefined;
      if (rec !== undefined) throw runIdTaken(input.run_id, `a recorded run of ${rec.dataset}/${rec.source}/${rec.category}/${rec.day}`);
      const res = this.#stmt('SELECT dataset FROM run_reservation WHERE run_id = ?').get(input.run_id) as { dataset: string } | undefined;
      if (res !== undefined && res.dataset !== input.dataset) throw runIdTaken(input.run_id, `a run of dataset ${JSON.stringify(res.dataset)}`);
      if (res === undefined) this.#stmt('INSERT INTO run_reservation (run_id, dataset, reserved_at) VALUES (?, ?, ?)').run(input.run_id, input.dataset, nowIso);
      if (bound === undefined) this.#stmt('INSERT INTO dataset_binding (dataset, storage, bound_at) VALUES (?, ?, ?)').run(input.dataset, input.storage, nowIso);
      return { bound_now: bound === undefined };
    });
    return SqliteLedger.#retryBusy(this.#busyRetries, () => tx.immediate());
  }

  #recordOne(input: RunHistoryInput, nowIso: string): RecordedRun {
    const { notify, ...run } = input;
    const role = runRole(run);
    const existing = this.#stmt('SELECT * FROM run_history WHERE run_id = ?').get(run.run_id) as HistoryRowSql | undefined;
    if (existing !== undefined) {
      const row = toHistory(existing);
      if (row.dataset !== run.dataset || row.source !== run.source || row.category !== run.category || row.day !== run.day) {
        throw new LedgerError('run_id_conflict', `run ${run.run_id} is already recorded for ${row.dataset}/${row.source}/${row.category}/${row.day}, not ${run.dataset}/${run.source}/${run.category}/${run.day}`);
      }
      return { run: row, recorded: false, role, promoted: false, partition: this.#partitionNow(run), notification_id: null };
    }
    const info = this.#stmt(`INSERT INTO run_history (${HISTORY_COLUMNS.join(', ')}) VALUES (${HISTORY_COLUMNS.map(() => '?').join(', ')})`).run(...historyParams(run));
    const stored: RunHistoryRow = { ...run, history_id: Number(info.lastInsertRowid) };
    if (role === 'tree_member') return { run: stored, recorded: true, role, promoted: false, partition: this.#partitionNow(run), notification_id: null };

    const prev = this.#partitionNow(run);
    const { state, promoted } = nextPartitionState(prev, this.#currentKey(prev), run, nowIso);
    if (state !== undefined) this.#upsertPartition(state);
    const notification_id = notify === undefined
      ? null
      : this.#insertNotification(notify, 'run', promoted, runAuthorityReason(run.validation_status === 'valid', run.skipped === true, promoted), nowIso);
    return { run: stored, recorded: true, role, promoted, partition: state, notification_id };
  }

  /** Inserts an outbox row in the current transaction (SPEC §11); returns its id. */
  #insertNotification(draft: NotificationDraft, subject: NotificationSubject, authoritative: boolean, reason: string, nowIso: string): string {
    const { values } = outboxRow(draft, subject, authoritative, reason, nowIso);
    this.#stmt(`INSERT INTO notification_outbox (${OUTBOX_COLUMNS.join(', ')}) VALUES (${OUTBOX_COLUMNS.map(() => '?').join(', ')})`).run(...OUTBOX_COLUMNS.map((c) => values[c]));
    return values.notification_id!;
  }

  /** The authority key of a row's current run or tree (SPEC §8 "Who wins"); undefined when none or unknown. */
  #currentKey(prev: PartitionState | undefined): AuthorityKey | undefined {
    if (prev?.current_run_id == null) return undefined;
    const sql = prev.authority === 'tree'
      ? 'SELECT tree_id AS run_id, finalized_at FROM tree_validation WHERE tree_id = ?'
      : 'SELECT run_id, finalized_at FROM run_history WHERE run_id = ?';
    const cur = this.#stmt(sql).get(prev.current_run_id) as { run_id: string; finalized_at: string | null } | undefined;
    return cur?.finalized_at != null ? { run_id: cur.run_id, finalized_at: cur.finalized_at } : undefined;
  }

  #upsertPartition(state: PartitionState): void {
    this.#stmt(
      `INSERT INTO partition_state (${PARTITION_COLUMNS.join(', ')}) VALUES (${PARTITION_COLUMNS.map(() => '?').join(', ')})
       ON CONFLICT (dataset, source, category, day) DO UPDATE SET ${PARTITION_VALUE_COLUMNS.map((c) => `${c} = excluded.${c}`).join(', ')}`,
    ).run(...PARTITION_COLUMNS.map((c) => state[c]));
  }

  /** {@inheritDoc Ledger.recordTree} */
  async recordTree(input: TreeRecordInput, now: Date): Promise<RecordedTree> {
    const treeId = checkTreeRecord(input.tree.tree_id, input.members, input.partitions);
    const nowIso = now.toISOString();
    const tx = this.#db.transaction((): RecordedTree => {
      const existing = this.#stmt('SELECT * FROM tree_validation WHERE tree_id = ?').get(treeId) as TreeRowSql | undefined;
      if (existing !== undefined) {
        const tree = toTree(existing);
        return {
          tree, recorded: false, members: [], notification_id: null,
          partitions: input.partitions.map((p) => {
            const state = this.#partitionNow(p.partition);
            return { partition: p.partition, outcome: treePartitionOutcomeNow(treeId, tree.valid, p, state), state };
          }),
        };
      }
      const members = input.members.map((m) => this.#recordOne(m, nowIso));
      this.#stmt(`INSERT INTO tree_validation (${TREE_COLUMNS.join(', ')}) VALUES (${TREE_COLUMNS.map(() => '?').join(', ')})`).run(...treeParams(input.tree));
      const candidate = { tree_id: treeId, finalized_at: input.tree.finalized_at, manifest_sha256: input.tree.manifest_sha256, valid: input.tree.valid, reason: input.tree.reason };
      const partitions = input.partitions.map((p) => {
        const prev = this.#partitionNow(p.partition);
        const { state, outcome } = nextTreePartitionState(p.partition, prev, this.#currentKey(prev), candidate, p, nowIso);
        if (state !== undefined) this.#upsertPartition(state);
        return { partition: p.partition, outcome, state };
      });
      const authoritative = partitions.some((p) => p.outcome === 'promoted');
      const reason = !input.tree.valid ? 'rejected' : authoritative ? 'promoted' : partitions.some((p) => p.outcome === 'superseded') ? 'superseded' : 'skipped';
      const notification_id = input.notify === undefined ? null : this.#insertNotification(input.notify, 'tree', authoritative, reason, nowIso);
      reachKillPoint('during_validation');
      return { tree: input.tree, recorded: true, members, partitions, notification_id };
    });
    return SqliteLedger.#retryBusy(this.#busyRetries, () => tx.immediate());
  }

  /** {@inheritDoc LedgerReader.getTree} */
  async getTree(treeId: string): Promise<TreeValidationRow | undefined> {
    const r = this.#stmt('SELECT * FROM tree_validation WHERE tree_id = ?').get(treeId) as TreeRowSql | undefined;
    return r === undefined ? undefined : toTree(r);
  }

  /** {@inheritDoc LedgerReader.recordedTreeIds} */
  async recordedTreeIds(treeIds: readonly string[]): Promise<Set<RunId>> {
    const found = new Set<RunId>();
    for (const id of treeIds) if (this.#stmt('SELECT 1 FROM tree_validation WHERE tree_id = ?').get(id) !== undefined) found.add(id as RunId);
    return found;
  }

  /** {@inheritDoc LedgerReader.listNotifications} */
  async listNotifications(filters: NotificationFilters = {}): Promise<NotificationRow[]> {
    const q = outboxListQuery(filters, () => '?');
    return (this.#db.prepare(q.sql).all(...q.params) as OutboxRowSql[]).map(decodeOutboxRow);
  }

  /** {@inheritDoc Ledger.claimNotifications} */
  async claimNotifications(claim: NotificationClaim, lease: DeliveryLease, now: Date): Promise<NotificationRow[]> {
    const nowIso = now.toISOString();
    const tx = this.#db.transaction((): NotificationRow[] => {
      const conds = ["status = 'pending'", '(lease_until IS NULL OR lease_until < ?)'];
      const params: Array<string | number> = [nowIso];
      if (claim.dataset !== undefined) {
        conds.push('dataset = ?');
        params.push(claim.dataset);
      }
      if (claim.ids !== undefined) {
        if (claim.ids.length === 0) return [];
        conds.push(`notification_id IN (${claim.ids.map(() => '?').join(', ')})`);
        params.push(...claim.ids);
      }
      const rows = this.#db.prepare(`SELECT * FROM notification_outbox WHERE ${conds.join(' AND ')} ORDER BY created_at, notification_id LIMIT ${claim.limit ?? 100}`).all(...params) as OutboxRowSql[];
      const take = this.#stmt('UPDATE notification_outbox SET lease_owner = ?, lease_until = ? WHERE notification_id = ?');
      for (const r of rows) take.run(lease.owner, lease.until.toISOString(), r.notification_id);
      return rows.map(decodeOutboxRow);
    });
    return SqliteLedger.#retryBusy(this.#busyRetries, () => tx.immediate());
  }

  /** {@inheritDoc Ledger.recordDelivery} */
  async recordDelivery(notificationId: string, owner: string, result: DeliveryResult, now: Date): Promise<boolean> {
    const nowIso = now.toISOString();
    const run = (): boolean => this.#stmt(
      `UPDATE notification_outbox SET status = ?, attempts = attempts + ?, last_attempt_at = COALESCE(?, last_attempt_at), last_error = COALESCE(?, last_error), delivered_at = ?, lease_owner = NULL, lease_until = NULL
       WHERE notification_id = ? AND lease_owner = ? AND status = 'pending'`,
    ).run(result.delivered ? 'delivered' : 'pending', result.attempts, result.attempts > 0 ? nowIso : null, result.error, result.delivered ? nowIso : null, notificationId, owner).changes === 1;
    return SqliteLedger.#retryBusy(this.#busyRetries, run);
  }

  /** {@inheritDoc Ledger.supersedeNotifications} */
  async supersedeNotifications(ids: readonly string[], by: string, now: Date): Promise<void> {
    void now;
    const tx = this.#db.transaction(() => {
      const st = this.#stmt("UPDATE notification_outbox SET status = 'superseded', superseded_by = ? WHERE notification_id = ? AND status = 'pending'");
      for (const id of ids) st.run(by, id);
    });
    await SqliteLedger.#retryBusy(this.#busyRetries, () => tx.immediate());
  }

  #partitionNow(p: LogicalPartition): PartitionState | undefined {
    const r = this.#stmt(`SELECT * FROM partition_state WHERE ${PARTITION_KEY_WHERE}`).get(p.dataset, p.source, p.category, p.day) as PartitionRowSql | undefined;
    return r === undefined ? undefined : toPartition(r);
  }

  /** {@inheritDoc LedgerReader.close} */
  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}
