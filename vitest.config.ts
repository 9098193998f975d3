import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/_harness/global-setup.ts'],
    // A bound for a hung test, not a speed target (those live in bench/): a run that takes 10 s
    // on a quiet machine took 50 s while the machine's two cores served a dozen processes.
    testTimeout: 180_000,
    hookTimeout: 240_000,
    // Browser and subprocess tests share two cores; more forks only thrash.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default', './test/_harness/summary-reporter.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './tsconfig.test.json' },
  },
});
