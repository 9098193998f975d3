/** The seed of a CI fuzz sample: `QUARRY_FUZZ_SEED` to replay one, else a fresh one (printed by each test). */
export function sampleSeed(): number {
  const fixed = process.env.QUARRY_FUZZ_SEED;
  return fixed !== undefined && fixed !== '' ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
}
