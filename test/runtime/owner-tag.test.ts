import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ownerTag, parseOwner, pidIsDead } from '../../src/runtime/owner-tag.js';

const parents: Array<ReturnType<typeof spawn>> = [];
afterEach(() => {
  for (const p of parents.splice(0)) p.kill('SIGKILL');
});

/**
 * A zombie that nobody reaps: perl (in every Debian) forks a child that exits
 * at once, prints its pid and sleeps without ever waiting for it. This is what
 * a killed runtime's executor becomes on a machine whose pid 1 does not reap
 * orphans.
 */
async function unreapedZombie(): Promise<number> {
  const parent = spawn('perl', ['-e', '$| = 1; my $pid = fork(); exit 0 if $pid == 0; print "$pid\\n"; sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  parents.push(parent);
  const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
  const pid = Number(line.toString().trim());
  // Wait until it has exited; kill(0) still finds it, as a zombie.
  for (let i = 0; i < 100 && !/\)\s+Z\s/.test(await readFile(`/proc/${pid}/stat`, 'utf8')); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  return pid;
}

describe('owner tags', () => {
  it('round-trip a pid and host through a name', () => {
    expect(parseOwner(`${ownerTag(1234, 'my host!')}-abc`)).toEqual({ pid: 1234, host: 'my_host_' });
  });

  it('a live process is not dead; a pid with no process is', () => {
    expect(pidIsDead(process.pid)).toBe(false);
    expect(pidIsDead(2 ** 22 + 1)).toBe(true);
  });

  it('a zombie nobody reaps is dead: its leftovers are swept and a crash check does not wait on it', async () => {
    const pid = await unreapedZombie();
    expect(() => process.kill(pid, 0)).not.toThrow();
    expect(pidIsDead(pid)).toBe(true);
  });
});
