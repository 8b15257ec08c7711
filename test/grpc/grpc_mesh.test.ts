// gRPC between two outrigger sidecars over mTLS: grpc-js client → outbound sidecar (plaintext h2c
// listener) → `http2` cluster with `tls` → inbound sidecar (mTLS listener, ALPN h2) → grpc-js
// server. Every call kind, metadata both ways, exact statuses, a deadline the server runs out of,
// cancellation reaching the server, a mid-stream error reaching the client, and the caller's
// SPIFFE identity at the inbound side (forwarded to the app, and authorization denying others).

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  caSource,
  clientSideConfig,
  closeAll,
  newCa,
  serverSideConfig,
  spiffe,
  startSidecar,
  track,
  endpointCounters,
  eventually,
  WEB,
  type Config,
  type Sidecar,
} from '../helpers/sidecar.js';
import { echoClient, RAW, startEchoServer, type EchoClient, type EchoServer } from './grpc_fixture.js';

/** Calls whose server side the tests watch: what the server saw, and when it saw the call end. */
const PROBE: grpc.ServiceDefinition = {
  whoAmI: { path: '/test.Probe/WhoAmI', requestStream: false, responseStream: false, ...RAW },
  slow: { path: '/test.Probe/Slow', requestStream: false, responseStream: false, ...RAW },
  hang: { path: '/test.Probe/Hang', requestStream: false, responseStream: true, ...RAW },
};

type ProbeClient = grpc.Client & {
  whoAmI(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  slow(req: Buffer, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): grpc.ClientUnaryCall;
  hang(req: Buffer, md?: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
};
const ProbeCtor = grpc.makeGenericClientConstructor(PROBE, 'Probe');

/** What the server side of the probe calls saw, by the request's text. */
interface ServerSeen {
  /** Slow and Hang calls whose handler saw `cancelled`. */
  cancelled: Set<string>;
  /** The deadline a Slow call had at the server, ms left on arrival (Infinity: none). */
  deadlineLeftMs: Map<string, number>;
  /** WhoAmI calls that reached the server. */
  whoAmI: number;
}

/** Adds test.Probe to the echo server: WhoAmI answers the x-forwarded-client-cert it got; Slow
 *  answers after 5 s unless its call ends first; Hang sends one message, then nothing. */
function addProbe(server: grpc.Server): ServerSeen {
  const seen: ServerSeen = { cancelled: new Set(), deadlineLeftMs: new Map(), whoAmI: 0 };
  server.addService(PROBE, {
    whoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.whoAmI++;
      cb(null, Buffer.from(String(call.metadata.get('x-forwarded-client-cert')[0] ?? '')));
    },
    slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const key = call.request.toString();
      const dl = call.getDeadline();
      const at = dl instanceof Date ? dl.getTime() : dl;
      seen.deadlineLeftMs.set(key, at - Date.now());
      const timer = setTimeout(() => cb(null, Buffer.from('too late')), 5000);
      call.on('cancelled', () => {
        clearTimeout(timer);
        seen.cancelled.add(key);
      });
    },
    hang: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const key = call.request.toString();
      call.write(Buffer.from('first'));
      call.on('cancelled', () => seen.cancelled.add(key));
    },
  });
  return seen;
}

function probeClient(port: number): ProbeClient {
  const c = new ProbeCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as ProbeClient;
  track({ close: () => Promise.resolve(c.close()) });
  return c;
}

const OUTBOUND_WORKERS = 2;

/** The pair's configs: gRPC (HTTP/2) on both hops, mTLS between the sidecars. */
function inboundConfig(ca: Ca, app: string): Config {
  const cfg = serverSideConfig({ tls: caSource(ca), app, authorization: [{ from: [WEB] }] });
  const [inbound] = cfg['listeners'] as Array<Record<string, unknown>>;
  inbound!['protocol'] = 'auto';
  (cfg['clusters'] as Array<Record<string, unknown>>)[0]!['protocol'] = 'http2';
  return cfg;
}

