/**
 * The embedded proxy selection state (SPEC §11): one SQLite file in the state
 * dir, `proxy-state.sqlite`, shared by every invocation on the machine that
 * uses that state dir. Each change is one `BEGIN IMMEDIATE` transaction, which
 * takes the file's write lock before reading, so two invocations selecting at
 * once never pick from the same state.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { PoolState, ProxyStateStore } from './state.js';

/** The state file under a state dir. */
export function proxyStatePath(stateDir: string): string {
  return join(stateDir, 'proxy-state.sqlite');
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS proxy_pool_state (
  pool TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  updated_at INTEGER NOT NULL
)`;

/** A {@link ProxyStateStore} in one SQLite file. */
export class SqliteProxyStateStore implements ProxyStateStore {
  readonly location: string;
  readonly #db: Database.Database;

  private constructor(db: Database.Database, location: string) {
    this.#db = db;
    this.location = location;
  }

  /**
   * Opens (creating if needed) the state file at `path`.
   * @throws Error from SQLite when the file cannot be opened or created.
   */
  static open(path: string, options: { busyTimeoutMs?: number } = {}): SqliteProxyStateStore {
    mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 10_000}`);
    // No WAL: a read-only reader (`inspect proxy`) then opens the file without creating -wal/-shm.
    db.pragma('journal_mode = DELETE');
    db.exec(SCHEMA);
    return new SqliteProxyStateStore(db, path);
  }

  /**
   * Opens an existing state file read-only, or returns undefined when there is
   * none (a reader never creates it: SPEC §9 read commands are read-only).
   */
  static openReader(path: string): SqliteProxyStateStore | undefined {
    if (!existsSync(path)) return undefined;
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 10000');
    return new SqliteProxyStateStore(db, path);
  }

  update<T>(pool: string, change: (current: PoolState | undefined) => { state: PoolState; result: T }): Promise<T> {
    const tx = this.#db.transaction((): T => {
      const { state, result } = change(this.#get(pool));
      this.#db.prepare('INSERT INTO proxy_pool_state (pool, state, updated_at) VALUES (?, ?, ?) ON CONFLICT(pool) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at')
        .run(pool, JSON.stringify(state), Date.now());
      return result;
    });
    try {
      return Promise.resolve(tx.immediate());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  read(pool: string): Promise<PoolState | undefined> {
    try {
      return Promise.resolve(this.#get(pool));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }

  #get(pool: string): PoolState | undefined {
    const row = this.#db.prepare('SELECT state FROM proxy_pool_state WHERE pool = ?').get(pool) as { state: string } | undefined;
    if (row === undefined) return undefined;
    try {
      return JSON.parse(row.state) as PoolState;
    } catch {
      // A state that cannot be read is started afresh: selection must never block a run.
      return undefined;
    }
  }
}
