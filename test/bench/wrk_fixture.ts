// Records for the report and comparison tests: a wrk result (`rps` requests per second over
// `seconds`, no errors, a fixed latency profile) and a throughput record around it.

import type { ThroughputRecord } from '../../bench/lib/measure.js';
import type { WrkResult } from '../../bench/lib/wrk.js';

export function wrkResult(rps: number, seconds: number): WrkResult {
  return {
    requests: rps * seconds,
    durationUs: seconds * 1_000_000,
    bytes: 0,
    requestsPerSec: rps,
    errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
    latency: { minUs: 1, maxUs: 400, meanUs: 100, stdevUs: 1, p50Us: 100, p90Us: 200, p99Us: 300, p999Us: 400 },
    targetRate: null,
    late: 0,
  };
}

/** A throughput record of `config` in `round`: `rps` req/s for `seconds`, `cpu` µs per request, upstream 5 µs; `extra` overrides. */
export function throughputRecord(
  config: string,
  round: number,
  rps: number,
  cpu: number,
  seconds: number,
  extra: Partial<ThroughputRecord> = {},
): ThroughputRecord {
  return {
    kind: 'throughput',
    round,
    config,
    startedAt: '',
    variant: 'GET /',
    connections: 50,
    durationS: seconds,
    wrk: wrkResult(rps, seconds),
    cpuUs: cpu * rps * seconds,
    cpuUsPerReq: cpu,
    upstreamCpuUsPerReq: 5,
    ...extra,
  };
}