function outboundConfig(ca: Ca, upstream: string, identity: string): Config {
  const cfg = clientSideConfig({ tls: caSource(ca), upstream, identity, workers: OUTBOUND_WORKERS });
  (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['protocol'] = 'http2';
  (cfg['clusters'] as Array<Record<string, unknown>>)[0]!['protocol'] = 'http2';
  return cfg;
}

interface Unary {
  err: grpc.ServiceError | null;
  res: Buffer | undefined;
  headers: grpc.Metadata | null;
  status: grpc.StatusObject;
}

function unary(c: EchoClient, req: string, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<Unary> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | null = null;
    let answer: { err: grpc.ServiceError | null; res: Buffer | undefined } | null = null;
    let status: grpc.StatusObject | null = null;
    const settle = (): void => {
      if (answer !== null && status !== null) resolve({ ...answer, headers, status });
    };
    const call = c.unary(Buffer.from(req), md, opts, (err, res) => {
      answer = { err, res };
      settle();
    });
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      settle();
    });
  });
}

function count(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

let ca: Ca;
let up: EchoServer;
let seen: ServerSeen;
let inbound: Sidecar;
let outbound: Sidecar;
let client: EchoClient;
let probe: ProbeClient;

beforeAll(async () => {
  ca = await newCa();
  up = await startEchoServer();
  track(up);
  seen = addProbe(up.server);
  inbound = await startSidecar(inboundConfig(ca, up.address));
  outbound = await startSidecar(outboundConfig(ca, `127.0.0.1:${inbound.port('inbound')}`, WEB));
  client = echoClient(`127.0.0.1:${outbound.port('outbound')}`);
  track({ close: () => Promise.resolve(client.close()) });
  probe = probeClient(outbound.port('outbound'));
}, 60_000);
afterAll(closeAll);

describe('gRPC through two sidecars over mTLS', () => {
  it('unary: message, text and -bin metadata both ways, trailing metadata', async () => {
    const md = new grpc.Metadata();
    md.set('x-text', 'hello mesh');
    md.set('x-blob-bin', Buffer.from([0, 255, 10, 13, 128]));
    const r = await unary(client, 'ping', md);
    expect(r.err).toBeNull();
    expect(r.res?.toString()).toBe('echo:ping');
    expect(r.headers?.get('x-text')).toEqual(['hello mesh']);
    expect(r.headers?.get('x-blob-bin')).toEqual([Buffer.from([0, 255, 10, 13, 128])]);
    expect(r.status.code).toBe(grpc.status.OK);
    expect(r.status.metadata.get('x-trailer')).toEqual(['ok']);
  });

  it('status codes and messages pass exactly, with -bin trailing metadata and no proxy error attached', async () => {
    const details = 'not here: 100% «missing»\n\tline two';
    for (const code of [
      grpc.status.CANCELLED,
      grpc.status.INVALID_ARGUMENT,
      grpc.status.NOT_FOUND,
      grpc.status.PERMISSION_DENIED,
      grpc.status.RESOURCE_EXHAUSTED,
      grpc.status.INTERNAL,
      grpc.status.UNAVAILABLE,
      grpc.status.UNAUTHENTICATED,
    ]) {
      const md = new grpc.Metadata();
      md.set('x-status', String(code));
      md.set('x-details-bin', Buffer.from(`${details} ${code}`));
      const r = await unary(client, 'x', md);
      expect([r.err?.code, r.err?.details]).toEqual([code, `${details} ${code}`]);
      expect(r.status.metadata.get('x-trailer-bin')).toEqual([Buffer.from([0, 1, 2, 255])]);
      expect(r.status.metadata.get('x-outrigger-error')).toEqual([]);
    }
  });

  it('server streaming: every message in order, then OK', async () => {
    const md = new grpc.Metadata();
    md.set('x-s-bin', Buffer.from([1, 2, 3]));
    const call = client.serverStream(count(200), md);
    const got: string[] = [];
    let headers: grpc.Metadata | null = null;
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('data', (b: Buffer) => got.push(b.toString()));
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => `msg ${i}`));
    expect(headers!.get('x-s-bin')).toEqual([Buffer.from([1, 2, 3])]);
  });

  it('client streaming: every message reaches the server', async () => {
    const res = await new Promise<Buffer | undefined>((resolve, reject) => {
      const call = client.clientStream(new grpc.Metadata(), {}, (err, r) => (err !== null ? reject(err) : resolve(r)));
      for (let i = 0; i < 30; i++) call.write(Buffer.alloc(1000, i));
      call.end();
    });
    expect(res?.toString()).toBe('30:30000');
  });

  it('bidirectional: each message answered in turn', async () => {
    const call = client.bidi(new grpc.Metadata());
    const got: string[] = [];
    for (let i = 0; i < 10; i++) {
      const answer = new Promise<string>((resolve) => call.once('data', (b: Buffer) => resolve(b.toString())));
      call.write(Buffer.from(`m${i}`));
      got.push(await answer);
    }
    call.end();
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `re:m${i}`));
  });

  it('a server error in the middle of a stream reaches the client with its status, after the messages', async () => {
    const md = new grpc.Metadata();
    md.set('x-status', String(grpc.status.ABORTED));
    md.set('x-details', 'stopped halfway');
    const call = client.serverStream(count(3), md);
    const got: string[] = [];
    call.on('data', (b: Buffer) => got.push(b.toString()));
    call.on('error', () => undefined);
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(got).toEqual(['msg 0', 'msg 1', 'msg 2']);
    expect([status.code, status.details]).toEqual([grpc.status.ABORTED, 'stopped halfway']);
    expect(status.metadata.get('x-trailer')).toEqual(['tv']);
  });

  it('a server slower than the deadline: DEADLINE_EXCEEDED at the client, and the server saw the deadline and the end', async () => {
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      probe.slow(Buffer.from('slow-1'), new grpc.Metadata(), { deadline: Date.now() + 1500 }, (e) => resolve(e)),
    );
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // grpc-timeout crossed both sidecars, reduced by the time spent, never longer.
    const left = seen.deadlineLeftMs.get('slow-1');
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(1500);
    await eventually(() => (seen.cancelled.has('slow-1') ? true : undefined), 'the server handler to see its call end');
  });

  it('the calls crossed as HTTP/2 streams on mTLS sessions: at most one per outbound worker', async () => {
    const c = await endpointCounters(outbound, 'api');
    expect(c.tlsHandshakes).toBeGreaterThanOrEqual(1);
    expect(c.connectionsOpened).toBeLessThanOrEqual(OUTBOUND_WORKERS);
  });

  it('cancellation by the client reaches the server handler', async () => {
    const call = probe.hang(Buffer.from('hang-1'));
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.on('error', () => undefined);
    expect(seen.cancelled.has('hang-1')).toBe(false);
    call.cancel();
    await eventually(() => (seen.cancelled.has('hang-1') ? true : undefined), 'the server handler to see `cancelled`');
  });
});

