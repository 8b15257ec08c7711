// Active health checks (issue 7), run once per sidecar on the main thread: an HTTP/1.1 GET per
// endpoint every `intervalMs` (±10% jitter; HTTP/2 for `protocol: http2` clusters, which may check
// with the gRPC health-checking protocol instead of a GET; a bare TCP connect for `tcp` checks;
// mTLS for `tls` clusters),
// thresholds flip the endpoint's health and report it through one callback; the caller
// broadcasts to workers. Touches only node:http, node:https, node:http2, node:net, node:tls and timers.

import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { ClusterSpec, EndpointSpec, HealthCheckSpec } from '../config/types.js';
import { clientTlsOptions } from '../tls/contexts.js';
import type { TlsMaterial } from '../tls/material.js';
import { updateClusters } from './clusters.js';
import { formatGrpcTimeout } from '../grpc/wire.js';
import { encodeHealthCheckRequest, grpcCheckVerdict } from './grpc_health.js';

export interface HealthCheckerOptions {
  /** Uniform in [0, 1); Math.random by default. Drives the interval jitter. */
  jitterRng?: () => number;
  /** This sidecar's certificate, for the checks of `tls` clusters; without one they fail. */
  material?: () => TlsMaterial | null;
}

export interface HealthCheckState {
  cluster: string;
  address: string;
  healthy: boolean;
  consecutive_failures: number;
  consecutive_successes: number;
  /** ISO time the last check finished; null before the first. */
  last_checked: string | null;
  /** Why the last check failed; null before the first check and after a pass. */
  last_error: string | null;
}

export const USER_AGENT = 'outrigger-health-check';

/** Share of the interval each delay may move either way (Envoy's interval_jitter_percent, 10%). */
export const JITTER_FRACTION = 0.1;

/** Delay before the next check: intervalMs × [0.9, 1.1). */
export function jitteredDelayMs(intervalMs: number, rng: () => number): number {
  return intervalMs * (1 - JITTER_FRACTION + 2 * JITTER_FRACTION * clampUnit(rng()));
}

/** Delay before an endpoint's first check: within the first 10% of an interval, so checks start
 *  soon but the endpoints of a cluster do not all fire at once. */
export function firstDelayMs(intervalMs: number, rng: () => number): number {
  return intervalMs * JITTER_FRACTION * clampUnit(rng());
}

function clampUnit(x: number): number {
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 1) : 0.5;
}

/** One endpoint under checks. `live` turns false when it is removed or the checker closes. */
interface Target {
  readonly cluster: string;
  readonly address: string;
  endpoint: EndpointSpec;
  spec: HealthCheckSpec;
  healthy: boolean;
  failures: number;
  successes: number;
  lastChecked: string | null;
  lastError: string | null;
  /** The cluster's protocol and TLS: the checks speak them. */
  protocol: 'http1' | 'http2';
  tls: ClusterSpec['tls'];
  timer: NodeJS.Timeout | null;
  inflight: { destroy(): void } | null;
  live: boolean;
}

export class HealthChecker {
  /** cluster name → address → target. */
  private readonly clusters = new Map<string, Map<string, Target>>();
  private readonly rng: () => number;
  private readonly material: () => TlsMaterial | null;
  private closed = false;

  constructor(
    private readonly onChange: (cluster: string, address: string, healthy: boolean) => void,
    opts: HealthCheckerOptions = {},
  ) {
    this.rng = opts.jitterRng ?? Math.random;
    this.material = opts.material ?? (() => null);
  }

  /** Applies a config version. Endpoints that stay keep their state and counters; a changed
   *  interval re-times the next check; removed endpoints and clusters stop without a callback;
   *  a cluster whose healthCheck became null reports its unhealthy endpoints healthy, then stops. */
  update(clusters: readonly ClusterSpec[]): void {
    if (this.closed) return;
    updateClusters(clusters, this.clusters, {
      spec: (c) => c.healthCheck,
      apply: (c, spec, old) => this.applyCluster(c, spec, old),
      drop: (name, old, report) => this.dropCluster(name, old, report),
    });
  }

