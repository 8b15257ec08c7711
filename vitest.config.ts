import { defineConfig } from 'vitest/config';

// Tests run against real sockets and real worker threads; e2e tests start the built CLI
// (dist/), so `npm test` builds first. The machine has 2 cores and many tests start
// multi-worker sidecars, so files run one at a time within a lane, and two lanes run side by
// side:
// - "wait": suites whose time is mostly waiting on real clocks — etcd leases and elections,
//   DNS TTLs, slowloris timeouts, certificate rotation and signer outages, tunnel drains, span
//   export intervals, network namespaces — and which use little CPU while they wait;
// - "main": everything else.
// Every test binds port 0 and reads only its own processes, so the lanes share nothing.
// `npm test` (scripts/test.mjs) runs each lane as its own vitest process: vitest 4 queues the
// files of one-worker projects into one line. `npx vitest run <files>` runs them one at a time.
// The lanes only overlap waits with work: a file still sees the other lane's load, which the
// tests tolerate as they tolerate a busy CI machine (no timing thresholds).
const wait = [
  'test/discovery/**/*.test.ts',
  'test/intercept/**/*.test.ts',
  'test/edge/safety.test.ts',
  'test/mesh/**/*.test.ts',
  'test/websocket/tunnel.test.ts',
  'test/tracing/**/*.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // expect.poll waits for a state, it does not time it: a poll passes as soon as its condition
    // holds, and the 1 s default failed good runs on a loaded CI machine (an echo through the TCP
    // proxy at load 10). A poll that needs a tighter bound says so itself.
    expect: { poll: { timeout: 10_000 } },
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'main', include: ['test/**/*.test.ts'], exclude: wait, fileParallelism: false },
      },
      {
        extends: true,
        test: { name: 'wait', include: wait, fileParallelism: false },
      },
    ],
  },
});
