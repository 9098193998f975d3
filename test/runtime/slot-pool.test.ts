// The slot pool grows as the work needs it (SPEC §10 run slots): runs that
// find no idle slot wait for one to come back, and a new process starts only
// when nothing is alive, when a run has waited about as long as a start
// takes, when a slot was retired, or when the executor does not reuse
// processes. The processes are real (a stand-in executor that exits when its
// stdin closes); the supervisor's part (the hello frame) is played by the test.
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { SlotPool, type Slot } from '../../src/runtime/slot-pool.js';

const entry = fileURLToPath(new URL('../fixtures/slots/idle-executor.mjs', import.meta.url));
const pools: SlotPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

function pool(maxRuns?: number): SlotPool {
  const p = new SlotPool({ command: process.execPath, entry, ...(maxRuns !== undefined ? { maxRuns } : {}) });
  pools.push(p);
  return p;
}

/** What the supervisor does for a run of a hello-saying executor: one run counted, hello seen. */
function runOn(slot: Slot): Slot {
  slot.runs++;
  slot.saidHello();
  return slot;
}

/** A slot that said hello `ms` after its spawn: the pool then takes a start to last about that long. */
async function slowStart(slot: Slot, ms = 800): Promise<Slot> {
  await new Promise((r) => setTimeout(r, ms));
  return runOn(slot);
}

const settled = async <T>(p: Promise<T>, ms: number): Promise<T | 'pending'> =>
  Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);

describe('SlotPool', () => {
  it('starts one slot for a burst of runs and hands it to each in turn', async () => {
    const p = pool();
    const first = await slowStart(await p.take('a.mjs'));
    // Three more runs at once while the first still runs: none starts a process yet.
    const waiting = [p.take('a.mjs'), p.take('a.mjs'), p.take('a.mjs')];
    expect(await settled(waiting[0]!, 50)).toBe('pending');
    expect(p.size).toBe(1);
    p.give(first, true);
    const second = await waiting[0]!;
    expect(second).toBe(first);
    expect(second.started.child?.pid).toBe(first.started.child?.pid);
    expect(p.size).toBeLessThanOrEqual(2);
  });

  it('grows by one slot at a time once a run has waited a share of what a start took, never past the runs at once', async () => {
    const p = pool();
    const first = runOn(await p.take('a.mjs'));
    const waiting = [p.take('a.mjs'), p.take('a.mjs'), p.take('a.mjs')];
    // Nothing comes back: the oldest waiter gets a new process after a share of one start's time.
    const second = await waiting[0]!;
    expect(second).not.toBe(first);
    expect(p.size).toBe(2);
    // The next grows only after that start said hello (one start for waiters at a time).
    expect(await settled(waiting[1]!, 300)).toBe('pending');
    runOn(second);
    const third = runOn(await waiting[1]!);
    const fourth = runOn(await waiting[2]!);
    expect(new Set([first, second, third, fourth]).size).toBe(4);
    // Four runs at once: four slots at most.
    expect(p.size).toBe(4);
    for (const s of [first, second, third, fourth]) p.give(s, true);
    const again = await Promise.all([p.take('a.mjs'), p.take('a.mjs')]);
    expect(p.size).toBe(4);
    expect(again.every((s) => [first, second, third, fourth].includes(s))).toBe(true);
  });

  it('replaces a retired slot at once for a waiting run', async () => {
    const p = pool(1);
    // Reuse off (one run per slot): every run starts its own process at once.
    const a = runOn(await p.take('a.mjs'));
    const b = runOn(await p.take('a.mjs'));
    expect(a).not.toBe(b);
    p.give(a, true);
    p.give(b, true);
    await Promise.all([a.started.ended, b.started.ended]);
    expect(p.size).toBe(0);

    const q = pool();
    const c = await slowStart(await q.take('a.mjs'));
    const waiting = q.take('b.mjs');
    // Not reusable (a crash, a timeout): the waiting run gets a new process of its own script.
    q.give(c, false);
    const d = await settled(waiting, 2_000);
    expect(d).not.toBe('pending');
    expect((d as Slot).script).toBe('b.mjs');
    expect(q.size).toBe(1);
  });

  it('an executor that never says hello gets a process per run, started at once', async () => {
    const p = pool();
    const a = await p.take('a.mjs');
    a.runs++; // its run ended without a hello
    p.give(a, false);
    const [b, c] = await Promise.all([settled(p.take('a.mjs'), 100), settled(p.take('a.mjs'), 100)]);
    expect(b).not.toBe('pending');
    expect(c).not.toBe('pending');
  });

  it('a run interrupted while waiting gets a slot at once (its supervisor then stops it)', async () => {
    const p = pool();
    await slowStart(await p.take('a.mjs'));
    const ac = new AbortController();
    const waiting = p.take('a.mjs', ac.signal);
    expect(await settled(waiting, 50)).toBe('pending');
    ac.abort();
    expect(await settled(waiting, 100)).not.toBe('pending');
  });
});
