// Records for the report and comparison tests: a wrk result (`rps` requests per second over
// `seconds`, no errors, a fixed latency profile) and a throughput or paced-run record around it.

import type { RateRecord, ThroughputRecord } from '../../bench/lib/measure.js';
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

/** A paced run of `config` in `round`: 1000 req/s for 5 s, wrkResult's latency with `latency` over it, `late` late slots. */
export function rateRecord(
  config: string,
  round: number,
  latency: Partial<WrkResult['latency']>,
  late = 0,
  extra: Partial<Pick<RateRecord, 'cpuUsPerReq' | 'waitUsPerReq'>> = {},
): RateRecord {
  const w = wrkResult(1000, 5);
  return {
    kind: 'rate',
    round,
    config,
    startedAt: '',
    rate: 1000,
    connections: 16,
    durationS: 5,
    wrk: { ...w, latency: { ...w.latency, ...latency }, late },
    cpuUsPerReq: 0,
    ...extra,
  };
}
