// gRPC-shaped local replies: when the proxy itself answers a gRPC request (content-type
// application/grpc*) it answers HTTP 200 trailers-only with grpc-status, a percent-encoded
// grpc-message and x-outrigger-error, observed here by a grpc-js client through one sidecar.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { adminCall, closeAll, deadPort, leaf, startMeshServer, startSidecar, track, untilCluster, WEB, type Sidecar } from '../helpers/sidecar.js';
import { h2connect, h2request } from '../h2/h2_client.js';
import { clientsPerListener, mtlsEchoClient, startEchoServer, type EchoClient, type EchoServer } from './grpc_fixture.js';

/** How a call ended, as the client saw it: status code, message, and the proxy's x-outrigger-error trailer values. */
interface Outcome {
  code: grpc.status;
  details: string;
  errors: grpc.MetadataValue[];
}

function outcomeOf(c: grpc.ClientUnaryCall): Promise<Outcome> {
  return new Promise((resolve) => {
    c.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details, errors: s.metadata.get('x-outrigger-error') }));
  });
}

function call(c: EchoClient, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<Outcome> {
  return outcomeOf(c.unary(Buffer.from('x'), md, opts, () => {}));
}

/** A unary call on any path (no route matches it). */
function callPath(c: grpc.Client, path: string): Promise<Outcome> {
  const identity = (b: Buffer): Buffer => b;
  return outcomeOf(c.makeUnaryRequest(path, identity, identity, Buffer.from('x'), new grpc.Metadata(), {}, () => {}));
}

/** Metadata that makes the echo server wait `ms` before it answers. */
function delayed(ms: number): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-delay-ms', String(ms));
  return md;
}

function listener(name: string, cluster: string, route: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, address: '127.0.0.1:0', engine: 'strict', protocol: 'auto', routes: [{ match: { path_prefix: '/test.Echo/' }, cluster, ...route }] };
}

