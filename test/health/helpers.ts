// Builders of compiled specs for the health-check and outlier tests (clusters, endpoints, check
// and detection settings). Upstreams and waits come from test/helpers/sidecar.ts.

import type { ClusterSpec, EndpointSpec, HealthCheckSpec, OutlierSpec } from '../../src/config/types.js';

export function endpoint(host: string, port: number): EndpointSpec {
  return { address: `${host}:${port}`, host, port, weight: 1 };
}

export function cluster(
  name: string,
  endpoints: readonly EndpointSpec[],
  extra: { healthCheck?: HealthCheckSpec | null; outlier?: OutlierSpec | null } = {},
): ClusterSpec {
  return {
    name,
    lb: 'round_robin',
    endpoints,
    pool: {
      connectionsPerWorker: 8,
      idleTimeoutMs: 60_000,
      connectTimeoutMs: 1000,
      keepaliveIntervalMs: 0,
      pipelineDepth: 16,
      pipelinePlaintext: 'off',
      maxPending: 0,
    },
    protocol: 'http1',
    maxRequests: 1024,
    retryBudget: { percent: 20, minConcurrent: 3, minPerSecond: 10 },
    healthCheck: extra.healthCheck ?? null,
    outlier: extra.outlier ?? null,
    tls: null,
    discovery: null,
  };
}

export function healthCheck(over: Partial<HealthCheckSpec> = {}): HealthCheckSpec {
  return { path: '/healthz', grpc: null, tcp: false, intervalMs: 20, timeoutMs: 500, unhealthyThreshold: 3, healthyThreshold: 2, ...over };
}

export function outlier(over: Partial<OutlierSpec> = {}): OutlierSpec {
  return { consecutive5xx: 5, consecutiveGatewayFailure: 5, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 10, ...over };
}
