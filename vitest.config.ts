import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/_harness/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Browser and subprocess tests share two cores; more forks only thrash.
    maxWorkers: 2,
    pool: 'forks',
    reporters: ['default', './test/_harness/summary-reporter.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './tsconfig.test.json' },
  },
});
