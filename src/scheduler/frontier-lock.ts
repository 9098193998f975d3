/**
 * The OS lock an invocation holds on its tree's frontier (SPEC §10): an
 * exclusive SQLite lock on a lock file. SQLite takes it with fcntl(), which
 * the kernel drops when the holder dies, however it dies; so a resume never
 * waits on a dead process, and no lock is ever judged stale by its age. The
 * holder's pid is written beside the lock only so a refusal can name it.
 */
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/** The tree is in use by a live invocation; `pid` is who (null if it had not yet written it). */
export class FrontierLockedError extends Error {
  override readonly name = 'FrontierLockedError';
  constructor(readonly lockPath: string, readonly pid: number | null) {
    super(pid === null
      ? `the tree is in use by another process (lock ${lockPath}); wait for it to end, then resume`
      : `the tree is in use by process ${pid} (lock ${lockPath}); wait for it to end or stop it, then resume`);
  }
}

/** An acquired lock; {@link FrontierLock.release} (or the process's death) frees it. */
export class FrontierLock {
  readonly #db: Database.Database;
  readonly #pidPath: string;
  readonly #pid: number;

  private constructor(db: Database.Database, pidPath: string, pid: number) {
    this.#db = db;
    this.#pidPath = pidPath;
    this.#pid = pid;
  }

  /**
   * Takes the lock at once or fails at once: throws {@link FrontierLockedError}
   * naming the holder's pid when a live process holds it. Creates the lock
   * file if needed. `pid` is what to write beside it (the caller's process).
   */
  static acquire(lockPath: string, pid: number): FrontierLock {
    mkdirSync(dirname(lockPath), { recursive: true });
    // timeout 0: a held lock is refused now, never waited on.
    const db = new Database(lockPath, { timeout: 0 });
    try {
      // In rollback-journal mode BEGIN EXCLUSIVE takes the file's EXCLUSIVE lock immediately
      // and holds it until the transaction ends, which it never does while we live.
      db.pragma('journal_mode = DELETE');
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') throw new FrontierLockedError(lockPath, readPid(pidPathOf(lockPath)));
      throw err;
    }
    const pidPath = pidPathOf(lockPath);
    const tmp = `${pidPath}.${pid}.tmp`;
    writeFileSync(tmp, `${pid}\n`);
    renameSync(tmp, pidPath);
    return new FrontierLock(db, pidPath, pid);
  }

  /** Frees the lock (and removes the pid file if it is still ours). Safe to call twice. */
  release(): void {
    if (!this.#db.open) return;
    if (readPid(this.#pidPath) === this.#pid) {
      try { unlinkSync(this.#pidPath); } catch { /* already gone */ }
    }
    this.#db.exec('ROLLBACK');
    this.#db.close();
  }
}

/** Where the holder's pid is written: beside the lock file. */
export function pidPathOf(lockPath: string): string {
  return `${lockPath}.pid`;
}

function readPid(path: string): number | null {
  try {
    const n = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
