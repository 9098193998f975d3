/**
 * Bounded samples of the storage fuzzers (test/fuzz/storage-targets.ts) in CI:
 * manifests and claims, and record lines through the validator and the
 * reader. The full campaign is `npm run fuzz` (docs/benchmarks.md). The seed
 * is printed so a failure replays with
 * `npm run fuzz -- --target <name> --seed <seed> --runs <n>`.
 */
import { describe, expect, it } from 'vitest';
import { fuzzInWorker, LOADED_MACHINE } from './run-in-worker.js';
import { sampleSeed } from './sample-seed.js';

// Sized so that the rarest error class is expected several times over (about 1 input in 600 for
// manifests, 1 in 50 for record lines), so a fresh seed does not miss one by chance.
const SAMPLES: ReadonlyArray<readonly [target: string, inputs: number, what: string]> = [
  ['manifest', 6_000, 'manifests and claims through parseManifest, parseClaim, the list row and the validator'],
  ['records', 1_000, 'record lines through the validator and the reader, split across chunks of any size'],
];

describe.each(SAMPLES)('%s fuzzing', (target, inputs, what) => {
  it(`${what}: no input crashes, hangs or throws an undocumented error, and every error class is reached`, async () => {
    const seed = sampleSeed();
    console.log(`fuzz ${target}: seed ${seed}`);
    const r = await fuzzInWorker({ target, seed, numRuns: inputs, ...LOADED_MACHINE });
    expect(r.failure, `seed ${seed}`).toBeUndefined();
    expect(r.inputs).toBe(inputs);
    expect(r.missing, `labels never reached with seed ${seed}: ${JSON.stringify(r.counts)}`).toEqual([]);
  }, LOADED_MACHINE.testTimeoutMs);
});
