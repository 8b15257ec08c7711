// HTTP/2 upstream sessions under stress (issue 14): an upstream that never answers PING (a raw TCP
// server speaking just enough HTTP/2 by hand) is dropped after the keepalive interval, with the
// streams in flight on it failing cleanly rather than hanging, while a busy session whose server
// answers keeps its streams; 200 concurrent streams on one h2 listener connection to an upstream
// that allows 10 per session; 16 KiB of request headers (HPACK) passed exactly. (GOAWAY and
// REFUSED_STREAM resends, a slow client with HTTP/1 and connections_per_worker overflow are in
// h2_upstream.test.ts.)

import http2 from 'node:http2';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import {
  clusterView,
  closeAll,
  config,
  endpointView,
  eventually,
  httpGet,
  listenTracked,
  startSidecar,
  track,
  waitFor,
  type Config,
} from '../helpers/sidecar.js';
import { echoClient } from '../grpc/grpc_fixture.js';
import { h2connect, h2Frame, h2request } from './h2_client.js';

afterAll(closeAll);

const FRAME = { HEADERS: 0x1, SETTINGS: 0x4, PING: 0x6 } as const;
const FLAG = { ACK: 0x1, END_STREAM: 0x1, END_HEADERS: 0x4 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** An h2c server written by hand: SETTINGS and their ACK, a 200 for each request unless holding; it never answers PING. */
interface MutePingServer {
  address: string;
  /** TCP connections accepted, and those that have closed. */
  connections: number;
  closed: number;
  /** PING frames received (none answered). */
  pings: number;
  /** Requests (HEADERS frames) received. */
  requests: number;
  /** Requests are read and never answered. */
  hold: boolean;
}

async function startMutePingServer(): Promise<MutePingServer> {
  const state: MutePingServer = { address: '', connections: 0, closed: 0, pings: 0, requests: 0, hold: false };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => {
      state.closed++;
      sockets.delete(socket);
    });
    socket.on('error', () => {});
    socket.write(h2Frame(FRAME.SETTINGS, 0, 0));
    let buf = Buffer.alloc(0);
    let prefaceSeen = false;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!prefaceSeen) {
        if (buf.length < PREFACE.length) return;
        prefaceSeen = true;
        buf = buf.subarray(PREFACE.length);
      }
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) return;
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        buf = buf.subarray(9 + len);
        if (type === FRAME.SETTINGS && (flags & FLAG.ACK) === 0) socket.write(h2Frame(FRAME.SETTINGS, FLAG.ACK, 0));
        else if (type === FRAME.PING) state.pings++;
        else if (type === FRAME.HEADERS) {
          state.requests++;
          // 0x88: HPACK static table entry 8, ":status: 200".
          if (!state.hold) socket.write(h2Frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, stream, Buffer.from([0x88])));
        }
      }
    });
  });
  state.address = await listenTracked(server, sockets);
  return state;
}

function sidecarConfig(endpoint: string, o: { pool?: Record<string, unknown>; listener?: Record<string, unknown> } = {}): Config {
  // A long route timeout: a stream that hangs shows as a client timeout, not as a 504.
  const route = { match: { path_prefix: '/' }, cluster: 'app', timeout_ms: 60_000 };
  const app = { name: 'app', protocol: 'http2', endpoints: [{ address: endpoint }], ...(o.pool !== undefined ? { pool: o.pool } : {}) };
  return config([route], [app], { node: { error_detail: 'full' }, listener: { engine: 'strict', protocol: 'auto', ...o.listener } });
}

describe('keepalive PINGs (pool.keepalive_interval_ms)', () => {
  it('an upstream that never answers PING: its idle session is closed after the keepalive interval; the next request opens a new one', async () => {
    const up = await startMutePingServer();
    const sc = await startSidecar(sidecarConfig(up.address, { pool: { keepalive_interval_ms: 200, idle_timeout_ms: 300_000 } }));
    expect((await httpGet(sc.url('/first'))).status).toBe(200);
    expect(up.connections).toBe(1);
    await waitFor(() => up.pings >= 1 && up.closed === 1, 'a PING, then the connection closed by the sidecar', 20_000);
    expect((await httpGet(sc.url('/second'))).status).toBe(200);
    expect(up.connections).toBe(2);
    expect(up.requests).toBe(2);
  }, 60_000);

  it('an upstream that never answers PING: requests in flight on its session fail cleanly (502 upstream_reset, gRPC UNAVAILABLE) instead of hanging; the next request opens a new session', async () => {
    const up = await startMutePingServer();
    const sc = await startSidecar(sidecarConfig(up.address, { pool: { keepalive_interval_ms: 200, idle_timeout_ms: 300_000 } }));
    up.hold = true;
    // Far below the route timeout (60 s): only the keepalive can end these in time.
    const held = httpGet(sc.url('/held'), { timeoutMs: 30_000 });
    const grpcClient = echoClient(`127.0.0.1:${sc.port()}`);
    track({ close: () => Promise.resolve(grpcClient.close()) });
    const grpcCall = new Promise<grpc.ServiceError | null>((resolve) =>
      grpcClient.unary(Buffer.from('x'), new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err) => resolve(err)),
    );
    const r = await held;
    expect(r.status).toBe(502);
    expect(r.error).toBe('upstream_reset');
    expect(r.text).toContain('did not answer a PING');
    const err = await grpcCall;
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(up.pings).toBeGreaterThanOrEqual(1);
    expect(up.requests).toBe(2);
    up.hold = false;
    expect((await httpGet(sc.url('/after'))).status).toBe(200);
    expect(up.connections).toBe(2);
  }, 60_000);

  it('a busy session whose server answers PINGs is kept: a request held across several PINGs is answered on it', async () => {
    const up = await startHoldingUpstream();
    const sc = await startSidecar(sidecarConfig(up.address, { pool: { keepalive_interval_ms: 200, idle_timeout_ms: 300_000 } }));
    const held = httpGet(sc.url('/held'), { timeoutMs: 30_000 });
    await waitFor(() => up.held.length === 1 && up.pings >= 3, 'three PINGs while the request is held', 20_000);
    for (const answer of up.held.splice(0)) answer();
    const r = await held;
    expect(r.status).toBe(200);
    expect(r.headers['x-path']).toBe('/held');
    expect(up.sessions).toBe(1);
  }, 60_000);
});

