import { defineConfig } from 'vitest/config';

// Suites that start workers run one file at a time (they compete for the machine's two cores), with
// timeouts generous enough for 10-25 ms scheduler stalls.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});
