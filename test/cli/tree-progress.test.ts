import { describe, expect, it } from 'vitest';
import { TreeProgress } from '../../src/cli/tree-progress.js';
import type { RunReport } from '../../src/runtime/report.js';
import type { FrontierCounters } from '../../src/scheduler/frontier.js';

const counters = (over: Partial<FrontierCounters>): FrontierCounters => ({
  admitted: 0, succeeded: 0, failed: 0, retried: 0, deduplicated: 0, not_executed_cap: 0, not_executed_depth: 0, running: 0, queued: 0, requeued: 0, ...over,
});

describe('the live progress line of a crawl tree', () => {
  it('shows runs done, running, queued and failed, items, pages per second and elapsed time', () => {
    const out: string[] = [];
    const p = new TreeProgress((t) => out.push(t), 'T1');
    p.runEnded({ items: 3 } as RunReport);
    p.runEnded({ items: 2 } as RunReport);
    p.counters(counters({ running: 2, queued: 7, failed: 1 }));
    expect(p.line()).toMatch(/^\[quarry\] tree T1: runs 2 done, 2 running, 7 queued, 1 failed; 5 items; [\d.]+ pages\/s; \d+s$/);
    p.stop();
    // Nothing was drawn yet, so stopping has nothing to clear.
    expect(out).toEqual([]);
  });
});
