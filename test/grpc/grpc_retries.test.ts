// Retries on gRPC codes (issue 14): `retries.on: [unavailable]` retries a call whose try ended
// trailers-only (grpc-status in the response head, no message), replaying its request message on
// another endpoint; never once a response message reached the client; never on a code not listed.
// A real grpc-js client and real grpc-js servers (a good echo server, a bad one that always fails)
// through one sidecar.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, eventually, startSidecar, track, type Sidecar } from '../helpers/sidecar.js';
import { echoClient, SERVICE, startEchoServer, type EchoClient, type EchoServer } from './grpc_fixture.js';

interface BadServer {
  readonly address: string;
  /** Calls received, by method path. */
  readonly calls: Map<string, number>;
  close(): Promise<void>;
}

/**
 * A server that fails every call: unary and client-stream calls at once with the code in the
 * request's `x-code` metadata (UNAVAILABLE when absent) and no metadata sent first, so grpc-js
 * answers trailers-only; a server stream after one message `first`; a bidi stream at once.
 */
async function startBadServer(): Promise<BadServer> {
  const calls = new Map<string, number>();
  const count = (path: string): void => void calls.set(path, (calls.get(path) ?? 0) + 1);
  const codeOf = (md: grpc.Metadata): grpc.status => Number(md.get('x-code')[0] ?? grpc.status.UNAVAILABLE);
  const server = new grpc.Server();
  server.addService(SERVICE, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      count('/test.Echo/Unary');
      cb({ code: codeOf(call.metadata), details: 'bad endpoint' });
    },
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      count('/test.Echo/ServerStream');
      call.write(Buffer.from('first'));
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'failed after one message' });
    },
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      count('/test.Echo/ClientStream');
      cb({ code: codeOf(call.metadata), details: 'bad endpoint' });
    },
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      count('/test.Echo/Bidi');
      call.emit('error', { code: codeOf(call.metadata), details: 'bad endpoint' });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err !== null ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    calls,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

interface Outcome {
  readonly err: grpc.ServiceError | null;
  readonly res: Buffer | undefined;
}

function unary(c: EchoClient, req: string, md = new grpc.Metadata()): Promise<Outcome> {
  return new Promise((resolve) => {
    c.unary(Buffer.from(req), md, {}, (err, res) => resolve({ err, res }));
  });
}

interface StreamOutcome {
  readonly messages: string[];
  readonly code: grpc.status;
  readonly details: string;
}

function serverStream(c: EchoClient): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const messages: string[] = [];
    const req = Buffer.alloc(4);
    req.writeUInt32BE(1);
    const call = c.serverStream(req, new grpc.Metadata());
    call.on('data', (b: Buffer) => messages.push(b.toString()));
    call.on('error', () => {}); // the status below says it
    call.on('status', (s: grpc.StatusObject) => resolve({ messages, code: s.code, details: s.details }));
  });
}

