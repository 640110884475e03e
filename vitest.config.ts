import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/unit/**/*.test.ts', 'tests/integration/**/*.test.ts', 'tests/reliability/**/*.test.ts'],
    // generous: the suite must hold on a loaded 2-core machine (a build under load takes minutes, not seconds)
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
