// The gRPC health-checking protocol's bits: the hand-encoded HealthCheckRequest, the decoder of
// HealthCheckResponse, the verdict on an answer, and the config of a gRPC health check (accepted
// on http2 clusters only, never beside `path`).
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import { decodeServingStatus, encodeHealthCheckRequest, grpcCheckVerdict, ServingStatus } from '../../src/health/grpc_health.js';
import { listed, OPTS, ok } from '../config/helpers.js';

/** A gRPC message frame (uncompressed) around protobuf bytes. */
function framed(...bytes: number[]): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([head, Buffer.from(bytes)]);
}

describe('HealthCheckRequest encoding', () => {
  it('the whole server ("") is the empty message', () => {
    expect(encodeHealthCheckRequest('')).toEqual(framed());
  });

  it('a service name is field 1 (tag 0x0a), its length, its UTF-8 bytes', () => {
    expect(encodeHealthCheckRequest('pkg.Echo')).toEqual(framed(0x0a, 8, ...Buffer.from('pkg.Echo')));
  });

  it('a name of 200 bytes has a two-byte varint length', () => {
    const name = 'é'.repeat(100); // 200 UTF-8 bytes
    expect(encodeHealthCheckRequest(name)).toEqual(framed(0x0a, 0xc8, 0x01, ...Buffer.from(name)));
  });
});

describe('HealthCheckResponse decoding', () => {
  it('reads the status enum (field 1)', () => {
    expect(decodeServingStatus(framed(0x08, 1))).toBe(ServingStatus.SERVING);
    expect(decodeServingStatus(framed(0x08, 2))).toBe(ServingStatus.NOT_SERVING);
    expect(decodeServingStatus(framed(0x08, 3))).toBe(ServingStatus.SERVICE_UNKNOWN);
  });

  it('an absent status is UNKNOWN (proto3 omits the default)', () => {
    expect(decodeServingStatus(framed())).toBe(ServingStatus.UNKNOWN);
  });

  it('skips unknown fields of every wire type', () => {
    const unknown = [0x10, 0x96, 0x01, 0x19, ...Array<number>(8).fill(7), 0x22, 2, 0x61, 0x62, 0x2d, 1, 2, 3, 4];
    expect(decodeServingStatus(framed(...unknown, 0x08, 1))).toBe(ServingStatus.SERVING);
  });

  it('refuses bodies that are not one well-formed message', () => {
    expect(() => decodeServingStatus(Buffer.from([0, 0, 0]))).toThrow(/not a gRPC message/);
    expect(() => decodeServingStatus(Buffer.concat([framed(0x08, 1), framed(0x08, 1)]))).toThrow(/does not hold one/);
    const compressed = framed(0x08, 1);
    compressed[0] = 1;
    expect(() => decodeServingStatus(compressed)).toThrow(/compressed/);
    expect(() => decodeServingStatus(framed(0x08, 0x80))).toThrow(/truncated varint/);
    expect(() => decodeServingStatus(framed(0x22, 5, 1))).toThrow(/truncated field/);
    expect(() => decodeServingStatus(framed(0x0b))).toThrow(/wire type 3/);
  });
});

describe('the verdict on an answer', () => {
  it('passes grpc-status 0 with SERVING only', () => {
    expect(grpcCheckVerdict('0', undefined, framed(0x08, 1))).toBeNull();
    expect(grpcCheckVerdict('0', undefined, framed(0x08, 2))).toBe('serving status NOT_SERVING');
    expect(grpcCheckVerdict('0', undefined, framed())).toBe('serving status UNKNOWN');
    expect(grpcCheckVerdict('0', undefined, framed(0x08, 3))).toBe('serving status SERVICE_UNKNOWN');
  });

  it('fails a non-zero grpc-status, a missing one and a bad body', () => {
    expect(grpcCheckVerdict('5', 'unknown service', Buffer.alloc(0))).toBe('grpc-status 5: unknown service');
    expect(grpcCheckVerdict('12', undefined, Buffer.alloc(0))).toBe('grpc-status 12');
    expect(grpcCheckVerdict('14', 'down%3A%20100%25%20%C2%ABgone%C2%BB', Buffer.alloc(0))).toBe('grpc-status 14: down: 100% «gone»');
    expect(grpcCheckVerdict('14', 'bad %E0 escape', Buffer.alloc(0))).toBe('grpc-status 14: bad %E0 escape');
    expect(grpcCheckVerdict(undefined, undefined, framed(0x08, 1))).toBe('gRPC answer without grpc-status');
    expect(grpcCheckVerdict('0', undefined, Buffer.alloc(0))).toMatch(/^bad HealthCheckResponse: /);
  });
});

describe('config: health_check.grpc', () => {
  function config(cluster: Record<string, unknown>): Record<string, unknown> {
    return {
      listeners: [{ name: 'out', address: '127.0.0.1:15001', routes: [{ cluster: 'api' }] }],
      clusters: [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }], ...cluster }],
    };
  }

  it('compiles to a Health/Check call for the service ("" by default), and its defaulted form validates again', () => {
    const r = ok(compileConfig(config({ protocol: 'http2', health_check: { grpc: {}, interval_ms: 100 } }), OPTS));
    expect(r.snapshot.clusters[0]?.healthCheck).toEqual({
      path: '/grpc.health.v1.Health/Check',
      grpc: { service: '' },
      tcp: false,
      intervalMs: 100,
      timeoutMs: 1000,
      unhealthyThreshold: 3,
      healthyThreshold: 2,
    });
    const again = ok(compileConfig(r.source, OPTS));
    expect(again.snapshot.clusters[0]?.healthCheck?.grpc).toEqual({ service: '' });
    const named = ok(compileConfig(config({ protocol: 'http2', health_check: { grpc: { service: 'pkg.Echo' } } }), OPTS));
    expect(named.snapshot.clusters[0]?.healthCheck?.grpc).toEqual({ service: 'pkg.Echo' });
  });

  it('is refused on an http1 cluster and beside path, each at its path', () => {
    expect(listed(compileConfig(config({ health_check: { grpc: {} } }), OPTS))).toEqual([
      'clusters[0].health_check.grpc: the gRPC health check speaks HTTP/2: it needs protocol: http2 on this cluster',
    ]);
    expect(listed(compileConfig(config({ protocol: 'http2', health_check: { grpc: {}, path: '/healthz' } }), OPTS))).toEqual([
      'clusters[0].health_check.path: give path (an HTTP GET check) or grpc (grpc.health.v1.Health/Check), not both',
    ]);
    expect(listed(compileConfig(config({ protocol: 'http2', health_check: { grpc: { service: 1, svc: 'x' } } }), OPTS))).toHaveLength(2);
  });
});
