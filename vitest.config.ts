import { defineConfig } from 'vitest/config';

// Tests run against real sockets and real worker threads; e2e tests start the built CLI
// (dist/), so `npm test` builds first. Files run one at a time: the machine has 2 cores and
// several tests start multi-worker sidecars.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
