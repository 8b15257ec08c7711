// autocannon, programmatic, as users run it: req/s and latency as a Node client sees them.
// It runs inside the harness process, so its own CPU is not charged to the proxy.

import autocannon from 'autocannon';

export interface AutocannonRun {
  readonly requestsPerSec: number;
  readonly requests: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
}

export async function runAutocannon(opts: { url: string; connections: number; durationS: number; method?: string; body?: string }): Promise<AutocannonRun> {
  const r = await autocannon({
    url: opts.url,
    connections: opts.connections,
    duration: opts.durationS,
    timeout: 5,
    ...(opts.method !== undefined ? { method: opts.method } : {}),
    ...(opts.body !== undefined ? { body: opts.body } : {}),
  });
  return {
    requestsPerSec: r.requests.average,
    requests: r.requests.total,
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    latencyMaxMs: r.latency.max,
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
  };
}
