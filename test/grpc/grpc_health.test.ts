// The gRPC health-checking protocol end to end: two grpc-js servers implementing
// grpc.health.v1.Health (a handwritten ServiceDefinition, the two messages encoded by hand) behind
// one sidecar whose http2 cluster checks them with `health_check.grpc`. A server that turns
// NOT_SERVING loses its traffic to the other and gets it back when it serves again; a service the
// servers do not know (SERVICE_UNKNOWN), a failing Check (grpc-status), a silent one (timeout) or
// a server that is gone is unhealthy. Checks of
// a `tls` cluster speak mTLS like its requests: through another sidecar's mTLS listener, with the
// server's SPIFFE ID checked.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  API,
  caSource,
  clientSideConfig,
  closeAll,
  endpointView,
  newCa,
  serverSideConfig,
  spiffe,
  startApp,
  startSidecar,
  track,
  untilCluster,
  type ClusterView,
  type Config,
  type Sidecar,
} from '../helpers/sidecar.js';
import { echoClient, SERVICE, type EchoClient } from './grpc_fixture.js';

const SERVING = 1;
const NOT_SERVING = 2;
const SERVICE_UNKNOWN = 3;

/** HealthCheckRequest {string service = 1}: the one field a check sends. An object, not the bare
 *  string: grpc-js takes a falsy request (the "" of the whole server) for no request at all. */
function decodeHealthCheckRequest(b: Buffer): { service: string } {
  if (b.length === 0) return { service: '' };
  if (b[0] !== 0x0a || (b[1] ?? 0x80) >= 0x80) throw new Error(`unexpected HealthCheckRequest ${b.toString('hex')}`);
  return { service: b.subarray(2, 2 + b[1]!).toString('utf8') };
}

/** HealthCheckResponse {ServingStatus status = 1}. */
function encodeServingStatus(status: number): Buffer {
  return Buffer.from([0x08, status]);
}

const HEALTH: grpc.ServiceDefinition = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (r: { service: string }): Buffer => Buffer.from([0x0a, r.service.length, ...Buffer.from(r.service)]),
    requestDeserialize: decodeHealthCheckRequest,
    responseSerialize: encodeServingStatus,
    responseDeserialize: (b: Buffer): number => b[1] ?? 0,
  },
};

interface HealthServer {
  name: string;
  address: string;
  /** Serving status per service name ("" = the server); a name not here is SERVICE_UNKNOWN. */
  statuses: Map<string, number>;
  /** Checks answered, per service name asked. */
  checks: Map<string, number>;
  /** When set, Check fails with this gRPC status instead of answering. */
  failWith: grpc.status | null;
  /** When true, Check never answers. */
  silent: boolean;
  close(): Promise<void>;
  /** Stops at once: open connections are cut and the port refuses new ones. */
  kill(): void;
}

/** A grpc-js server with test.Echo/Unary (answers its own name) and grpc.health.v1.Health/Check. */
async function startHealthServer(name: string): Promise<HealthServer> {
  const server = new grpc.Server();
  const s: HealthServer = {
    name,
    address: '',
    statuses: new Map([
      ['', SERVING],
      ['test.Echo', SERVING],
    ]),
    checks: new Map(),
    failWith: null,
    silent: false,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    kill: () => server.forceShutdown(),
  };
  server.addService(SERVICE, {
    unary: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)),
  });
  server.addService(HEALTH, {
    check: (call: grpc.ServerUnaryCall<{ service: string }, number>, cb: grpc.sendUnaryData<number>) => {
      const { service } = call.request;
      s.checks.set(service, (s.checks.get(service) ?? 0) + 1);
      if (s.silent) return;
      if (s.failWith !== null) cb({ code: s.failWith, details: 'health service broken: 100% «down»' });
      else cb(null, s.statuses.get(service) ?? SERVICE_UNKNOWN);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err !== null ? reject(err) : resolve(p))),
  );
  s.address = `127.0.0.1:${port}`;
  track(s);
  return s;
}

function config(endpoints: readonly string[], healthCheck: Record<string, unknown>): Record<string, unknown> {
  return {
    node: { workers: 2, drain_timeout_ms: 2000 },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', protocol: 'http2', routes: [{ match: { path_prefix: '/test.Echo/' }, cluster: 'grpc' }] }],
    clusters: [
      {
        name: 'grpc',
        protocol: 'http2',
        lb: 'round_robin',
        endpoints: endpoints.map((address) => ({ address })),
        health_check: { interval_ms: 50, timeout_ms: 1000, unhealthy_threshold: 1, healthy_threshold: 1, ...healthCheck },
      },
    ],
  };
}

/** Which server answered each of `n` unary calls. */
async function callsLandOn(client: EchoClient, n: number): Promise<Set<string>> {
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const res = await new Promise<Buffer>((resolve, reject) =>
      client.unary(Buffer.from('x'), new grpc.Metadata(), {}, (err, r) =>
        err !== null || r === undefined ? reject(err ?? new Error('no response')) : resolve(r),
      ),
    );
    names.add(res.toString());
  }
  return names;
}

