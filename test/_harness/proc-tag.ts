/**
 * Finds the processes of one run by an environment tag (`QUARRY_TEST_TAG`)
 * that `quarry run`, its executor and Chromium all inherit. Orphans are
 * reparented to init, so a walk of the process tree from `quarry run` would
 * miss exactly the processes these tests look for; /proc/<pid>/environ does not.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

export const TAG_VAR = 'QUARRY_TEST_TAG';

/** A fresh tag and the env that carries it. */
export function newTag(): { tag: string; env: Record<string, string> } {
  const tag = randomUUID();
  return { tag, env: { [TAG_VAR]: tag } };
}

/** Live (not zombie) processes whose environment carries `tag`, as `pid command`. */
export function taggedProcesses(tag: string): string[] {
  const needle = `${TAG_VAR}=${tag}`;
  const out: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // The state follows the command in parentheses; a zombie (Z) runs nothing and holds nothing.
      if (/\)\s+[ZX]\s/.test(stat)) continue;
      const env = readFileSync(`/proc/${name}/environ`, 'latin1').split('\0');
      if (env.includes(needle)) out.push(`${name} ${readFileSync(`/proc/${name}/cmdline`, 'latin1').replace(/\0/g, ' ').slice(0, 120)}`);
    } catch {
      // Exited while we looked, or not ours to read.
    }
  }
  return out;
}

/** Polls until no process carries `tag` or `deadlineMs` passes; returns what is left and how long it took. */
export async function waitUntilGone(tag: string, deadlineMs: number): Promise<{ left: string[]; ms: number }> {
  const start = Date.now();
  let left = taggedProcesses(tag);
  while (left.length > 0 && Date.now() - start < deadlineMs) {
    await new Promise((r) => setTimeout(r, 50));
    left = taggedProcesses(tag);
  }
  return { left, ms: Date.now() - start };
}

/** SIGKILLs whatever still carries `tag` (test cleanup, by pid only). */
export function killTagged(tag: string): void {
  for (const line of taggedProcesses(tag)) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** The pid, parent and process group of a live (not zombie) process, undefined when it is gone. */
export function procStat(pid: number): { ppid: number; pgid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' || f[0] === 'X' ? undefined : { ppid: Number(f[1]), pgid: Number(f[2]) };
  } catch {
    return undefined;
  }
}

/** Live processes of the process groups `groups` (e.g. a Chromium's helpers, which may not carry a tag), as `pid command`. */
export function groupProcesses(groups: ReadonlySet<number>): string[] {
  const out: string[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (!st || !groups.has(st.pgid)) continue;
    try {
      out.push(`${name} ${readFileSync(`/proc/${name}/cmdline`, 'latin1').replace(/\0/g, ' ').slice(0, 120)}`);
    } catch {
      // Exited while we looked.
    }
  }
  return out;
}

/**
 * Polls the given processes (`pid command` lines, as listed before a kill) every 10 ms, reading only
 * their own /proc entries, until all are gone or `deadlineMs` passes since `since` (performance.now()).
 * @returns the ones left and when the last of the others went, in ms after `since`.
 */
export async function timeUntilGone(procs: readonly string[], since: number, deadlineMs: number): Promise<{ left: string[]; lastGoneMs: number; last: string[] }> {
  let live = [...procs];
  let lastGoneMs = 0;
  let last: string[] = [];
  while (live.length > 0 && performance.now() - since < deadlineMs) {
    const still = live.filter((l) => procStat(Number(l.split(' ')[0])) !== undefined);
    if (still.length < live.length) {
      // Seen gone by now: an upper bound of when they went.
      lastGoneMs = performance.now() - since;
      last = live.filter((l) => !still.includes(l));
    }
    live = still;
    if (live.length > 0) await new Promise((r) => setTimeout(r, 10));
  }
  return { left: live, lastGoneMs, last };
}
