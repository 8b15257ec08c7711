// Per-request stats recording (src/stats/worker_stats.ts): the call every finished request
// makes, and the periodic delta the worker posts to the main thread.

import type { Bench } from 'tinybench';
import { WorkerStats } from '../../src/stats/worker_stats.js';

export const title = 'stats: record per request, take delta';

export function register(bench: Bench): void {
  const ws = new WorkerStats(1);
  const l = ws.listener('bench');
  const r = ws.route('bench', 'bench#0');
  const c = ws.cluster('up');
  let i = 0;
  bench.add('record 200', () => {
    i = (i + 1) & 1023;
    ws.record(l, r, c, 200, 100 + i, 80 + i, 120, 300);
  });
  bench.add('record + takeDelta every 1000', () => {
    i = (i + 1) & 1023;
    ws.record(l, r, c, i === 7 ? 503 : 200, 100 + i, 80 + i, 120, 300);
    if (i === 0) ws.takeDelta();
  });
}