  states(): HealthCheckState[] {
    const out: HealthCheckState[] = [];
    for (const targets of this.clusters.values()) {
      for (const t of targets.values()) {
        out.push({
          cluster: t.cluster,
          address: t.address,
          healthy: t.healthy,
          consecutive_failures: t.failures,
          consecutive_successes: t.successes,
          last_checked: t.lastChecked,
          last_error: t.lastError,
        });
      }
    }
    return out;
  }

  /** Stops every timer and aborts in-flight checks; no callback fires afterwards. */
  close(): void {
    this.closed = true;
    for (const targets of this.clusters.values()) {
      for (const t of targets.values()) stop(t);
    }
    this.clusters.clear();
  }

  private applyCluster(
    { name, endpoints, protocol, tls }: Pick<ClusterSpec, 'name' | 'endpoints' | 'protocol' | 'tls'>,
    spec: HealthCheckSpec,
    old: Map<string, Target> | undefined,
  ): void {
    const next = new Map<string, Target>();
    for (const ep of endpoints) {
      if (next.has(ep.address)) continue;
      const kept = old?.get(ep.address);
      if (kept !== undefined) {
        const retime = kept.spec.intervalMs !== spec.intervalMs;
        kept.endpoint = ep;
        kept.spec = spec;
        kept.protocol = protocol;
        kept.tls = tls;
        // An in-flight check schedules the next one with the new spec when it finishes.
        if (retime && kept.timer !== null) {
          clearTimeout(kept.timer);
          this.schedule(kept, jitteredDelayMs(spec.intervalMs, this.rng));
        }
        next.set(ep.address, kept);
      } else {
        const t: Target = {
          cluster: name,
          address: ep.address,
          endpoint: ep,
          spec,
          healthy: true,
          failures: 0,
          successes: 0,
          lastChecked: null,
          lastError: null,
          protocol,
          tls,
          timer: null,
          inflight: null,
          live: true,
        };
        next.set(ep.address, t);
        this.schedule(t, firstDelayMs(spec.intervalMs, this.rng));
      }
    }
    if (old !== undefined) {
      for (const [address, t] of old) if (!next.has(address)) stop(t);
    }
    this.clusters.set(name, next);
  }

  private dropCluster(name: string, targets: Map<string, Target>, reportHealthy: boolean): void {
    this.clusters.delete(name);
    for (const t of targets.values()) {
      stop(t);
      if (reportHealthy && !t.healthy) this.onChange(t.cluster, t.address, true);
    }
  }

  private schedule(t: Target, delayMs: number): void {
    t.timer = setTimeout(() => {
      t.timer = null;
      this.check(t);
    }, delayMs);
    t.timer.unref();
  }

  private check(t: Target): void {
    const finish = (error: string | null): void => {
      t.inflight = null;
      if (!t.live) return;
      this.record(t, error);
      if (t.live) this.schedule(t, jitteredDelayMs(t.spec.intervalMs, this.rng));
    };
    const secure = this.connectTls(t);
    if (typeof secure === 'string') finish(secure);
    else if (t.spec.tcp) this.checkTcp(t, secure, finish);
    else if (t.protocol === 'http2') this.checkH2(t, secure, finish);
    else this.checkH1(t, secure, finish);
  }

  /** How a check of `t` connects: null = plaintext, TLS options for a `tls` cluster (this
   *  sidecar's certificate, the server's SPIFFE ID checked as for requests), or why it cannot. */
  private connectTls(t: Target): tls.ConnectionOptions | null | string {
    if (t.tls === null) return null;
    const m = this.material();
    if (m === null) return 'no certificate loaded for mTLS';
    return clientTlsOptions(m, t.tls.identities);
  }