/** Both endpoints checked since now, with these verdicts, and the verdicts reached the workers
 *  (the endpoint's `healthy`, what load balancing reads, follows the checker's by a message). */
function health(a: HealthServer, b: HealthServer, wantA: boolean, wantB: boolean): (c: ClusterView) => boolean {
  const since = new Date().toISOString();
  const shows = (c: ClusterView, s: HealthServer, want: boolean): boolean => {
    const e = endpointView(c, s.address);
    const hc = e.health_check;
    return hc !== null && hc.last_checked !== null && hc.last_checked > since && hc.healthy === want && e.healthy === want;
  };
  return (c) => shows(c, a, wantA) && shows(c, b, wantB);
}

describe('gRPC health checks (grpc.health.v1.Health/Check)', () => {
  let a: HealthServer;
  let b: HealthServer;
  let sc: Sidecar;
  let client: EchoClient;
  beforeAll(async () => {
    a = await startHealthServer('a');
    b = await startHealthServer('b');
    sc = await startSidecar(config([a.address, b.address], { grpc: { service: 'test.Echo' } }));
    client = echoClient(`127.0.0.1:${sc.port()}`);
    track({ close: () => Promise.resolve(client.close()) });
  }, 60_000);
  afterAll(closeAll);

  it('asks each endpoint about the configured service; both SERVING share the calls', async () => {
    await untilCluster(sc, 'grpc', health(a, b, true, true), 'both endpoints checked healthy');
    expect(a.checks.get('test.Echo')).toBeGreaterThan(0);
    expect(b.checks.get('test.Echo')).toBeGreaterThan(0);
    expect([...a.checks.keys(), ...b.checks.keys()].every((k) => k === 'test.Echo')).toBe(true);
    expect(await callsLandOn(client, 10)).toEqual(new Set(['a', 'b']));
  });

  it('a server that turns NOT_SERVING gets no calls until it serves again', async () => {
    a.statuses.set('test.Echo', NOT_SERVING);
    const c = await untilCluster(sc, 'grpc', health(a, b, false, true), 'a unhealthy, b healthy');
    expect(endpointView(c, a.address)).toMatchObject({ healthy: false, health_check: { last_error: 'serving status NOT_SERVING' } });
    expect(await callsLandOn(client, 20)).toEqual(new Set(['b']));

    a.statuses.set('test.Echo', SERVING);
    await untilCluster(sc, 'grpc', health(a, b, true, true), 'a healthy again');
    expect(await callsLandOn(client, 10)).toEqual(new Set(['a', 'b']));
  });

  it('a failing Check (non-zero grpc-status) is unhealthy', async () => {
    b.failWith = grpc.status.UNAVAILABLE;
    try {
      const c = await untilCluster(sc, 'grpc', health(a, b, true, false), 'b unhealthy');
      expect(endpointView(c, b.address).health_check?.last_error).toBe('grpc-status 14: health service broken: 100% «down»');
      expect(await callsLandOn(client, 20)).toEqual(new Set(['a']));
    } finally {
      b.failWith = null;
    }
    await untilCluster(sc, 'grpc', health(a, b, true, true), 'b healthy again');
  });

  it('a Check that gets no answer within timeout_ms is unhealthy', async () => {
    a.silent = true;
    try {
      const c = await untilCluster(sc, 'grpc', health(a, b, false, true), 'a unhealthy');
      // The check's own timer and the server's (grpc-timeout: 1000m) end it at the same moment.
      expect(endpointView(c, a.address).health_check?.last_error).toMatch(/^(timeout after 1000 ms|grpc-status 4: Deadline exceeded)$/);
      expect(await callsLandOn(client, 20)).toEqual(new Set(['b']));
    } finally {
      a.silent = false;
    }
    await untilCluster(sc, 'grpc', health(a, b, true, true), 'a healthy again');
  });

  it('a server that is gone (connections cut, port closed) is unhealthy', async () => {
    b.kill();
    // A check in flight when the server shuts down fails first with its stream refused
    // (NGHTTP2_REFUSED_STREAM): that one alone already makes b unhealthy (threshold 1). The checks
    // after it find the port closed, and b stays unhealthy with that as its reason.
    const gone = health(a, b, true, false);
    const c = await untilCluster(
      sc,
      'grpc',
      (v) => gone(v) && endpointView(v, b.address).health_check?.last_error === 'connect failed: ECONNREFUSED',
      'b unhealthy, its last check refused at connect',
    );
    expect(endpointView(c, b.address).health_check?.last_error).toBe('connect failed: ECONNREFUSED');
    expect(await callsLandOn(client, 20)).toEqual(new Set(['a']));
  });
});

