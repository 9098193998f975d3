/**
 * Owner tags (SPEC §5): `<pid>@<host>` at the start of the name of a temporary
 * entry (a Chromium profile, an fs temporary file), so that a later run can
 * tell a dead owner's leftovers from a live concurrent run's.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** Prefix of a Chromium profile folder in the temporary folder; the owner tag follows it. */
export const CHROMIUM_PROFILE_PREFIX = 'quarry-chromium-';

/** This host's name as owner tags write it: only characters that cannot be confused with the separators. */
export function ownerHost(host: string = hostname()): string {
  return host.replace(/[^A-Za-z0-9.]/g, '_');
}

/** `<pid>@<host>`: the owner of a temporary entry, written into its name. */
export function ownerTag(pid: number = process.pid, host: string = hostname()): string {
  return `${pid}@${ownerHost(host)}`;
}

/** The owner recorded in a name that starts with `<pid>@<host>-`, or undefined (names of older versions). */
export function parseOwner(name: string): { pid: number; host: string } | undefined {
  const m = /^(\d+)@([A-Za-z0-9._]+)-/.exec(name);
  return m ? { pid: Number(m[1]), host: m[2]! } : undefined;
}

/**
 * True when `pid` names no process here (ESRCH), or one that has died and
 * awaits its reaping (a zombie: state Z or X in `/proc/<pid>/stat`). A process
 * whose parent died is reaped by pid 1, and on some machines pid 1 never reaps:
 * its zombie would otherwise count as a live owner for ever. EPERM means it
 * exists under another user: alive.
 */
export function pidIsDead(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    // The state follows the command in parentheses; the command may itself hold ") ", so take the last one.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^\s*[ZX]\s/.test(stat.slice(stat.lastIndexOf(')') + 1));
  } catch {
    // No /proc (not Linux) or the process went between the two looks: kill(0) said it was there.
    return false;
  }
}
