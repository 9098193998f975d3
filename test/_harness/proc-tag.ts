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