describe('gRPC health checks of another service', () => {
  afterAll(closeAll);

  it('a service the servers do not know (SERVICE_UNKNOWN) is unhealthy; "" asks about the whole server', async () => {
    const a = await startHealthServer('a');
    const b = await startHealthServer('b');
    const wrong = await startSidecar(config([a.address, b.address], { grpc: { service: 'no.Such' } }));
    const c = await untilCluster(wrong, 'grpc', health(a, b, false, false), 'both unhealthy');
    for (const s of [a, b]) expect(endpointView(c, s.address).health_check?.last_error).toBe('serving status SERVICE_UNKNOWN');
    expect(a.checks.get('no.Such')).toBeGreaterThan(0);

    const whole = await startSidecar(config([a.address, b.address], { grpc: {} }));
    await untilCluster(whole, 'grpc', health(a, b, true, true), 'both healthy');
    expect(a.checks.get('')).toBeGreaterThan(0);
  }, 60_000);
});

describe('health checks of a tls cluster use mTLS, like its requests', () => {
  afterAll(closeAll);

  /** The outbound side's one `tls` cluster `api` to `upstream`, expecting `expect`, with this health check and protocol. */
  function outbound(ca: Parameters<typeof caSource>[0], upstream: string, expect: string, protocol: string, healthCheck: Record<string, unknown>): Config {
    const cfg = clientSideConfig({ tls: caSource(ca), upstream, expect, workers: 1 });
    const [api] = cfg['clusters'] as Array<Record<string, unknown>>;
    api!['protocol'] = protocol;
    api!['health_check'] = { interval_ms: 50, timeout_ms: 2000, unhealthy_threshold: 1, healthy_threshold: 1, ...healthCheck };
    return cfg;
  }

  /** The endpoint `api` of a sidecar checked since now, with this verdict at the checker and the workers. */
  function checked(sc: Sidecar, healthy: boolean, what: string): Promise<ClusterView> {
    const since = new Date().toISOString();
    return untilCluster(
      sc,
      'api',
      (c) => {
        const e = c.endpoints[0];
        const hc = e?.health_check;
        return hc !== undefined && hc !== null && hc.last_checked !== null && hc.last_checked > since && hc.healthy === healthy && e!.healthy === healthy;
      },
      what,
    );
  }

  it("gRPC checks cross an inbound sidecar over mTLS (ALPN h2) and follow the app's serving status", async () => {
    const ca = await newCa();
    const app = await startHealthServer('app');
    const inboundCfg = serverSideConfig({ tls: caSource(ca), app: app.address });
    (inboundCfg['clusters'] as Array<Record<string, unknown>>)[0]!['protocol'] = 'http2';
    const inbound = await startSidecar(inboundCfg);
    const upstream = `127.0.0.1:${inbound.port('inbound')}`;
    const sc = await startSidecar(outbound(ca, upstream, API, 'http2', { grpc: { service: 'test.Echo' } }));
    await checked(sc, true, 'the endpoint checked healthy through the inbound sidecar');
    expect(app.checks.get('test.Echo')).toBeGreaterThan(0);

    app.statuses.set('test.Echo', NOT_SERVING);
    const c = await checked(sc, false, 'the endpoint unhealthy');
    expect(c.endpoints[0]?.health_check?.last_error).toBe('serving status NOT_SERVING');
    app.statuses.set('test.Echo', SERVING);
    await checked(sc, true, 'the endpoint healthy again');

    // A server that is not the SPIFFE ID the cluster expects fails its checks.
    const wrong = await startSidecar(outbound(ca, upstream, spiffe('other'), 'http2', { grpc: { service: 'test.Echo' } }));
    const w = await checked(wrong, false, 'the wrong identity unhealthy');
    expect(w.endpoints[0]?.health_check?.last_error).toMatch(
      /^upstream_identity_mismatch: server is spiffe:\/\/cluster\.local\/ns\/default\/sa\/api, expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/other$/,
    );
  }, 60_000);

  it('HTTP/1.1 GET checks of a tls cluster cross the inbound sidecar too', async () => {
    const ca = await newCa();
    const app = await startApp();
    const inbound = await startSidecar(serverSideConfig({ tls: caSource(ca), app: app.address }));
    const upstream = `127.0.0.1:${inbound.port('inbound')}`;
    const sc = await startSidecar(outbound(ca, upstream, API, 'http1', { path: '/healthz' }));
    await checked(sc, true, 'the endpoint checked healthy through the inbound sidecar');
    expect(app.healthChecks.map((r) => r.url)).toContain('/healthz');
    const wrong = await startSidecar(outbound(ca, upstream, spiffe('other'), 'http1', { path: '/healthz' }));
    const w = await checked(wrong, false, 'the wrong identity unhealthy');
    expect(w.endpoints[0]?.health_check?.last_error).toMatch(
      /^upstream_identity_mismatch: server is spiffe:\/\/cluster\.local\/ns\/default\/sa\/api, expected spiffe:\/\/cluster\.local\/ns\/default\/sa\/other$/,
    );
  }, 60_000);
});
