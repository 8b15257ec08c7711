// The dashboard's main-thread sampler (src/admin/sampler.ts): one second of a busy sidecar — two
// workers' deltas of 20 cells (4 listeners × 5 routes over 5 clusters), each with ~280 latency
// slots, then the tick that closes the second into the ring of 29 names — and the answer to a
// page that opens with the ring full (GET /dashboard/series, 900 samples of those 29 names).

import type { Bench } from 'tinybench';
import { SAMPLE_CAPACITY, TrafficSampler } from '../../src/admin/sampler.js';
import type { CellDelta, StatsDelta } from '../../src/stats/delta.js';
import { LatencyRecorder } from '../../src/stats/recorder.js';

export const title = 'dashboard sampler: one second of 2 workers × 20 cells, full-ring answer';

/** A worker's delta: 500 requests per cell, 1 % 5xx, latencies spread over 0.2–20 ms. */
function workerDelta(workerId: number): StatsDelta {
  const cells: CellDelta[] = [];
  let seed = workerId;
  for (let l = 0; l < 4; l++) {
    for (let r = 0; r < 5; r++) {
      const rec = new LatencyRecorder();
      for (let i = 0; i < 300; i++) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        rec.record(200 + (seed % 20_000));
      }
      const latency = rec.takeSparse();
      cells.push({
        listener: `l${l}`,
        route: `r${r}`,
        cluster: `c${(l * 5 + r) % 5}`,
        requests: 500,
        classes: [0, 0, 495, 0, 0, 5],
        bytesIn: 0,
        bytesOut: 0,
        durationSumMicros: 0,
        latency,
      });
    }
  }
  return { workerId, cells, clusters: [] };
}

export function register(bench: Bench): void {
  const deltas = [workerDelta(1), workerDelta(2)];
  const live = new TrafficSampler(0);
  let now = 0;
  bench.add('record 2 deltas + tick (one second)', () => {
    for (const d of deltas) live.record(d);
    now += 1000;
    live.tick(now);
  });
  const full = new TrafficSampler(0);
  for (let i = 1; i <= SAMPLE_CAPACITY; i++) {
    for (const d of deltas) full.record(d);
    full.tick(i * 1000);
  }
  bench.add('GET /dashboard/series of a full ring (toJSON + JSON.stringify)', () => {
    JSON.stringify(full.toJSON());
  });
}