/** A node:http2 upstream allowing 10 streams per session that holds every answer until released; it counts sessions and open streams. */
async function startHoldingUpstream(): Promise<{
  address: string;
  sessions: number;
  maxOpenPerSession: number;
  /** PING frames received (node:http2 answers them). */
  pings: number;
  held: Array<() => void>;
  releaseAll: boolean;
}> {
  const state = { address: '', sessions: 0, maxOpenPerSession: 0, pings: 0, held: [] as Array<() => void>, releaseAll: false };
  const server = http2.createServer({ settings: { maxConcurrentStreams: 10, maxHeaderListSize: 256 * 1024 } });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    state.sessions++;
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
    s.on('ping', () => state.pings++);
    let open = 0;
    s.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      open++;
      state.maxOpenPerSession = Math.max(state.maxOpenPerSession, open);
      stream.on('close', () => open--);
      stream.resume();
      const answer = (): void => {
        if (stream.destroyed) return;
        // Echoes the request's x-* fields and path, so that the test checks them exactly.
        const echoed = Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith('x-')));
        stream.respond({ ':status': 200, 'x-path': String(headers[':path']), ...echoed }, { endStream: true });
      };
      if (state.releaseAll || headers[':path'] === '/warm' || headers['x-big'] !== undefined) answer();
      else state.held.push(answer);
    });
  });
  state.address = await listenTracked(server, sessions);
  return state;
}

describe('many streams and large headers through an h2 listener to an h2 cluster', () => {
  it('200 concurrent streams on one client connection, upstream max_concurrent_streams 10: 8 sessions (connections_per_worker) carry at most 10 each, the rest wait in the queue, all answered', async () => {
    const up = await startHoldingUpstream();
    const sc = await startSidecar(sidecarConfig(up.address, { pool: { connections_per_worker: 8 }, listener: { http2: { max_concurrent_streams: 256 } } }));
    const s = await h2connect(`http://127.0.0.1:${sc.port()}`);
    // The first session and its SETTINGS (10 streams) before the burst.
    expect((await h2request(s, { ':path': '/warm' })).status).toBe(200);
    const all = Array.from({ length: 200 }, (_, i) => h2request(s, { ':path': `/s/${i}` }, null, 60_000));
    // Every session full (8 × 10 streams upstream), the other 120 queued in the sidecar.
    await waitFor(() => up.held.length === 80, '80 streams held upstream', 30_000);
    const c = await eventually(async () => {
      const v = await clusterView(sc, 'app');
      return v.pending === 120 ? v : undefined;
    }, '120 requests pending');
    expect(endpointView(c, up.address).connections_open).toBe(8);
    expect(up.sessions).toBe(8);
    expect(up.maxOpenPerSession).toBe(10);
    // Release: every held answer now, and later streams are answered at once.
    up.releaseAll = true;
    for (const answer of up.held.splice(0)) answer();
    const rs = await Promise.all(all);
    expect(rs.map((r) => r.status)).toEqual(Array(200).fill(200));
    expect(rs.map((r) => r.headers['x-path'])).toEqual(Array.from({ length: 200 }, (_, i) => `/s/${i}`));
    expect(up.sessions).toBe(8);
    expect(up.maxOpenPerSession).toBe(10);
    s.close();
  }, 90_000);

  it('16 KiB of request headers (HPACK) reach the h2 upstream exactly and come back', async () => {
    const up = await startHoldingUpstream();
    const sc = await startSidecar(sidecarConfig(up.address));
    const s = await h2connect(`http://127.0.0.1:${sc.port()}`);
    const big = Array.from({ length: 16 * 1024 }, (_, i) => String.fromCharCode(0x21 + ((i * 7) % 94))).join('');
    const many: Record<string, string> = {};
    for (let i = 0; i < 16; i++) many[`x-h${i}`] = String.fromCharCode(0x61 + i).repeat(1024);
    const r = await h2request(s, { ':path': '/headers', 'x-big': big, ...many });
    expect(r.status).toBe(200);
    expect(r.headers['x-big']).toBe(big);
    for (let i = 0; i < 16; i++) expect(r.headers[`x-h${i}`]).toBe(many[`x-h${i}`]);
    s.close();
  }, 60_000);
});