describe('identity at the inbound sidecar', () => {
  it("the app learns the caller's SPIFFE ID (x-forwarded-client-cert)", async () => {
    const xfcc = await new Promise<string>((resolve, reject) =>
      probe.whoAmI(Buffer.alloc(0), new grpc.Metadata(), {}, (e, r) => (e !== null ? reject(e) : resolve(r?.toString() ?? ''))),
    );
    expect(xfcc).toContain(`URI=${WEB}`);
  });

  it('authorization by identity denies another caller with PERMISSION_DENIED; the app sees nothing', async () => {
    const other = await startSidecar(outboundConfig(ca, `127.0.0.1:${inbound.port('inbound')}`, spiffe('other')));
    const otherProbe = probeClient(other.port('outbound'));
    const before = seen.whoAmI;
    const call = await new Promise<{ err: grpc.ServiceError | null; status: grpc.StatusObject }>((resolve) => {
      let err: grpc.ServiceError | null = null;
      const c = otherProbe.whoAmI(Buffer.alloc(0), new grpc.Metadata(), {}, (e) => (err = e));
      c.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ err, status })));
    });
    expect(call.err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(call.status.metadata.get('x-outrigger-error')).toEqual(['unauthorized']);
    expect(seen.whoAmI).toBe(before);
  }, 60_000);
});
