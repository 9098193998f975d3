/**
 * A bounded sample of the frame fuzzer (test/fuzz/frames-target.ts) in CI; the
 * full campaign is `npm run fuzz` (docs/benchmarks.md). The seed is printed so a
 * failure replays with `npm run fuzz -- --target frames --seed <seed> --runs 3000`.
 */
import { describe, expect, it } from 'vitest';
import { fuzzInWorker, LOADED_MACHINE } from './run-in-worker.js';
import { sampleSeed } from './sample-seed.js';

describe('frame fuzzing (mutated valid frames through decoder, shape and run checks)', () => {
  it('no input crashes, hangs or throws an undocumented error, and every error class is reached', async () => {
    const seed = sampleSeed();
    console.log(`fuzz frames: seed ${seed}`);
    const r = await fuzzInWorker({ target: 'frames', seed, numRuns: 3_000, ...LOADED_MACHINE });
    expect(r.failure, `seed ${seed}`).toBeUndefined();
    expect(r.inputs).toBe(3_000);
    expect(r.missing, `labels never reached with seed ${seed}: ${JSON.stringify(r.counts)}`).toEqual([]);
  }, LOADED_MACHINE.testTimeoutMs);
});