describe('gRPC local replies', () => {
  let up: EchoServer;
  let sc: Sidecar;
  const clients = clientsPerListener((l) => sc.port(l));
  const client = (l: string): EchoClient => clients.of(l);
  beforeAll(async () => {
    up = await startEchoServer();
    track(up);
    const dead = await deadPort();
    sc = await startSidecar({
      node: { workers: 1, drain_timeout_ms: 2000 },
      admin: { address: '127.0.0.1:0' },
      listeners: [
        listener('main', 'grpc'),
        listener('slow', 'grpc', { timeout_ms: 200 }),
        listener('limited', 'grpc', { rate_limit: { requests_per_second: 0.01, burst: 1 } }),
        listener('dead', 'dead'),
        listener('tight', 'tight'),
        listener('fault', 'grpc', { fault: { abort: { status: 403, percent: 100 } } }),
      ],
      clusters: [
        { name: 'grpc', protocol: 'http2', endpoints: [{ address: up.address }] },
        { name: 'dead', protocol: 'http2', endpoints: [{ address: `127.0.0.1:${dead}` }] },
        { name: 'tight', protocol: 'http2', endpoints: [{ address: up.address }], circuit_breaker: { max_requests: 1, max_pending: 0 } },
      ],
    });
    track(clients);
  }, 60_000);
  afterAll(closeAll);

  it('no route: UNIMPLEMENTED', async () => {
    expect(await callPath(client('main'), '/other.Service/Method')).toEqual({
      code: grpc.status.UNIMPLEMENTED,
      details: 'no route matches the request',
      errors: ['no_route'],
    });
  });

  it('route timeout: DEADLINE_EXCEEDED', async () => {
    expect(await call(client('slow'), delayed(1000))).toEqual({
      code: grpc.status.DEADLINE_EXCEEDED,
      details: 'the upstream service did not answer in time',
      errors: ['timeout'],
    });
  });

  it('rate limited: RESOURCE_EXHAUSTED', async () => {
    expect((await call(client('limited'))).code).toBe(grpc.status.OK);
    expect(await call(client('limited'))).toEqual({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many requests', errors: ['rate_limited'] });
  });

  it('upstream unreachable: UNAVAILABLE', async () => {
    expect(await call(client('dead'))).toEqual({
      code: grpc.status.UNAVAILABLE,
      details: 'the upstream service could not be reached',
      errors: ['upstream_connect_failed'],
    });
  });

  it('overflow: UNAVAILABLE', async () => {
    const held = call(client('tight'), delayed(500));
    await untilCluster(sc, 'tight', (c) => c.active === 1, 'the held call active on cluster tight');
    expect(await call(client('tight'))).toEqual({
      code: grpc.status.UNAVAILABLE,
      details: 'the upstream service is at its concurrency limit',
      errors: ['overflow'],
    });
    expect((await held).code).toBe(grpc.status.OK);
  });

  it('injected fault: by its HTTP status (403 → PERMISSION_DENIED)', async () => {
    expect(await call(client('fault'))).toMatchObject({ code: grpc.status.PERMISSION_DENIED, errors: ['fault_injected'] });
  });

  it('on the wire: HTTP 200, trailers-only, content-type application/grpc; non-gRPC requests keep the JSON reply', async () => {
    const s = await h2connect(`http://127.0.0.1:${sc.port('main')}`);
    const g = await h2request(s, { ':method': 'POST', ':path': '/nowhere', 'content-type': 'application/grpc+proto', te: 'trailers' }, Buffer.alloc(0));
    expect(g.status).toBe(200);
    expect(g.headers['content-type']).toBe('application/grpc');
    expect(g.headers['grpc-status']).toBe('12');
    expect(g.headers['grpc-message']).toBe('no route matches the request');
    expect(g.body.length).toBe(0);
    const j = await h2request(s, { ':method': 'GET', ':path': '/nowhere' });
    expect(j.status).toBe(404);
    expect(j.headers['content-type']).toBe('application/json');
  });

  it('/stats: gRPC calls by grpc-status with their success rate (grpc-status 0), per listener, route and cluster; /metrics has the counter', async () => {
    interface Row {
      name: string;
      listener?: string;
      calls: number;
      grpc_status: Record<string, number>;
      success_rate: number | null;
    }
    const grpcJson = async (): Promise<{ listeners: Row[]; routes: Row[]; clusters: Row[] }> =>
      (await adminCall(sc, 'GET', '/stats')).json.grpc as { listeners: Row[]; routes: Row[]; clusters: Row[] };
    // Workers report their counts in batches: poll until every call above has been counted.
    await vi.waitFor(async () => {
      const g = await grpcJson();
      expect(g.listeners.find((l) => l.name === 'main')?.grpc_status['12']).toBe(2); // no route (grpc-js, then the raw h2 request)
      const limited = g.routes.find((r) => r.listener === 'limited' && r.name === 'limited#0');
      expect(limited?.grpc_status).toEqual({ '0': 1, '8': 1 });
      expect(limited?.success_rate).toBe(0.5);
      expect(g.clusters.find((c) => c.name === 'dead')?.grpc_status).toEqual({ '14': 1 });
      const tight = g.clusters.find((c) => c.name === 'tight');
      expect(tight?.grpc_status['0']).toBe(1);
      expect(g.clusters.find((c) => c.name === 'grpc')?.grpc_status['4']).toBe(1); // the route timeout
    }, 10_000);
    const metrics = (await adminCall(sc, 'GET', '/metrics')).text;
    expect(metrics).toMatch(/outrigger_grpc_responses_total\{[^}]*listener="dead"[^}]*grpc_status="14"[^}]*\} 1/);
  });
});

describe('gRPC local replies on an mTLS listener', () => {
  afterAll(closeAll);

  it('unauthorized: PERMISSION_DENIED', async () => {
    const mesh = await startMeshServer({ authorization: [{ from: [WEB], paths: ['/v1/*'] }] });
    const c = mtlsEchoClient(`127.0.0.1:${mesh.inbound}`, mesh.ca.certPem, leaf(mesh.ca, WEB));
    track({ close: () => Promise.resolve(c.close()) });
    expect(await call(c)).toEqual({
      code: grpc.status.PERMISSION_DENIED,
      details: 'the caller is not allowed to make this request',
      errors: ['unauthorized'],
    });
  }, 60_000);
});
