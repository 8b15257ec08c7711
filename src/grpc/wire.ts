// gRPC on the wire (gRPC over HTTP/2, https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md),
// for every layer that meets it: the status codes, what makes a request gRPC (its content-type),
// the `grpc-timeout` request field (`TimeoutValue TimeoutUnit`, at most 8 ASCII digits then one of
// H M S m u n: the exchange bounds its route deadline by it and the HTTP/2 upstream stream carries
// what is left of it), `grpc-status` in a response's fields, and the `grpc-message` encoding.
// Pure functions over strings: no sockets.

import { performance } from 'node:perf_hooks';

/** gRPC status codes the proxy answers with (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const enum GrpcStatus {
  Unknown = 2,
  DeadlineExceeded = 4,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  Unauthenticated = 16,
}

/** Whether a request is gRPC: its content-type starts with `application/grpc` (any case). */
export function isGrpcContentType(contentType: string): boolean {
  return contentType.length >= 16 && contentType.slice(0, 16).toLowerCase() === 'application/grpc';
}

/**
 * gRPC over HTTP/2's own content-type: `application/grpc`, or `application/grpc+<format>`
 * (`+proto`, `+json`, ...), any case. Not `application/grpc-web`, which is another protocol (what
 * a `match.grpc` route asks for; isGrpcContentType, which gRPC-shaped local replies go by, takes
 * grpc-web too).
 */
export function isGrpcCallContentType(value: string): boolean {
  const base = 'application/grpc';
  if (value.length < base.length || value.slice(0, base.length).toLowerCase() !== base) return false;
  return value.length === base.length || value.charCodeAt(base.length) === 0x2b; /* + */
}

/**
 * grpc-message as the gRPC spec encodes it: the UTF-8 bytes, with '%' and every byte outside
 * 0x20-0x7e as %XX (upper-case hex).
 */
export function grpcMessageEncode(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const b of Buffer.from(message, 'utf8')) {
    out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}

/** grpc-message as received (percent-encoded UTF-8) back to text; a malformed escape leaves it as it came. */
export function grpcMessageDecode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** The timeout in ms (fractional), or -1 when the value is malformed. */
export function parseGrpcTimeout(value: string): number {
  const v = value.trim();
  const n = v.length - 1;
  if (n < 1 || n > 8) return -1;
  const unit = UNIT_MS[v[n]!];
  if (unit === undefined) return -1;
  let x = 0;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    x = x * 10 + c;
  }
  return x * unit;
}

/** A request's grpc-timeout in ms (flat lower-case [name, value, ...] fields), -1 when absent or malformed. */
export function grpcTimeoutOf(headers: readonly string[]): number {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'grpc-timeout') return parseGrpcTimeout(headers[i + 1]!);
  return -1;
}

/** Whether a request's fields (flat lower-case [name, value, ...]) say gRPC: content-type application/grpc*. */
export function isGrpcRequest(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-type') return isGrpcContentType(headers[i + 1]!);
  return false;
}

/** The grpc-status among response fields or trailers (flat [name, value, ...]), -1 when absent or not a number. */
export function grpcStatusIn(fields: readonly string[]): number {
  for (let i = 0; i < fields.length; i += 2) {
    const n = fields[i]!;
    if (n.length === 11 && n.toLowerCase() === 'grpc-status') {
      const v = fields[i + 1]!.trim();
      return /^\d{1,3}$/.test(v) ? Number(v) : -1;
    }
  }
  return -1;
}

/** A grpc-timeout value for `ms` (≥ 0): whole milliseconds while they fit 8 digits, else seconds (rounded down: never longer than what is left). */
export function formatGrpcTimeout(ms: number): string {
  const m = Math.max(0, Math.floor(ms));
  return m <= 99_999_999 ? `${m}m` : `${Math.min(99_999_999, Math.floor(m / 1000))}S`;
}

/** The grpc-timeout to send upstream for a call whose deadline is `deadlineMs` (performance.now() clock). */
export function remainingGrpcTimeout(deadlineMs: number): string {
  return formatGrpcTimeout(deadlineMs - performance.now());
}
