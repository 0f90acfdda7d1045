import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'extensions/*/**/*.test.ts', 'tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Every server a test starts checks its answers against the HTTP contract (packages/api).
    env: { TESSERA_CHECK_ANSWERS: '1' },
  },
});
