// Routing and authorization by gRPC service and method (issue 14): the `match.grpc` route
// shorthand (a method's exact path, or a service's prefix, and a gRPC content-type), the
// authorization rule's `grpc` list, and the config problems both can have. Real grpc-js clients
// and servers through a sidecar; the authorization on an mTLS listener, as authorization needs.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import { buildLinearRouter, buildRouter } from '../../src/dataplane/router.js';
import { listed, minimal, OPTS, ok } from '../config/helpers.js';
import { h2connect, h2request } from '../h2/h2_client.js';
import { headers, noHeaders, route } from '../router/helpers.js';
import { closeAll, config, leaf, startMeshServer, startSidecar, track, WEB, type Sidecar } from '../helpers/sidecar.js';
import { echoClient, GRPC_LISTENER, grpcFrame, listenLocal, RAW, SERVICE, startEchoServer, type EchoClient, type EchoServer } from './grpc_fixture.js';

/** A second service, `test.Other`, whose one method answers `other:<request>`. */
const OTHER: grpc.ServiceDefinition = {
  unary: { path: '/test.Other/Unary', requestStream: false, responseStream: false, ...RAW },
};

async function startOtherServer(): Promise<{ address: string; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(OTHER, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([Buffer.from('other:'), call.request])),
  });
  return listenLocal(server);
}

interface Outcome {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata;
  readonly res: string | undefined;
}

/** A unary call on `path` (any service, any method) with the raw-bytes serializers. */
function callPath(c: grpc.Client, path: string, req = 'x'): Promise<Outcome> {
  return new Promise((resolve) => {
    let res: string | undefined;
    const call = c.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(req),
      new grpc.Metadata(),
      {},
      (_err, r) => (res = r?.toString()),
    );
    call.on('status', (s: grpc.StatusObject) => setImmediate(() => resolve({ code: s.code, details: s.details, metadata: s.metadata, res })));
  });
}

