/**
 * The promotion rules as pure functions (SPEC §8): for any set of runs, in any
 * order, the partition ends at the same authoritative run — the valid one with
 * the latest finalized_at, then the larger run_id — or failed when none is valid.
 */
import { describe, expect, it } from 'vitest';
import { compareAuthority, nextPartitionState, runRole, type AuthorityKey } from '../../src/ledger/promotion.js';
import type { PartitionState, RunHistoryInput } from '../../src/ledger/types.js';
import { invalidInput, runInput } from './conformance.js';

/** A tiny deterministic PRNG so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function replay(runs: readonly RunHistoryInput[]): PartitionState | undefined {
  let state: PartitionState | undefined;
  for (const run of runs) {
    const cur = state?.current_run_id == null ? undefined : runs.find((r) => r.run_id === state!.current_run_id);
    const key: AuthorityKey | undefined = cur === undefined ? undefined : { run_id: cur.run_id, finalized_at: cur.finalized_at! };
    state = nextPartitionState(state, key, run, '2024-06-11T00:00:00.000Z').state;
  }
  return state;
}

describe('promotion rules', () => {
  it('compareAuthority orders by finalized_at, then run_id', () => {
    expect(compareAuthority({ run_id: 'a', finalized_at: '2024-01-02T00:00:00.000Z' }, { run_id: 'z', finalized_at: '2024-01-01T00:00:00.000Z' })).toBeGreaterThan(0);
    expect(compareAuthority({ run_id: 'b', finalized_at: '2024-01-01T00:00:00.000Z' }, { run_id: 'a', finalized_at: '2024-01-01T00:00:00.000Z' })).toBeGreaterThan(0);
    expect(compareAuthority({ run_id: 'a', finalized_at: '2024-01-01T00:00:00.000Z' }, { run_id: 'a', finalized_at: '2024-01-01T00:00:00.000Z' })).toBe(0);
  });

  it('runRole: a tree of one is standalone; a child or a run naming another root is a tree member', () => {
    expect(runRole({ run_id: 'r', root_run_id: 'r', depth: 0 } as never)).toBe('standalone');
    expect(runRole({ run_id: 'c', root_run_id: 'r', depth: 1 } as never)).toBe('tree_member');
    expect(runRole({ run_id: 'c', root_run_id: 'r', depth: 0 } as never)).toBe('tree_member');
  });

  it('500 random run sets in random orders: the result never depends on the order', () => {
    const rand = rng(42);
    for (let trial = 0; trial < 500; trial++) {
      const n = 1 + Math.floor(rand() * 7);
      const runs = Array.from({ length: n }, (_, i) => {
        const over = { finalized_at: new Date(Date.UTC(2024, 5, 10, 0, Math.floor(rand() * 4))).toISOString() };
        return rand() < 0.4 ? invalidInput('ds', `r${i}`, over) : runInput('ds', `r${i}`, over);
      });
      const valid = runs.filter((r) => r.validation_status === 'valid');
      const best = valid.reduce<RunHistoryInput | undefined>((b, r) => (b === undefined || compareAuthority({ run_id: r.run_id, finalized_at: r.finalized_at! }, { run_id: b.run_id, finalized_at: b.finalized_at! }) > 0 ? r : b), undefined);
      for (let k = 0; k < 5; k++) {
        const order = [...runs].sort(() => rand() - 0.5);
        const end = replay(order)!;
        expect(end.attempts).toBe(n);
        expect(end.status).toBe(best === undefined ? 'failed' : 'success');
        expect(end.current_run_id).toBe(best?.run_id ?? null);
      }
    }
  });
});
