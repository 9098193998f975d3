import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserHandle } from '../../src/executor/browser.js';
import { events, fixture, rssKiB, sharedBrowser, startExecutor } from '../_harness/executor-harness.js';

let browser: { handle: BrowserHandle; wsEndpoint: string };
beforeAll(async () => {
  browser = await sharedBrowser();
});
afterAll(async () => {
  await browser?.handle.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const progressOf = (stderr: string): number => {
  const all = [...stderr.matchAll(/progress (\d+)/g)];
  return all.length ? Number(all.at(-1)![1]) : 0;
};

describe('backpressure (SPEC §3)', () => {
  it('when the runtime stops reading, the pending emit stays pending and memory stays flat; reading again lets the run finish', async () => {
    const count = 3000;
    const bytes = 16 * 1024;
    const s = startExecutor({ run_id: 'run-bp', attempt: 1, job: { count, bytes }, browser_ws_endpoint: browser.wsEndpoint }, { args: [fixture('flood.ts')] });
    const stdout = s.child.stdout!;

    // Let the flood start, then stop reading, as a runtime stuck on a slow disk would.
    while (progressOf(s.stderr()) < 20) await sleep(20);
    stdout.pause();

    // Wait until the script is blocked: its progress stops rising.
    let last = -1;
    let stalled = progressOf(s.stderr());
    while (stalled !== last) {
      last = stalled;
      await sleep(400);
      stalled = progressOf(s.stderr());
    }
    const rssAtStall = await rssKiB(s.child.pid!);
    await sleep(2000);
    const progressLater = progressOf(s.stderr());
    const rssLater = await rssKiB(s.child.pid!);

    // Beyond what the runtime read before it stopped, only what fits in the
    // pipe and the streams' buffers got through: far from all 3000 items
    // (48 MB). (On a fast machine the runtime reads hundreds of items in the
    // 20 ms before it stops, so the bound is on what it has not read.)
    const read = events(s.frames).length;
    expect(stalled - read).toBeLessThan(200);
    expect(stalled).toBeLessThan(count / 2);
    expect(progressLater).toBe(stalled);
    // A hidden queue would keep accepting 16 KiB items: tens of MB in two seconds.
    expect(rssLater - rssAtStall).toBeLessThan(4 * 1024);

    stdout.resume();
    const run = await s.done;
    expect(run.code).toBe(0);
    expect(run.decodeError).toBeUndefined();
    const evs = events(run.frames);
    expect(evs).toHaveLength(count + 1);
    expect(evs.map((e) => e.seq)).toEqual(Array.from({ length: count + 1 }, (_, i) => i + 1));
    expect(progressOf(run.stderr)).toBe(count);
  });
});
