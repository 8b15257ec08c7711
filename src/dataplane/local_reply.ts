// The one place where a ProxyError becomes a response (DESIGN.md §6): status from the code,
// `x-outrigger-error: <code>`, a short JSON body. Malformed requests also close the connection
// (whatever the client sends next cannot be trusted to be framed right). Every downstream (uWS,
// node:http, the raw-socket engines) writes what `localReply` renders; none builds its own.

import { localReplyBody, PUBLIC_MESSAGE, type ErrorCode, type ProxyError } from '../errors.js';
import { GrpcStatus, grpcMessageEncode } from '../grpc/wire.js';

const REASON: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  417: 'Expectation Failed',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A rendered local reply: what every engine writes for a ProxyError. */
export interface LocalReply {
  readonly status: number;
  readonly reason: string;
  /** Lower-case names, in order; Content-Length and Date are the engine's to add. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
  /** The connection closes after this reply (malformed requests and timeouts of the head). */
  readonly close: boolean;
}

/**
 * The reply to `err`. `grpc` (the request's content-type starts with `application/grpc`, see
 * isGrpcRequest): the gRPC shape instead, HTTP 200 with `grpc-status` and `grpc-message` and no
 * body (a trailers-only response on HTTP/2).
 */
export function localReply(err: ProxyError, requestId: string | null, detail: boolean, grpc = false): LocalReply {
  if (grpc) return grpcLocalReply(err, requestId, detail);
  const status = err.status;
  const headers: Array<readonly [string, string]> = [
    ['x-outrigger-error', err.code],
    ['content-type', 'application/json'],
  ];
  if (requestId !== null && requestId !== '') headers.push(['x-request-id', requestId]);
  return {
    status,
    reason: REASON[status] ?? 'Error',
    headers,
    body: localReplyBody(err, requestId, detail),
    close: status === 400 || status === 408 || status === 431,
  };
}

/**
 * The reply as raw HTTP/1.1 bytes (Content-Length, and Connection: close when the connection
 * closes after it: `close`, by default when the reply itself demands it), for engines that write
 * to the socket.
 */
export function localReplyBytes(r: LocalReply, date: string | null, close = r.close): string {
  let head = `HTTP/1.1 ${r.status} ${r.reason}\r\n`;
  for (const [name, value] of r.headers) head += `${name}: ${value}\r\n`;
  if (date !== null) head += `date: ${date}\r\n`;
  head += `content-length: ${Buffer.byteLength(r.body)}\r\n`;
  if (close) head += 'connection: close\r\n';
  return `${head}\r\n${r.body}`;
}

// ---- gRPC ------------------------------------------------------------------------------------

/** The grpc-status of each code's local reply: the whole mapping in one table. */
const GRPC_STATUS_OF: Readonly<Record<ErrorCode, number>> = Object.freeze({
  bad_request: GrpcStatus.Internal,
  headers_too_large: GrpcStatus.Internal,
  request_timeout: GrpcStatus.DeadlineExceeded,
  no_route: GrpcStatus.Unimplemented,
  unauthorized: GrpcStatus.PermissionDenied,
  rate_limited: GrpcStatus.ResourceExhausted,
  upstream_connect_failed: GrpcStatus.Unavailable,
  upstream_reset: GrpcStatus.Unavailable,
  upstream_protocol_error: GrpcStatus.Unavailable,
  upstream_tls_failed: GrpcStatus.Unavailable,
  upstream_identity_mismatch: GrpcStatus.Unavailable,
  no_healthy_endpoint: GrpcStatus.Unavailable,
  overflow: GrpcStatus.Unavailable,
  timeout: GrpcStatus.DeadlineExceeded,
  fault_injected: GrpcStatus.Unavailable, // by its configured HTTP status, below
  draining: GrpcStatus.Unavailable,
  internal_error: GrpcStatus.Internal,
  expectation_failed: GrpcStatus.Internal,
  upgrade_refused: GrpcStatus.PermissionDenied,
  destination_not_allowed: GrpcStatus.PermissionDenied,
});

/** gRPC's mapping of an HTTP status it did not expect (doc/http-grpc-status-mapping.md), for injected faults. */
function grpcStatusOfHttp(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.Internal;
    case 401:
      return GrpcStatus.Unauthenticated;
    case 403:
      return GrpcStatus.PermissionDenied;
    case 404:
      return GrpcStatus.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.Unavailable;
    default:
      return GrpcStatus.Unknown;
  }
}

export function grpcStatusOf(err: ProxyError): number {
  return err.code === 'fault_injected' ? grpcStatusOfHttp(err.status) : GRPC_STATUS_OF[err.code];
}

function grpcLocalReply(err: ProxyError, requestId: string | null, detail: boolean): LocalReply {
  const headers: Array<readonly [string, string]> = [
    ['content-type', 'application/grpc'],
    ['grpc-status', String(grpcStatusOf(err))],
    ['grpc-message', grpcMessageEncode(detail ? err.message : PUBLIC_MESSAGE[err.code])],
    ['x-outrigger-error', err.code],
  ];
  if (requestId !== null && requestId !== '') headers.push(['x-request-id', requestId]);
  return { status: 200, reason: 'OK', headers, body: '', close: err.status === 400 || err.status === 408 || err.status === 431 };
}