describe('match.grpc: routes by gRPC service and method', () => {
  let echo: EchoServer;
  let sc: Sidecar;
  let client: EchoClient;

  beforeAll(async () => {
    echo = await startEchoServer();
    track(echo);
    const other = await startOtherServer();
    track(other);
    const routes = [
      { name: 'echo-unary', match: { grpc: { service: 'test.Echo', method: 'Unary' } }, cluster: 'echo' },
      { name: 'other', match: { grpc: { service: 'test.Other' } }, cluster: 'other' },
    ];
    const clusters = [
      { name: 'echo', protocol: 'http2', endpoints: [{ address: echo.address }] },
      { name: 'other', protocol: 'http2', endpoints: [{ address: other.address }] },
    ];
    sc = await startSidecar(config(routes, clusters, { listener: GRPC_LISTENER }));
    client = echoClient(`127.0.0.1:${sc.port()}`);
    track({ close: () => Promise.resolve(client.close()) });
  }, 60_000);
  afterAll(closeAll);

  it('sends each service to its own cluster', async () => {
    const e = await callPath(client, '/test.Echo/Unary', 'a');
    expect(e.code).toBe(grpc.status.OK);
    expect(e.res).toBe('echo:a');
    const o = await callPath(client, '/test.Other/Unary', 'b');
    expect(o.code).toBe(grpc.status.OK);
    expect(o.res).toBe('other:b');
  });

  it('a method match is exact: another method of the service matches no route', async () => {
    const r = await callPath(client, '/test.Echo/ClientStream');
    expect(r.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(r.metadata.get('x-outrigger-error')).toEqual(['no_route']);
  });

  it('a service match covers every method of the service, and only of that service', async () => {
    // Routed to the test.Other server, which does not know this method: its own UNIMPLEMENTED.
    const known = await callPath(client, '/test.Other/Missing');
    expect(known.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(known.metadata.get('x-outrigger-error')).toEqual([]);
    // A service whose name only starts like it is not covered.
    const longer = await callPath(client, '/test.OtherService/Unary');
    expect(longer.metadata.get('x-outrigger-error')).toEqual(['no_route']);
  });

  it('only gRPC requests match: the same path with another content-type (grpc-web, none) matches no route', async () => {
    const s = await h2connect(`http://127.0.0.1:${sc.port()}`);
    const post = (contentType: string | null): ReturnType<typeof h2request> =>
      h2request(
        s,
        { ':method': 'POST', ':path': '/test.Echo/Unary', te: 'trailers', ...(contentType === null ? {} : { 'content-type': contentType }) },
        grpcFrame('x'),
      );
    for (const ct of ['application/json', 'application/grpc-web', 'text/plain', null]) {
      const r = await post(ct);
      expect([ct, r.headers['x-outrigger-error']]).toEqual([ct, 'no_route']);
    }
    // application/grpc+<format> is gRPC: routed to the echo server, which answers it.
    const proto = await post('application/grpc+proto');
    expect(proto.status).toBe(200);
    expect(proto.trailers?.['grpc-status']).toBe('0');
    expect(proto.body.subarray(5).toString()).toBe('echo:x');
    // HTTP/1.1 with the gRPC path but no gRPC content-type: no route either.
    const h1 = await fetch(sc.url('/test.Echo/Unary'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(h1.status).toBe(404);
  });
});

describe('match.grpc: the content-type condition', () => {
  it('is application/grpc or application/grpc+<format>, any case; not grpc-web, not a longer name, not absent', () => {
    const routes = [route('grpc', { pathPrefix: '/a.B/', grpc: true }), route('rest', { pathPrefix: '/' })];
    for (const router of [buildRouter(routes), buildLinearRouter(routes)]) {
      const via = (ct: string | null): string | undefined =>
        router.match('POST', 'h', '/a.B/M', ct === null ? noHeaders : headers({ 'content-type': ct }))?.spec.name;
      for (const ct of ['application/grpc', 'application/grpc+proto', 'APPLICATION/GRPC+json']) expect([ct, via(ct)]).toEqual([ct, 'grpc']);
      for (const ct of ['application/grpc-web', 'application/grpcx', 'application/json', 'application/grp', null]) expect([ct, via(ct)]).toEqual([ct, 'rest']);
    }
  });
});

describe('authorization by gRPC service and method', () => {
  afterAll(closeAll);

  it('allows the methods a rule names, denies another method of the service and another service with PERMISSION_DENIED', async () => {
    const echo = await startEchoServer();
    track(echo);
    const mesh = await startMeshServer({
      authorization: [{ from: [WEB], grpc: [{ service: 'test.Echo', method: 'Unary' }, { service: 'test.Third' }] }],
      edit: (cfg) => {
        cfg['clusters'] = [{ name: 'local-app', protocol: 'http2', endpoints: [{ address: echo.address }] }];
      },
    });
    const web = leaf(mesh.ca, WEB);
    const creds = grpc.credentials.createSsl(Buffer.from(mesh.ca.certPem), Buffer.from(web.keyPem), Buffer.from(web.certPem), {
      // SPIFFE IDs, not DNS names, identify sidecars.
      checkServerIdentity: () => undefined,
    });
    const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
    const c = new Ctor(`127.0.0.1:${mesh.inbound}`, creds) as unknown as EchoClient;
    track({ close: () => Promise.resolve(c.close()) });

    const allowed = await callPath(c, '/test.Echo/Unary', 'hi');
    expect(allowed.code).toBe(grpc.status.OK);
    expect(allowed.res).toBe('echo:hi');

    for (const path of ['/test.Echo/ClientStream', '/test.Other/Unary', '/test.EchoX/Unary']) {
      const denied = await callPath(c, path);
      expect([path, denied.code, denied.metadata.get('x-outrigger-error')]).toEqual([path, grpc.status.PERMISSION_DENIED, ['unauthorized']]);
    }

    // A whole service allowed: any of its methods passes authorization (the echo server itself does not know it).
    const third = await callPath(c, '/test.Third/Anything');
    expect(third.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(third.metadata.get('x-outrigger-error')).toEqual([]);
  }, 60_000);
});

describe('config: match.grpc, authorization grpc, gRPC retry conditions', () => {
  const withRoute = (route: Record<string, unknown>, listener: Record<string, unknown> = {}): Record<string, unknown> => ({
    ...minimal(),
    listeners: [{ name: 'out', address: '127.0.0.1:0', routes: [{ cluster: 'api', ...route }], ...listener }],
  });
  const withRules = (authorization: unknown[]): Record<string, unknown> => ({
    ...withRoute({}, { tls: { mode: 'mtls' }, authorization }),
    node: { identity: 'spiffe://td/ns/a/sa/me' },
    tls: { ca: { dir: './ca' } },
  });

  it('compiles match.grpc to an exact path (with a method) or a service prefix, both for gRPC requests only', () => {
    const method = ok(compileConfig(withRoute({ match: { grpc: { service: 'pkg.v1.Users', method: 'Get' } } }), OPTS)).snapshot;
    expect(method.listeners[0]?.routes[0]?.match).toMatchObject({ path: '/pkg.v1.Users/Get', pathPrefix: null, grpc: true });
    const service = ok(compileConfig(withRoute({ match: { grpc: { service: 'pkg.v1.Users' } } }), OPTS)).snapshot;
    expect(service.listeners[0]?.routes[0]?.match).toMatchObject({ path: null, pathPrefix: '/pkg.v1.Users/', grpc: true });
    const plain = ok(compileConfig(withRoute({ match: { path_prefix: '/' } }), OPTS)).snapshot;
    expect(plain.listeners[0]?.routes[0]?.match.grpc).toBe(false);
  });

  it('refuses match.grpc beside a path, and names that are not gRPC names', () => {
    expect(listed(compileConfig(withRoute({ match: { grpc: { service: 'a.B' }, path_prefix: '/a.B/' } }), OPTS))).toEqual([
      'listeners[0].routes[0].match.grpc: grpc matches the path /<service>/<method> itself: give it without path_prefix',
    ]);
    expect(listed(compileConfig(withRoute({ match: { grpc: { service: 'a.B', method: 'M' }, path: '/x', path_regex: '/y' } }), OPTS))).toEqual([
      'listeners[0].routes[0].match: give at most one of path, path_prefix, path_regex (got path, path_regex)',
      'listeners[0].routes[0].match.grpc: grpc matches the path /<service>/<method> itself: give it without path, path_regex',
    ]);
    const service = 'must be a gRPC service name: identifiers (letters, digits, "_") joined by ".", like "pkg.v1.Service"';
    const method = 'must be a gRPC method name: letters, digits and "_", not starting with a digit, like "GetUser"';
    for (const bad of ['pkg..Users', '1pkg.Users', 'pkg/Users', '', 'pkg.Users.']) {
      expect(listed(compileConfig(withRoute({ match: { grpc: { service: bad } } }), OPTS))).toEqual([
        `listeners[0].routes[0].match.grpc.service: ${service} (got "${bad}")`,
      ]);
    }
    for (const bad of ['Get/All', '2Get', 'Get.All', '']) {
      expect(listed(compileConfig(withRoute({ match: { grpc: { service: 'a.B', method: bad } } }), OPTS))).toEqual([
        `listeners[0].routes[0].match.grpc.method: ${method} (got "${bad}")`,
      ]);
    }
    expect(listed(compileConfig(withRoute({ match: { grpc: { method: 'Get' } } }), OPTS))[0]).toMatch(/^listeners\[0\]\.routes\[0\]\.match\.grpc\.service: /);
  });

  it('compiles authorization grpc entries to paths, refuses them beside paths and refuses bad names', () => {
    const l = ok(compileConfig(withRules([{ grpc: [{ service: 'a.B', method: 'Get' }, { service: 'c.D' }] }]), OPTS)).snapshot.listeners[0];
    expect(l?.authorization).toEqual([{ from: null, paths: ['/a.B/Get', '/c.D/*'], methods: null }]);
    expect(listed(compileConfig(withRules([{ paths: ['/x'], grpc: [{ service: 'a.B' }] }]), OPTS))).toEqual([
      'listeners[0].authorization[0].grpc: give paths or grpc in one rule, not both (grpc names the paths /<service>/<method>)',
    ]);
    expect(listed(compileConfig(withRules([{ grpc: [{ service: 'a.B', method: 'x/y' }] }]), OPTS))).toEqual([
      'listeners[0].authorization[0].grpc[0].method: must be a gRPC method name: letters, digits and "_", not starting with a digit, like "GetUser" (got "x/y")',
    ]);
  });

  it('compiles the gRPC retry conditions to their codes', () => {
    const on = ['unavailable', 'reset', 'resource-exhausted', 'cancelled', 'deadline-exceeded', 'internal'];
    const r = ok(compileConfig(withRoute({ retries: { on } }), OPTS)).snapshot.listeners[0]?.routes[0]?.retries;
    expect(r?.grpcStatuses).toEqual([1, 4, 8, 13, 14]);
    expect(r?.onReset).toBe(true);
    expect(r?.statuses).toEqual([]);
  });
});
