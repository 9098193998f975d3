/**
 * Leftovers of processes killed before they could clean up (SPEC §5: nothing
 * left behind, whatever kills us): Chromium profiles in the temporary folder
 * and unpublished fs temporary files. Each carries its owner's pid and host in
 * its name (`owner-tag.ts`); `quarry run` removes, at start, the entries
 * whose owner is dead on this host and that are older than an hour, so a live
 * concurrent run's files are never touched.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FS_TMP_DIR } from '../storage/fs-backend.js';
import { CHROMIUM_PROFILE_PREFIX, ownerHost, parseOwner, pidIsDead } from './owner-tag.js';

/** Leftovers younger than this are kept, whoever owns them. */
export const LEFTOVER_MIN_AGE_MS = 60 * 60 * 1000;

export interface SweepOptions {
  /** Folder holding the entries. */
  readonly dir: string;
  /** Only names with this prefix are considered; the owner tag follows it. */
  readonly prefix: string;
  readonly now?: number;
  readonly minAgeMs?: number;
}

/**
 * Removes the entries of `dir` named `<prefix><pid>@<host>-…` whose owner is
 * dead on this host and whose last change is older than `minAgeMs`. Never
 * throws: a folder that is missing or unreadable sweeps nothing.
 * @returns the paths removed.
 */
export async function sweepLeftovers(opts: SweepOptions): Promise<string[]> {
  const now = opts.now ?? Date.now();
  const minAge = opts.minAgeMs ?? LEFTOVER_MIN_AGE_MS;
  const here = ownerHost();
  let names: string[];
  try {
    names = await readdir(opts.dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(opts.prefix)) continue;
    const owner = parseOwner(name.slice(opts.prefix.length));
    if (!owner || owner.host !== here || !pidIsDead(owner.pid)) continue;
    const path = join(opts.dir, name);
    try {
      const st = await stat(path);
      if (now - st.mtimeMs < minAge) continue;
      await rm(path, { recursive: true, force: true, maxRetries: 3 });
      removed.push(path);
    } catch {
      // Gone already, or not ours to remove: leave it.
    }
  }
  return removed;
}

/**
 * The sweep `quarry run` does at start: Chromium profiles in the temporary
 * folder and, for fs storage, unpublished files under `<root>/.quarry-tmp/`.
 * @returns the paths removed. Never throws.
 */
export async function sweepRunLeftovers(fsRoot?: string, now?: number): Promise<string[]> {
  const at = now === undefined ? {} : { now };
  const profiles = await sweepLeftovers({ dir: tmpdir(), prefix: CHROMIUM_PROFILE_PREFIX, ...at });
  const temps = fsRoot === undefined ? [] : await sweepLeftovers({ dir: join(fsRoot, FS_TMP_DIR), prefix: '', ...at });
  return [...profiles, ...temps];
}
