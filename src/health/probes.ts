// The health checks' probes (health_checker.ts schedules them and keeps the verdicts): one
// check of one endpoint over a fresh connection — a TCP connect, an HTTP/1.1 GET, an HTTP/2 GET
// or gRPC Health/Check — with mTLS for a `tls` cluster. Its own module so that node:http2,
// node:https, node:tls and the certificate code load with the first check, not in every sidecar
// (a sidecar without health checks never loads them). Touches only those modules and timers.

import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { ClusterSpec, EndpointSpec, HealthCheckSpec } from '../config/types.js';
import { formatGrpcTimeout } from '../grpc/wire.js';
import { clientTlsOptions } from '../tls/contexts.js';
import type { TlsMaterial } from '../tls/material.js';
import { encodeHealthCheckRequest, grpcCheckVerdict } from './grpc_health.js';

export const USER_AGENT = 'outrigger-health-check';

/** What a probe reads of an endpoint under checks, and where it leaves the check in flight (for a stop to destroy). */
export interface ProbeTarget {
  readonly endpoint: EndpointSpec;
  readonly spec: HealthCheckSpec;
  /** The cluster's protocol and TLS: the checks speak them. */
  readonly protocol: 'http1' | 'http2';
  readonly tls: ClusterSpec['tls'];
  inflight: { destroy(): void } | null;
}

/**
 * One check of `t`; `finish` gets null (passed) or why it failed, once. `material`: this
 * sidecar's certificate, for a `tls` cluster's check (without one it fails).
 */
export function probe(t: ProbeTarget, material: TlsMaterial | null, finish: (error: string | null) => void): void {
  const secure = connectTls(t, material);
  if (typeof secure === 'string') finish(secure);
  else if (t.spec.tcp) checkTcp(t, secure, finish);
  else if (t.protocol === 'http2') checkH2(t, secure, finish);
  else checkH1(t, secure, finish);
}

/** How a check of `t` connects: null = plaintext, TLS options for a `tls` cluster (this
 *  sidecar's certificate, the server's SPIFFE ID checked as for requests), or why it cannot. */
function connectTls(t: ProbeTarget, m: TlsMaterial | null): tls.ConnectionOptions | null | string {
  if (t.tls === null) return null;
  if (m === null) return 'no certificate loaded for mTLS';
  return clientTlsOptions(m, t.tls.identities);
}

/** The TCP check: a fresh connection (with its mTLS handshake and identity check on a `tls` cluster) that is closed once made. */
function checkTcp(t: ProbeTarget, secure: tls.ConnectionOptions | null, finish: (error: string | null) => void): void {
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
function checkH1(t: ProbeTarget, secure: tls.ConnectionOptions | null, finish: (error: string | null) => void): void {
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
function checkH2(t: ProbeTarget, secure: tls.ConnectionOptions | null, finish: (error: string | null) => void): void {
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