  /** The TCP check: a fresh connection (with its mTLS handshake and identity check on a `tls` cluster) that is closed once made. */
  private checkTcp(t: Target, secure: tls.ConnectionOptions | null, finish: (error: string | null) => void): void {
    const { endpoint, spec } = t;
    const socket =
      secure === null ? net.connect({ host: endpoint.host, port: endpoint.port }) : tls.connect({ host: endpoint.host, port: endpoint.port, ...secure });
    t.inflight = socket;
    const end = (error: string | null): void => {
      clearTimeout(deadline);
      socket.removeAllListeners('error');
      socket.on('error', noop);
      socket.destroy();
      finish(error);
    };
    const deadline = setTimeout(() => end(`timeout after ${spec.timeoutMs} ms`), spec.timeoutMs);
    deadline.unref();
    socket.once(secure === null ? 'connect' : 'secureConnect', () => end(null));
    socket.once('error', (err: Error) => end(describe(err)));
  }

  /** The HTTP/1.1 check: a GET of `path`, on a fresh connection (TLS for a `tls` cluster). */
  private checkH1(t: Target, secure: tls.ConnectionOptions | null, finish: (error: string | null) => void): void {
    const { endpoint, spec } = t;
    let settled = false;
    const end = (error: string | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      finish(error);
    };

    // A fresh connection per check (agent: false sends `connection: close`): every check also
    // proves the endpoint accepts connections (and, with TLS, completes a full handshake), and
    // nothing pooled outlives a reload.
    const options: https.RequestOptions = {
      host: endpoint.host,
      port: endpoint.port,
      method: 'GET',
      path: spec.path,
      agent: false,
      headers: { host: endpoint.address, 'user-agent': USER_AGENT },
    };
    const req = secure === null ? http.request(options) : https.request({ ...options, ...secure });
    t.inflight = req;
    const deadline = setTimeout(() => {
      end(`timeout after ${spec.timeoutMs} ms`);
      req.destroy();
    }, spec.timeoutMs);
    deadline.unref();

    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      // Like Envoy, the verdict waits for the whole response; a body that stalls times out.
      res.on('end', () => end(status >= 200 && status < 300 ? null : `HTTP ${status}`));
      res.on('error', (err) => end(describe(err)));
      res.on('close', () => end('connection reset: closed before the response ended'));
      res.resume();
    });
    req.on('error', (err) => end(describe(err)));
    req.end();
  }

  /** The HTTP/2 check: a fresh session per check — h2c with prior knowledge, or TLS with ALPN h2
   *  for a `tls` cluster — one request (a GET of `path`, or a gRPC Health/Check call), then the
   *  session closes. */
  private checkH2(t: Target, secure: tls.ConnectionOptions | null, finish: (error: string | null) => void): void {
    const { endpoint, spec } = t;
    const host = endpoint.host.includes(':') ? `[${endpoint.host}]` : endpoint.host;
    const session = secure === null ? http2.connect(`http://${host}:${endpoint.port}`) : http2.connect(`https://${host}:${endpoint.port}`, secure);
    let done = false;
    const end = (error: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      session.destroy();
      finish(error);
    };
    t.inflight = session;
    const deadline = setTimeout(() => end(`timeout after ${spec.timeoutMs} ms`), spec.timeoutMs);
    deadline.unref();
    session.on('error', (err: Error) => end(describe(err)));
    session.on('close', () => end('connection reset: closed before the response ended'));
    let req: http2.ClientHttp2Stream;
    try {
      req = spec.grpc === null ? requestGet(session, endpoint, spec.path) : requestGrpcCheck(session, endpoint, spec.path, spec.grpc.service, spec.timeoutMs);
    } catch (err) {
      end(describe(err as Error));
      return;
    }
    if (spec.grpc === null) awaitGet(req, end);
    else awaitGrpcCheck(req, end);
    req.on('error', (err: Error) => end(describe(err)));
  }

  private record(t: Target, error: string | null): void {
    t.lastChecked = new Date().toISOString();
    t.lastError = error;
    if (error === null) {
      t.failures = 0;
      t.successes++;
      if (!t.healthy && t.successes >= t.spec.healthyThreshold) {
        t.healthy = true;
        this.onChange(t.cluster, t.address, true);
      }
    } else {
      t.successes = 0;
      t.failures++;
      if (t.healthy && t.failures >= t.spec.unhealthyThreshold) {
        t.healthy = false;
        this.onChange(t.cluster, t.address, false);
      }
    }
  }
}

