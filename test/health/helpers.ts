// Test helpers for health checks and outlier detection: compiled cluster specs, a real
// node:http upstream whose answer can be switched (200, 503, hang), and bounded waits.

import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { ClusterSpec, EndpointSpec, HealthCheckSpec, OutlierSpec } from '../../src/config/types.js';

// Captured at import so that tests spying on the global setTimeout see only the code under test.
const realSetTimeout = globalThis.setTimeout;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => realSetTimeout(r, ms));
}

/** Polls `cond` every 5 ms until it is true; throws after `timeoutMs` naming `what`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

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
    pool: { connectionsPerWorker: 8, idleTimeoutMs: 60_000, connectTimeoutMs: 1000, maxPending: 0 },
    maxRequests: 1024,
    retryBudget: { percent: 20, minConcurrent: 3, minPerSecond: 10 },
    healthCheck: extra.healthCheck ?? null,
    outlier: extra.outlier ?? null,
    tls: null,
  };
}

export function healthCheck(over: Partial<HealthCheckSpec> = {}): HealthCheckSpec {
  return { path: '/healthz', intervalMs: 20, timeoutMs: 500, unhealthyThreshold: 3, healthyThreshold: 2, ...over };
}

export function outlier(over: Partial<OutlierSpec> = {}): OutlierSpec {
  return { consecutive5xx: 5, consecutiveGatewayFailure: 5, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 10, ...over };
}

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** A real upstream on 127.0.0.1:0 answering health checks as `mode` says. */
export interface Upstream {
  readonly port: number;
  readonly address: string;
  mode: 'ok' | 'fail' | 'hang';
  readonly requests: SeenRequest[];
  close(): Promise<void>;
}

export async function startUpstream(): Promise<Upstream> {
  const requests: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (up.mode === 'hang') return;
    res.writeHead(up.mode === 'ok' ? 200 : 503, { 'content-type': 'text/plain' });
    res.end(up.mode === 'ok' ? 'ok\n' : 'down\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const up: Upstream = {
    port,
    address: `127.0.0.1:${port}`,
    mode: 'ok',
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return up;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function refusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