/** outrigger_retries_total of a cluster, from /metrics (0 when not reported yet). */
async function retriesOf(sc: Sidecar, cluster: string): Promise<number> {
  const text = (await adminCall(sc, 'GET', '/metrics')).text;
  const m = new RegExp(`^outrigger_retries_total\\{cluster="${cluster}"\\} (\\d+)$`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

const N = 20;

describe('gRPC retries on gRPC status codes', () => {
  let good: EchoServer;
  let bad: BadServer;
  let sc: Sidecar;
  const clients = new Map<string, EchoClient>();
  const client = (listener: string): EchoClient => {
    let c = clients.get(listener);
    if (c === undefined) {
      c = echoClient(`127.0.0.1:${sc.port(listener)}`);
      const made = c;
      track({ close: () => Promise.resolve(made.close()) });
      clients.set(listener, c);
    }
    return c;
  };
  const route = (retries?: Record<string, unknown>): Record<string, unknown> => ({
    match: { path_prefix: '/test.Echo/' },
    ...(retries === undefined ? {} : { retries }),
  });
  const listener = (name: string, cluster: string, retries?: Record<string, unknown>): Record<string, unknown> => ({
    name,
    address: '127.0.0.1:0',
    engine: 'strict',
    protocol: 'auto',
    routes: [{ ...route(retries), cluster }],
  });

  beforeAll(async () => {
    good = await startEchoServer();
    track(good);
    bad = await startBadServer();
    track(bad);
    sc = await startSidecar({
      node: { workers: 1, drain_timeout_ms: 2000 },
      admin: { address: '127.0.0.1:0' },
      listeners: [
        // Two endpoints, one bad: a retry goes to the other one.
        listener('retrying', 'mixed', { attempts: 1, on: ['unavailable'], backoff_base_ms: 1 }),
        listener('plain', 'mixed-plain'),
        // The bad endpoint alone: every try of a call lands on it.
        listener('bad-only', 'bad', { attempts: 2, on: ['unavailable'], backoff_base_ms: 1 }),
      ],
      clusters: [
        { name: 'mixed', protocol: 'http2', lb: 'round_robin', endpoints: [{ address: bad.address }, { address: good.address }] },
        { name: 'mixed-plain', protocol: 'http2', lb: 'round_robin', endpoints: [{ address: bad.address }, { address: good.address }] },
        { name: 'bad', protocol: 'http2', endpoints: [{ address: bad.address }] },
      ],
    });
  }, 60_000);
  afterAll(closeAll);

  it('retries UNAVAILABLE (trailers-only) on the other endpoint, replaying the request message: 20 of 20 calls succeed', async () => {
    bad.calls.clear();
    const before = await retriesOf(sc, 'mixed');
    for (let i = 0; i < N; i++) {
      const r = await unary(client('retrying'), `call-${i}`);
      expect(r.err).toBeNull();
      expect(r.res?.toString()).toBe(`echo:call-${i}`); // the message reached the good server whole, retried or not
    }
    const badTries = bad.calls.get('/test.Echo/Unary') ?? 0;
    expect(badTries).toBeGreaterThan(0); // round robin sent some first tries to the bad endpoint
    // Each of them was retried once (on the good endpoint), and counted.
    await eventually(async () => ((await retriesOf(sc, 'mixed')) === before + badTries ? true : undefined), `${badTries} retries in /metrics`);
  });

  it('replays a client stream whose try was refused trailers-only: the good endpoint gets every message', async () => {
    bad.calls.clear();
    for (let i = 0; i < 6; i++) {
      const parts = [`a${i}`, `bb${i}`, `ccc${i}`];
      const res = await new Promise<Outcome>((resolve) => {
        const call = client('retrying').clientStream(new grpc.Metadata(), {}, (err, r) => resolve({ err, res: r }));
        for (const p of parts) call.write(Buffer.from(p));
        call.end();
      });
      expect(res.err).toBeNull();
      expect(res.res?.toString()).toBe(`3:${parts.join('').length}`); // the echo server counts messages and bytes
    }
    expect(bad.calls.get('/test.Echo/ClientStream')).toBeGreaterThan(0);
  });

  it('without retries, the calls that land on the bad endpoint fail with its UNAVAILABLE passed exactly', async () => {
    bad.calls.clear();
    const outcomes: Outcome[] = [];
    for (let i = 0; i < N; i++) outcomes.push(await unary(client('plain'), `call-${i}`));
    const failed = outcomes.filter((o) => o.err !== null);
    expect(failed.length).toBe(bad.calls.get('/test.Echo/Unary'));
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThan(N);
    for (const o of failed) {
      expect(o.err?.code).toBe(grpc.status.UNAVAILABLE);
      expect(o.err?.details).toBe('bad endpoint');
      expect(o.err?.metadata.get('x-outrigger-error')).toEqual([]); // the server's answer, not the proxy's
    }
    for (const o of outcomes.filter((x) => x.err === null)) expect(o.res?.toString()).toMatch(/^echo:call-\d+$/);
    expect(await retriesOf(sc, 'mixed-plain')).toBe(0);
  });

  it('retries a listed code up to attempts, then passes the last answer on', async () => {
    bad.calls.clear();
    const r = await unary(client('bad-only'), 'x');
    expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.err?.details).toBe('bad endpoint');
    expect(bad.calls.get('/test.Echo/Unary')).toBe(3); // the first try and 2 retries
  });

  it('does not retry a code that is not listed (INTERNAL when only unavailable is)', async () => {
    bad.calls.clear();
    const md = new grpc.Metadata();
    md.set('x-code', String(grpc.status.INTERNAL));
    const r = await unary(client('bad-only'), 'x', md);
    expect(r.err?.code).toBe(grpc.status.INTERNAL);
    expect(r.err?.details).toBe('bad endpoint');
    expect(bad.calls.get('/test.Echo/Unary')).toBe(1);
  });

  it('does not retry a server stream that failed UNAVAILABLE after a message reached the client', async () => {
    bad.calls.clear();
    const r = await serverStream(client('bad-only'));
    expect(r.messages).toEqual(['first']);
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.details).toBe('failed after one message');
    expect(bad.calls.get('/test.Echo/ServerStream')).toBe(1);
  });
});
