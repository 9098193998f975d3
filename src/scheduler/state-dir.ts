/**
 * Where a tree's frontier lives (SPEC §10): `--state-dir`, else
 * `<storage-path>/.quarry/` for fs storage, else `$XDG_STATE_HOME/quarry/`
 * (`~/.local/state/quarry/` when unset, as the XDG spec defaults). One SQLite
 * file per tree, never the ledger's file; the lock file sits beside it.
 */
import { isAbsolute, join, resolve } from 'node:path';

/** What decides the state dir; the CLI passes env and home in, nothing here reads them. */
export interface StateDirInput {
  /** `--state-dir`, as given. */
  readonly stateDir?: string;
  readonly storageBackend: 'fs' | 's3';
  /** `--storage-path` (fs), as given. */
  readonly storagePath?: string;
  /** `$XDG_STATE_HOME`. */
  readonly xdgStateHome?: string;
  /** The user's home directory. */
  readonly home: string;
  /** Relative paths resolve against this. */
  readonly cwd: string;
}

/** The absolute state dir. Pure. An empty or relative `$XDG_STATE_HOME` is ignored, as the XDG spec says. */
export function resolveStateDir(i: StateDirInput): string {
  if (i.stateDir !== undefined && i.stateDir !== '') return resolve(i.cwd, i.stateDir);
  if (i.storageBackend === 'fs' && i.storagePath !== undefined && i.storagePath !== '') return resolve(i.cwd, i.storagePath, '.quarry');
  const xdg = i.xdgStateHome !== undefined && isAbsolute(i.xdgStateHome) ? i.xdgStateHome : join(i.home, '.local', 'state');
  return join(xdg, 'quarry');
}

/** The files of one tree under a state dir. */
export interface FrontierPaths {
  /** The frontier's SQLite file. */
  readonly db: string;
  /** The lock file the invocation holds (§10). */
  readonly lock: string;
}

/** Paths of tree `treeId` (already checked against the run-id rule) under `stateDir`. */
export function frontierPaths(stateDir: string, treeId: string): FrontierPaths {
  const dir = join(stateDir, 'trees');
  return { db: join(dir, `${treeId}.frontier.sqlite`), lock: join(dir, `${treeId}.lock`) };
}