function requestGet(session: http2.ClientHttp2Session, endpoint: EndpointSpec, path: string): http2.ClientHttp2Stream {
  return session.request({ ':method': 'GET', ':path': path, ':authority': endpoint.address, 'user-agent': USER_AGENT }, { endStream: true });
}

/** A 2xx answer, read to its end, passes. */
function awaitGet(req: http2.ClientHttp2Stream, end: (error: string | null) => void): void {
  let status = 0;
  req.on('response', (h) => (status = Number(h[':status'])));
  req.on('end', () => end(status >= 200 && status < 300 ? null : `HTTP ${status}`));
  req.on('close', () => end(status === 0 ? 'stream reset before the response' : 'stream reset: closed before the response ended'));
  req.resume();
}

/** A unary grpc.health.v1.Health/Check call (at `path`) for `service`. */
function requestGrpcCheck(
  session: http2.ClientHttp2Session,
  endpoint: EndpointSpec,
  path: string,
  service: string,
  timeoutMs: number,
): http2.ClientHttp2Stream {
  const req = session.request({
    ':method': 'POST',
    ':path': path,
    ':authority': endpoint.address,
    'content-type': 'application/grpc',
    te: 'trailers',
    'user-agent': USER_AGENT,
    // The server may stop working on a check the checker has given up on.
    'grpc-timeout': formatGrpcTimeout(timeoutMs),
  });
  req.end(encodeHealthCheckRequest(service));
  return req;
}

/** A HealthCheckResponse is a few bytes; a body beyond this is not one. */
const MAX_GRPC_CHECK_BODY_BYTES = 4096;

/** grpc-status comes in the trailers, or in the headers of a trailers-only answer (an error). */
function awaitGrpcCheck(req: http2.ClientHttp2Stream, end: (error: string | null) => void): void {
  let head: http2.IncomingHttpHeaders | null = null;
  let trailers: http2.IncomingHttpHeaders = {};
  const parts: Buffer[] = [];
  let size = 0;
  req.on('response', (h) => (head = h));
  req.on('trailers', (h: http2.IncomingHttpHeaders) => (trailers = h));
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > MAX_GRPC_CHECK_BODY_BYTES) end(`response body over ${MAX_GRPC_CHECK_BODY_BYTES} bytes`);
    else parts.push(chunk);
  });
  req.on('end', () => {
    if (head === null) return;
    const status = Number(head[':status']);
    if (status !== 200) return end(`HTTP ${status}`);
    const at = trailers['grpc-status'] !== undefined ? trailers : head;
    end(grpcCheckVerdict(headerValue(at['grpc-status']), headerValue(at['grpc-message']), Buffer.concat(parts)));
  });
  req.on('close', () => end(head === null ? 'stream reset before the response' : 'stream reset: closed before the response ended'));
}

function noop(): void {}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function stop(t: Target): void {
  t.live = false;
  if (t.timer !== null) clearTimeout(t.timer);
  t.timer = null;
  t.inflight?.destroy();
  t.inflight = null;
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  // A stream cancelled because its session failed (connect, TLS, identity): the session's error says why.
  if (code === 'ERR_HTTP2_STREAM_CANCEL' && err.cause instanceof Error) return describe(err.cause);
  switch (code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return `connect failed: ${code}`;
    case 'ECONNRESET':
    case 'EPIPE':
      return `connection reset: ${code}`;
    default:
      // Our own errors (IdentityMismatchError) already open with their code.
      return code !== undefined && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message;
  }
}
