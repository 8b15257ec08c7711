// localReply's gRPC shape (src/dataplane/local_reply.ts): the grpc-status of every error code,
// grpc-message percent-encoding, and the content-type check that chooses the shape.

import { describe, expect, it } from 'vitest';
import { ProxyError, STATUS_OF, type ErrorCode } from '../../src/errors.js';
import { localReply } from '../../src/dataplane/local_reply.js';
import { grpcMessageEncode, isGrpcContentType } from '../../src/grpc/wire.js';

const EXPECTED: Record<ErrorCode, number> = {
  bad_request: 13,
  headers_too_large: 13,
  request_timeout: 4,
  no_route: 12,
  unauthorized: 7,
  rate_limited: 8,
  upstream_connect_failed: 14,
  upstream_reset: 14,
  upstream_protocol_error: 14,
  upstream_tls_failed: 14,
  upstream_identity_mismatch: 14,
  no_healthy_endpoint: 14,
  overflow: 14,
  timeout: 4,
  fault_injected: 14,
  draining: 14,
  internal_error: 13,
  expectation_failed: 13,
  upgrade_refused: 7,
  destination_not_allowed: 7,
};

const field = (r: ReturnType<typeof localReply>, name: string): string | undefined => r.headers.find(([n]) => n === name)?.[1];

describe('gRPC local replies', () => {
  it('every code: HTTP 200, grpc-status by the table, x-outrigger-error, no body', () => {
    for (const code of Object.keys(STATUS_OF) as ErrorCode[]) {
      const r = localReply(new ProxyError(code, 'detail'), 'rid', false, true);
      expect(r.status, code).toBe(200);
      expect(r.body).toBe('');
      expect(field(r, 'content-type')).toBe('application/grpc');
      expect(field(r, 'grpc-status'), code).toBe(String(EXPECTED[code]));
      expect(field(r, 'x-outrigger-error')).toBe(code);
      expect(field(r, 'x-request-id')).toBe('rid');
    }
  });

  it('injected faults map by their HTTP status', () => {
    const st = (s: number): string | undefined => field(localReply(new ProxyError('fault_injected', 'f', s), null, false, true), 'grpc-status');
    expect([st(400), st(401), st(403), st(404), st(429), st(500), st(503)]).toEqual(['13', '16', '7', '12', '14', '2', '14']);
  });

  it('grpc-message: the public message, or the detail when error_detail is full, percent-encoded', () => {
    expect(field(localReply(new ProxyError('unauthorized', 'peer x'), null, false, true), 'grpc-message')).toBe(
      'the caller is not allowed to make this request',
    );
    expect(field(localReply(new ProxyError('timeout', 'a 100% «slow»\n'), null, true, true), 'grpc-message')).toBe('a 100%25 %C2%ABslow%C2%BB%0A');
    expect(grpcMessageEncode('plain text ~')).toBe('plain text ~');
  });

  it('not gRPC: the JSON reply as before', () => {
    const r = localReply(new ProxyError('no_route', 'x'), null, false);
    expect(r.status).toBe(404);
    expect(field(r, 'content-type')).toBe('application/json');
  });

  it('content-type check', () => {
    expect(isGrpcContentType('application/grpc')).toBe(true);
    expect(isGrpcContentType('application/grpc+proto')).toBe(true);
    expect(isGrpcContentType('Application/GRPC-web')).toBe(true);
    expect(isGrpcContentType('application/json')).toBe(false);
    expect(isGrpcContentType('application/grp')).toBe(false);
  });
});
