import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/cluster/**/*.test.ts'],
    testTimeout: 90 * 60_000,
    hookTimeout: 90 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
