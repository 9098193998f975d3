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

/**
 * Polls until no process carries `tag` (with `orDying`: none that is not
 * {@link goneOrDying}, i.e. none that can still run code of its own) or
 * `deadlineMs` passes; returns what is left and how long it took.
 */
export async function waitUntilGone(tag: string, deadlineMs: number, o: { orDying?: boolean } = {}): Promise<{ left: string[]; ms: number }> {
  const start = Date.now();
  const look = (): string[] => taggedProcesses(tag).filter((l) => !o.orDying || !goneOrDying(Number(l.split(' ')[0])));
  let left = look();
  while (left.length > 0 && Date.now() - start < deadlineMs) {
    await new Promise((r) => setTimeout(r, 20));
    left = look();
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
 * Whether `pid` is gone or dying: a zombie or no process, or one the kernel is
 * tearing down (PF_EXITING in its flags) or that has a SIGKILL pending (it
 * cannot run another instruction of its own; on a loaded machine it may wait
 * for CPU to finish exiting).
 */
export function goneOrDying(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return true;
    if ((Number(f[6]) & 0x4) !== 0) return true;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const pending = (name: string): bigint => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)`, 'm').exec(status)?.[1] ?? '0'}`);
    return ((pending('SigPnd') | pending('ShdPnd')) & 0x100n) !== 0n;
  } catch {
    return true;
  }
}

/**
 * Polls the given processes (`pid command` lines, as listed before a kill) every 10 ms, reading only
 * their own /proc entries, until each is `done` or `deadlineMs` passes since `since` (performance.now()).
 * @returns the ones left; `seenMs`: the last poll (ms after `since`) that saw one not done yet, and
 * `doneMs`: the poll that saw the last of them done (on a loaded machine polls may be far apart:
 * the moment lies between the two).
 */
export async function timeUntil(procs: readonly string[], done: (pid: number) => boolean, since: number, deadlineMs: number): Promise<{ left: string[]; seenMs: number; doneMs: number; last: string[] }> {
  let live = [...procs];
  let seenMs = 0;
  let doneMs = 0;
  let last: string[] = [];
  while (live.length > 0 && performance.now() - since < deadlineMs) {
    const at = performance.now() - since;
    const still = live.filter((l) => !done(Number(l.split(' ')[0])));
    if (still.length > 0) seenMs = at;
    if (still.length < live.length) {
      doneMs = performance.now() - since;
      last = live.filter((l) => !still.includes(l));
    }
    live = still;
    if (live.length > 0) await new Promise((r) => setTimeout(r, 10));
  }
  return { left: live, seenMs, doneMs, last };
}
