import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/e2e/**/*.test.ts'],
    testTimeout: 60 * 60_000,
    hookTimeout: 60 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
