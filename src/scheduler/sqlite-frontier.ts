/**
 * The embedded frontier (SPEC §10): one SQLite file per tree under the state
 * dir, never in the ledger's file. Each client is its own connection, in
 * this process or another; every decision is one `BEGIN IMMEDIATE`
 * transaction, which takes the file's single write lock before reading, so a
 * read-decide-write (admit, lease, complete, claim) never interleaves with
 * another client's. WAL lets readers go on while one client writes.
 */
import { existsSync, linkSync, mkdirSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { monotonicFactory } from 'ulid';
import type { RunOutcome } from '../storage/manifest.js';
import type { JsonValue } from './canonical-json.js';
import {
  checkOwner,
  checkTreeOptions,
  FrontierError,
  SYSTEM_CLOCK,
  type AdmitDecision,
  type AttemptOutcome,
  type AttemptPartition,
  type Clock,
  type CompleteResult,
  type Frontier,
  type FrontierCounters,
  type ItemRecord,
  type ItemState,
  type Lease,
  type LeaseRef,
  type TreeOptions,
  type WorkItem,
  type WorkItemInput,
} from './frontier.js';
import { FRONTIER_SCHEMA, FRONTIER_SCHEMA_VERSION } from './sqlite-frontier-schema.js';

/** Options of {@link SqliteFrontier.create} and {@link SqliteFrontier.open}. */
export interface SqliteFrontierOptions {
  /** Time source for leases; default the wall clock. */
  clock?: Clock;
  /** How long a client waits for another's write transaction (ms). Default 10 000. */
  busyTimeoutMs?: number;
}

interface TreeRow { tree_id: string; options: string; parallel: number; finalization_claimed_at: number | null; deduplicated: number; retried: number }
interface ItemRow {
  seq: number; key: string; target: string; params: string; params_digest: string; target_sha256: string | null; depth: number;
  parent_run_id: string | null; source: string | null; category: string | null; state: string; reason: string | null;
  current_run_id: string | null; final_run_id: string | null; failures: number;
}
interface AttemptRow {
  run_id: string; key: string; attempt: number; owner: string; leased_at: number; expires_at: number;
  outcome: string | null; partition: string | null; finished_at: number | null; previous_run_id: string | null;
}

/** A client of one tree's SQLite frontier. */
export class SqliteFrontier implements Frontier {
  readonly #db: Database.Database;
  readonly #clock: Clock;
  readonly #opts: TreeOptions;
  readonly #newRunId = monotonicFactory();
  readonly #stmts = new Map<string, Database.Statement>();

  private constructor(db: Database.Database, clock: Clock, opts: TreeOptions) {
    this.#db = db;
    this.#clock = clock;
    this.#opts = opts;
  }

  get treeId(): string {
    return this.#opts.tree_id;
  }

  /**
   * Creates the tree's file at `path` with its options and opens a client.
   * The file is built aside and linked into place, so no client ever opens a
   * half-made tree and two creators cannot both succeed. Throws FrontierError
   * when the tree exists or an option is bad.
   */
  static create(path: string, options: TreeOptions, o: SqliteFrontierOptions = {}): SqliteFrontier {
    const opts = checkTreeOptions(options);
    mkdirSync(dirname(path), { recursive: true });
    if (existsSync(path)) throw new FrontierError(`tree ${opts.tree_id} already has a frontier at ${path}; resume it with --resume ${opts.tree_id}`);
    const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
    const db = new Database(tmp);
    try {
      // Rollback journal while building: nothing but the main file to link.
      db.exec(FRONTIER_SCHEMA);
      db.prepare('INSERT INTO tree (id, schema_version, tree_id, options, parallel, created_at) VALUES (1, ?, ?, ?, ?, ?)')
        .run(FRONTIER_SCHEMA_VERSION, opts.tree_id, JSON.stringify(opts), opts.parallel, (o.clock ?? SYSTEM_CLOCK).now());
      db.close();
      linkSync(tmp, path);
    } catch (err) {
      if (db.open) db.close();
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new FrontierError(`tree ${opts.tree_id} already has a frontier at ${path}; resume it with --resume ${opts.tree_id}`);
      throw err;
    } finally {
      try { unlinkSync(tmp); } catch { /* already gone */ }
    }
    return SqliteFrontier.open(path, o);
  }

  /** Opens another client of an existing tree. Throws FrontierError when there is none. */
  static open(path: string, o: SqliteFrontierOptions = {}): SqliteFrontier {
    if (!existsSync(path)) throw new FrontierError(`no frontier at ${path}: the tree was never started here (check --state-dir)`);
    const db = new Database(path, { fileMustExist: true, timeout: o.busyTimeoutMs ?? 10_000 });
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      const row = db.prepare('SELECT schema_version, options FROM tree WHERE id = 1').get() as { schema_version: number; options: string } | undefined;
      if (!row) throw new FrontierError(`${path} is not a Quarry frontier (no tree row)`);
      if (row.schema_version !== FRONTIER_SCHEMA_VERSION) {
        throw new FrontierError(`${path} has frontier schema ${row.schema_version}; this Quarry reads ${FRONTIER_SCHEMA_VERSION}: resume it with the version that started it`);
      }
      return new SqliteFrontier(db, o.clock ?? SYSTEM_CLOCK, JSON.parse(row.options) as TreeOptions);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /**
   * The statement for `sql`, prepared once per client: a tree's every admit,
   * lease and complete ran through a dozen statements, each prepared anew.
   */
  #prep(sql: string): Database.Statement {
    let stmt = this.#stmts.get(sql);
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql);
      this.#stmts.set(sql, stmt);
    }
    return stmt;
  }

  #write<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  #read<T>(fn: () => T): T {
    return this.#db.transaction(fn).deferred();
  }

  #tree(): TreeRow {
    return this.#prep('SELECT * FROM tree WHERE id = 1').get() as TreeRow;
  }

  async admit(items: readonly WorkItemInput[]): Promise<AdmitDecision[]> {
    const now = this.#clock.now();
    return this.#write(() => {
      let admitted = (this.#prep('SELECT count(*) AS n FROM items').get() as { n: number }).n;
      const isAdmitted = this.#prep('SELECT 1 FROM items WHERE key = ?').pluck();
      const refuse = this.#prep('INSERT INTO refused (key, reason) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET reason = excluded.reason');
      const insert = this.#prep(`INSERT INTO items (key, target, params, params_digest, target_sha256, depth, parent_run_id, source, category, state, reason, final_run_id, admitted_at)
        VALUES (@key, @target, @params, @params_digest, @target_sha256, @depth, @parent_run_id, @source, @category, @state, @reason, NULL, @now)`);
      let dup = 0;
      const out = items.map((it): AdmitDecision => {
        if (isAdmitted.get(it.key) !== undefined) { dup++; return 'duplicate'; }
        if (it.depth > this.#opts.max_depth) { refuse.run(it.key, 'over_depth'); return 'over_depth'; }
        if (admitted >= this.#opts.max_runs) { refuse.run(it.key, 'over_cap'); return 'over_cap'; }
        const notFound = it.not_found !== undefined;
        insert.run({
          key: it.key, target: it.target, params: JSON.stringify(it.params), params_digest: it.params_digest,
          target_sha256: it.target_sha256, depth: it.depth, parent_run_id: it.parent_run_id,
          source: it.source ?? null, category: it.category ?? null,
          state: notFound ? 'failed' : 'queued', reason: notFound ? 'target_not_found' : null, now,
        });
        // A key refused once by depth may come back shallower; it is then not "not executed".
        this.#prep('DELETE FROM refused WHERE key = ?').run(it.key);
        admitted++;
        return 'admitted';
      });
      if (dup > 0) this.#prep('UPDATE tree SET deduplicated = deduplicated + ? WHERE id = 1').run(dup);
      return out;
    });
  }

  /** Marks lost every in-flight attempt matching `where`, requeueing items whose current attempt it was. */
  #loseAttempts(where: string, args: unknown[], outcome: 'expired' | 'abandoned', now: number): number {
    const lost = this.#prep(`SELECT run_id, key FROM attempts WHERE outcome IS NULL AND ${where}`).all(...args) as { run_id: string; key: string }[];
    const mark = this.#prep('UPDATE attempts SET outcome = ?, finished_at = ? WHERE run_id = ?');
    const requeue = this.#prep("UPDATE items SET state = 'queued', current_run_id = NULL WHERE key = ? AND current_run_id = ? AND state = 'leased'");
    for (const a of lost) {
      mark.run(outcome, now, a.run_id);
      requeue.run(a.key, a.run_id);
    }
    return lost.length;
  }

  async lease(owner: string, n: number): Promise<Lease[]> {
    checkOwner(owner);
    if (!Number.isSafeInteger(n) || n < 0) throw new FrontierError(`lease count must be a non-negative integer, got ${JSON.stringify(n)}`);
    const now = this.#clock.now();
    return this.#write(() => {
      this.#loseAttempts('expires_at <= ?', [now], 'expired', now);
      const tree = this.#tree();
      const running = (this.#prep('SELECT count(*) AS n FROM attempts WHERE outcome IS NULL').get() as { n: number }).n;
      const room = Math.min(n, tree.parallel - running);
      if (room <= 0) return [];
      const queued = this.#prep("SELECT * FROM items WHERE state = 'queued' ORDER BY seq LIMIT ?").all(room) as ItemRow[];
      const rootIdUsed = this.#prep('SELECT 1 FROM attempts WHERE run_id = ?').pluck();
      const last = this.#prep('SELECT run_id, attempt FROM attempts WHERE key = ? ORDER BY attempt DESC LIMIT 1');
      const insert = this.#prep(`INSERT INTO attempts (run_id, key, attempt, owner, leased_at, expires_at, previous_run_id)
        VALUES (?, ?, ?, ?, ?, ?, ?)`);
      const take = this.#prep("UPDATE items SET state = 'leased', current_run_id = ? WHERE key = ?");
      return queued.map((it): Lease => {
        const prev = last.get(it.key) as { run_id: string; attempt: number } | undefined;
        const attempt = (prev?.attempt ?? 0) + 1;
        // §8: tree_id is the first root attempt's run_id.
        const runId = it.depth === 0 && attempt === 1 && rootIdUsed.get(tree.tree_id) === undefined ? tree.tree_id : this.#newRunId(now);
        const expires = now + this.#opts.lease_ms;
        insert.run(runId, it.key, attempt, owner, now, expires, prev?.run_id ?? null);
        take.run(runId, it.key);
        return { ...toLeaseRef(it.key, runId, attempt), tree_id: tree.tree_id, owner, expires_at: expires, previous_run_id: prev?.run_id ?? null, item: itemFields(it) };
      });
    });
  }

  async renew(owner: string): Promise<string[]> {
    const now = this.#clock.now();
    return this.#write(() => {
      // An expired lease is not revived: another client may already be requeueing it.
      this.#prep('UPDATE attempts SET expires_at = ? WHERE owner = ? AND outcome IS NULL AND expires_at > ?').run(now + this.#opts.lease_ms, owner, now);
      return this.#prep('SELECT run_id FROM attempts WHERE owner = ? AND outcome IS NULL AND expires_at > ? ORDER BY run_id').pluck().all(owner, now) as string[];
    });
  }

  async requeueExpired(): Promise<number> {
    const now = this.#clock.now();
    return this.#write(() => this.#loseAttempts('expires_at <= ?', [now], 'expired', now));
  }

  async requeueAbandoned(owner: string): Promise<number> {
    const now = this.#clock.now();
    return this.#write(() => this.#loseAttempts('owner = ?', [owner], 'abandoned', now));
  }

  async complete(lease: LeaseRef, outcome: RunOutcome, partition?: AttemptPartition): Promise<CompleteResult> {
    const now = this.#clock.now();
    return this.#write((): CompleteResult => {
      const a = this.#prep('SELECT * FROM attempts WHERE run_id = ?').get(lease.run_id) as AttemptRow | undefined;
      if (!a || a.key !== lease.key || a.attempt !== lease.attempt) {
        throw new FrontierError(`tree ${this.treeId} has no attempt ${lease.attempt} of run ${lease.run_id} for that item`);
      }
      const item = () => this.#prep('SELECT * FROM items WHERE key = ?').get(a.key) as ItemRow;
      const before = item();
      // Idempotent: a run outcome once recorded stays. A lost (expired/abandoned) attempt may still report.
      if (a.outcome !== null && a.outcome !== 'expired' && a.outcome !== 'abandoned') return { recorded: false, state: before.state as ItemState };
      this.#prep('UPDATE attempts SET outcome = ?, partition = ?, finished_at = ? WHERE run_id = ?')
        .run(outcome, partition ? JSON.stringify(partition) : null, now, a.run_id);
      const isCurrent = before.state === 'leased' && before.current_run_id === a.run_id;
      const finalState = before.state === 'succeeded' || before.state === 'failed';
      if (outcome === 'success') {
        // §12: the first valid completion of an item wins, even from an attempt presumed dead.
        if (!finalState) this.#prep("UPDATE items SET state = 'succeeded', reason = NULL, final_run_id = ?, current_run_id = NULL WHERE key = ?").run(a.run_id, a.key);
      } else if (isCurrent) {
        if (outcome === 'interrupted') {
          this.#prep("UPDATE items SET state = 'queued', current_run_id = NULL WHERE key = ?").run(a.key);
        } else if (before.failures < this.#opts.retries) {
          this.#prep("UPDATE items SET state = 'queued', current_run_id = NULL, failures = failures + 1 WHERE key = ?").run(a.key);
          this.#prep('UPDATE tree SET retried = retried + 1 WHERE id = 1').run();
        } else {
          this.#prep("UPDATE items SET state = 'failed', reason = ?, final_run_id = ?, current_run_id = NULL, failures = failures + 1 WHERE key = ?").run(outcome, a.run_id, a.key);
        }
      }
      return { recorded: true, state: item().state as ItemState };
    });
  }

  async counters(): Promise<FrontierCounters> {
    return this.#read((): FrontierCounters => {
      const count = (sql: string): number => (this.#prep(sql).get() as { n: number }).n;
      const tree = this.#tree();
      const states = Object.fromEntries((this.#prep('SELECT state, count(*) AS n FROM items GROUP BY state').all() as { state: string; n: number }[]).map((r) => [r.state, r.n]));
      return {
        admitted: count('SELECT count(*) AS n FROM items'),
        succeeded: states.succeeded ?? 0,
        failed: states.failed ?? 0,
        retried: tree.retried,
        deduplicated: tree.deduplicated,
        not_executed_cap: count("SELECT count(*) AS n FROM refused WHERE reason = 'over_cap'"),
        not_executed_depth: count("SELECT count(*) AS n FROM refused WHERE reason = 'over_depth'"),
        running: count('SELECT count(*) AS n FROM attempts WHERE outcome IS NULL'),
        queued: states.queued ?? 0,
        requeued: count("SELECT count(*) AS n FROM attempts WHERE outcome IN ('interrupted', 'expired', 'abandoned')"),
      };
    });
  }

  async options(): Promise<TreeOptions> {
    const tree = this.#read(() => this.#tree());
    return { ...(JSON.parse(tree.options) as TreeOptions), parallel: tree.parallel };
  }

  async setParallel(parallel: number): Promise<void> {
    if (!Number.isSafeInteger(parallel) || parallel < 1) throw new FrontierError(`parallel must be an integer ≥ 1, got ${JSON.stringify(parallel)}`);
    this.#write(() => this.#prep('UPDATE tree SET parallel = ? WHERE id = 1').run(parallel));
  }

  async claimFinalization(): Promise<boolean> {
    const now = this.#clock.now();
    return this.#write((): boolean => {
      if (this.#tree().finalization_claimed_at !== null) return false;
      const unfinished = this.#prep("SELECT 1 FROM items WHERE state IN ('queued', 'leased') LIMIT 1").get();
      const inFlight = this.#prep('SELECT 1 FROM attempts WHERE outcome IS NULL LIMIT 1').get();
      if (unfinished !== undefined || inFlight !== undefined) return false;
      this.#prep('UPDATE tree SET finalization_claimed_at = ? WHERE id = 1').run(now);
      return true;
    });
  }

  async inFlight(): Promise<Lease[]> {
    return this.#read(() => {
      const rows = this.#prep(`SELECT a.*, i.seq, i.target, i.params, i.params_digest, i.target_sha256, i.depth, i.parent_run_id, i.source, i.category
        FROM attempts a JOIN items i ON i.key = a.key WHERE a.outcome IS NULL ORDER BY i.seq, a.attempt`).all() as (AttemptRow & ItemRow)[];
      return rows.map((r): Lease => ({
        ...toLeaseRef(r.key, r.run_id, r.attempt), tree_id: this.treeId, owner: r.owner, expires_at: r.expires_at,
        previous_run_id: r.previous_run_id, item: itemFields(r),
      }));
    });
  }

  async items(): Promise<ItemRecord[]> {
    return this.#read(() => {
      const items = this.#prep('SELECT * FROM items ORDER BY seq').all() as ItemRow[];
      const attempts = this.#prep('SELECT * FROM attempts ORDER BY key, attempt').all() as AttemptRow[];
      const byKey = new Map<string, AttemptRow[]>();
      for (const a of attempts) byKey.set(a.key, [...(byKey.get(a.key) ?? []), a]);
      return items.map((it): ItemRecord => ({
        ...itemFields(it),
        state: it.state as ItemState,
        reason: it.reason,
        final_run_id: it.final_run_id,
        failures: it.failures,
        attempts: (byKey.get(it.key) ?? []).map((a) => ({
          run_id: a.run_id, attempt: a.attempt, owner: a.owner, leased_at: a.leased_at,
          outcome: a.outcome as AttemptOutcome | null,
          partition: a.partition === null ? null : JSON.parse(a.partition) as AttemptPartition,
          finished_at: a.finished_at,
        })),
      }));
    });
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

function toLeaseRef(key: string, run_id: string, attempt: number): LeaseRef {
  return { key, run_id, attempt };
}

function itemFields(it: ItemRow): WorkItem {
  return {
    key: it.key, target: it.target, params: JSON.parse(it.params) as JsonValue, params_digest: it.params_digest,
    target_sha256: it.target_sha256, depth: it.depth, parent_run_id: it.parent_run_id, source: it.source, category: it.category,
  };
}
