/**
 * A clock that moves only when a test says so, shared by every frontier
 * client of a test so lease expiry is exact and never waits on real time.
 */
import type { Clock } from '../../src/scheduler/frontier.js';

export interface FakeClock extends Clock {
  /** Moves time forward by `ms`. */
  advance(ms: number): void;
}

/** A fake clock starting at `start` ms since the epoch (default 2026-01-01T00:00:00Z). */
export function fakeClock(start = Date.UTC(2026, 0, 1)): FakeClock {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      if (ms < 0) throw new Error('a fake clock never goes back');
      t += ms;
    },
  };
}
