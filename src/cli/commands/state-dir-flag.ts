/**
 * `--state-dir` (SPEC §10): where tree frontiers and the proxy selection
 * state live, resolved for this storage and this user.
 */
import { homedir } from 'node:os';
import { resolveStateDir } from '../../scheduler/state-dir.js';
import type { CliIO } from '../io.js';

/** The state dir of `--state-dir` (or its default for this storage), resolved. */
export function stateDirFor(given: string | undefined, storage: { backend: 'fs' | 's3'; path: string }, io: CliIO): string {
  return resolveStateDir({
    ...(given !== undefined ? { stateDir: given } : {}),
    storageBackend: storage.backend,
    storagePath: storage.path,
    ...(io.env.XDG_STATE_HOME !== undefined ? { xdgStateHome: io.env.XDG_STATE_HOME } : {}),
    home: io.env.HOME ?? homedir(),
    cwd: io.cwd,
  });
}
