/**
 * Owner tags (SPEC §5): `<pid>@<host>` at the start of the name of a temporary
 * entry (a Chromium profile, an fs temporary file), so that a later run can
 * tell a dead owner's leftovers from a live concurrent run's.
 */
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

/** True when `pid` names no process here (ESRCH); EPERM means it exists under another user. */
export function pidIsDead(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
