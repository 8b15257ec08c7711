// gRPC through one sidecar under load and change (issue 14): GOAWAY from one endpoint's server in
// the middle of 2000 unary calls (none fails, the pool opens a new session), a bidi stream that
// keeps flowing across PUT /config reloads, and a 100 MB server stream to a slow client with the
// server held back by flow control and the sidecar's RSS bounded. The clients are grpc-js; the
// servers are grpc-js (grpc_fixture.ts) or node:http2 speaking gRPC framing by hand, where the test
// must act on the session (GOAWAY) or watch the server's writes (backpressure).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, sleep, startSidecar, track, waitFor, type Config } from '../helpers/sidecar.js';
import { echoClient, startEchoServer, type EchoClient } from './grpc_fixture.js';

afterAll(closeAll);

const { NGHTTP2_NO_ERROR } = http2.constants;

/** One gRPC message on the wire: uncompressed flag, 4-byte length, the bytes. */
function grpcFrame(msg: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(msg.length, 1);
  return Buffer.concat([prefix, msg]);
}

/** A node:http2 server speaking gRPC by hand: the test sees its sessions and its writes. */
interface RawGrpcServer {
  address: string;
  /** Sessions (TCP connections) the server accepted. */
  sessions: number;
  /** Unary calls answered. */
  unary: number;
  /** GOAWAY frames sent by goawayAll(). */
  goaways: number;
  /** Sends every open session GOAWAY (last stream id: the newest stream it has seen), then closes it once its streams end. */
  goawayAll(): void;
  /** The server stream: bytes written, writes refused (backpressure), a write waiting for 'drain', the SHA-256 of what it sent once done. */
  big: { written: number; refused: number; waiting: boolean; sha: string | null };
}

const BIG_MESSAGES = 1600;
const BIG_MESSAGE_BYTES = 64 * 1024;
const BIG_TOTAL = BIG_MESSAGES * BIG_MESSAGE_BYTES; // 100 MiB

/** Message `i` of the big stream: its index, then a byte pattern that differs per message. */
function bigMessage(i: number): Buffer {
  const b = Buffer.alloc(BIG_MESSAGE_BYTES, (i * 7 + 1) & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}

async function startRawGrpcServer(): Promise<RawGrpcServer> {
  const server = http2.createServer();
  const open = new Map<http2.ServerHttp2Session, { lastStreamId: number }>();
  const state: RawGrpcServer = {
    address: '',
    sessions: 0,
    unary: 0,
    goaways: 0,
    big: { written: 0, refused: 0, waiting: false, sha: null },
    goawayAll: () => {
      for (const [s, seen] of open) {
        if (s.closed || s.destroyed) continue;
        s.goaway(NGHTTP2_NO_ERROR, seen.lastStreamId);
        state.goaways++;
        s.close();
      }
    },
  };
  server.on('session', (s) => {
    state.sessions++;
    const seen = { lastStreamId: 0 };
    open.set(s, seen);
    s.on('close', () => open.delete(s));
    s.on('error', () => {});
    s.on('stream', (stream, headers) => {
      seen.lastStreamId = Math.max(seen.lastStreamId, stream.id ?? 0);
      stream.on('error', () => {});
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        if (headers[':path'] === '/test.Echo/ServerStream') streamBig(state, stream);
        else answerUnary(state, stream, Buffer.concat(chunks).subarray(5));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  track({
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open.keys()) s.destroy();
        server.close(() => resolve());
      }),
  });
  return state;
}

function answerUnary(state: RawGrpcServer, stream: http2.ServerHttp2Stream, msg: Buffer): void {
  if (stream.destroyed) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  stream.end(grpcFrame(Buffer.concat([Buffer.from('echo:'), msg])));
  state.unary++;
}

/** 1600 × 64 KiB messages as fast as the stream takes them: each write() that returns false waits for 'drain'. */
function streamBig(state: RawGrpcServer, stream: http2.ServerHttp2Stream): void {
  const big = state.big;
  const hash = createHash('sha256');
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  let i = 0;
  const more = (): void => {
    big.waiting = false;
    while (i < BIG_MESSAGES && !stream.destroyed) {
      const msg = bigMessage(i++);
      hash.update(msg);
      big.written += msg.length;
      if (!stream.write(grpcFrame(msg))) {
        big.refused++;
        big.waiting = true;
        stream.once('drain', more);
        return;
      }
    }
    big.sha = hash.digest('hex');
    stream.end();
  };
  more();
}

/** A sidecar with one HTTP/2 listener; `/test.Echo/` goes to cluster `grpc`, other routes and clusters as given. */
function config(grpcEndpoints: readonly string[], o: { routes?: Array<Record<string, unknown>>; clusters?: Array<Record<string, unknown>> } = {}): Config {
  return {
    node: { workers: 1, drain_timeout_ms: 2000 },
    admin: { address: '127.0.0.1:0' },
    listeners: [
      {
        name: 'main',
        address: '127.0.0.1:0',
        engine: 'strict',
        protocol: 'auto',
        routes: [...(o.routes ?? []), { name: 'echo', match: { path_prefix: '/test.Echo/' }, cluster: 'grpc', timeout_ms: 120_000 }],
      },
    ],
    clusters: [{ name: 'grpc', protocol: 'http2', lb: 'round_robin', endpoints: grpcEndpoints.map((address) => ({ address })) }, ...(o.clusters ?? [])],
  };
}

function client(port: number): EchoClient {
  const c = echoClient(`127.0.0.1:${port}`);
  track({ close: () => Promise.resolve(c.close()) });
  return c;
}

function unary(c: EchoClient, req: Buffer): Promise<{ code: grpc.status; res: string | null }> {
  return new Promise((resolve) => {
    c.unary(req, new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (err, res) =>
      resolve(err !== null ? { code: err.code, res: null } : { code: grpc.status.OK, res: res?.toString() ?? null }),
    );
  });
}

/** VmRSS of a process, in bytes (the sidecar's workers are threads of its one process). */
function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

describe('gRPC under load and change', () => {
  it('GOAWAY from one endpoint during 2000 unary calls at concurrency 50: every call succeeds, the pool opens new sessions', async () => {
    const a = await startEchoServer();
    track(a);
    const b = await startRawGrpcServer();
    const sc = await startSidecar(config([a.address, b.address]));
    const c = client(sc.port());
    const CALLS = 2000;
    // GOAWAY from b after it has answered this many calls (each time on the sessions it has then).
    const goawayAt = [150, 400, 650];
    let next = 0;
    const failures: string[] = [];
    const worker = async (): Promise<void> => {
      while (next < CALLS) {
        const i = next++;
        const r = await unary(c, Buffer.from(`call ${i}`));
        if (r.code !== grpc.status.OK || r.res !== `echo:call ${i}`) failures.push(`${i}: ${r.code} ${r.res}`);
        if (goawayAt.length > 0 && b.unary >= goawayAt[0]!) {
          goawayAt.shift();
          b.goawayAll();
        }
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    const report = { failures: failures.slice(0, 5), goaways: b.goaways, sessionsAtB: b.sessions, unaryAtB: b.unary };
    expect(failures, JSON.stringify(report)).toEqual([]);
    expect(b.goaways).toBeGreaterThanOrEqual(3);
    // A session per GOAWAY at least: the first one, and a new one after each.
    expect(b.sessions).toBeGreaterThanOrEqual(4);
    expect(b.unary).toBeGreaterThan(650);
    console.log(`grpc GOAWAY under load: ${JSON.stringify(report)}`);
  }, 120_000);

  it('a bidi stream exchanging a message every few ms keeps flowing across PUT /config reloads; new calls follow the new config', async () => {
    const a = await startEchoServer();
    track(a);
    const other = await startRawGrpcServer();
    const v1 = config([a.address], { clusters: [{ name: 'side', protocol: 'http2', endpoints: [{ address: a.address }] }] });
    const sc = await startSidecar(v1);
    const c = client(sc.port());
    const call = c.bidi(new grpc.Metadata(), { deadline: Date.now() + 60_000 });
    const got: string[] = [];
    call.on('data', (m: Buffer) => got.push(m.toString()));
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    let sent = 0;
    let sending = true;
    const sender = (async () => {
      while (sending) {
        call.write(Buffer.from(`m${sent++}`));
        await sleep(3); // pacing: a message every few ms
      }
      call.end();
    })();
    await waitFor(() => got.length >= 20, 'the stream flowing');

    // Reloads that keep the stream's route: the same routes with an unrelated cluster changed, back and forth.
    const v2 = config([a.address], { clusters: [{ name: 'side', protocol: 'http2', endpoints: [{ address: other.address }] }] });
    const versions: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = got.length;
      const r = await adminCall(sc, 'PUT', '/config', i % 2 === 0 ? v2 : v1);
      expect(r.status, r.text).toBe(200);
      versions.push(r.json.version as number);
      await waitFor(() => got.length >= before + 10, `messages after reload ${i}`);
    }
    // The last reload sends new Unary calls to the side cluster (its endpoint: the raw server); Bidi keeps its route.
    const v3 = config([a.address], {
      routes: [{ name: 'unary', match: { path: '/test.Echo/Unary' }, cluster: 'side' }],
      clusters: [{ name: 'side', protocol: 'http2', endpoints: [{ address: other.address }] }],
    });
    const before = got.length;
    const r = await adminCall(sc, 'PUT', '/config', v3);
    expect(r.status, r.text).toBe(200);
    await waitFor(() => got.length >= before + 10, 'messages after the last reload');
    const viaNew = await unary(c, Buffer.from('new'));
    expect(viaNew).toEqual({ code: grpc.status.OK, res: 'echo:new' });
    expect(other.unary).toBe(1);

    sending = false;
    await sender;
    const st = await status;
    expect(st.code).toBe(grpc.status.OK);
    expect(versions).toEqual(Array.from({ length: 10 }, (_, i) => 2 + i));
    // Every message answered, in order, none lost or repeated.
    expect(got.length).toBe(sent);
    expect(got).toEqual(Array.from({ length: sent }, (_, i) => `re:m${i}`));
    console.log(`grpc bidi across 11 reloads: ${sent} messages each way`);
  }, 120_000);

  it('a 100 MiB server stream to a slow client: arrives whole, the server is held back, the sidecar RSS stays bounded', async () => {
    const up = await startRawGrpcServer();
    const sc = await startSidecar(config([up.address]));
    const c = client(sc.port());
    // Warm the path (session, code) before the idle figure.
    const warm = await unary(c, Buffer.from('warm'));
    expect(warm.code).toBe(grpc.status.OK);
    const idleRss = rssBytes(sc.pid);
    let peakRss = idleRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(sc.pid))), 20);
    track({ close: () => Promise.resolve(clearInterval(sampler)) });

    const call = c.serverStream(Buffer.alloc(4), new grpc.Metadata(), { deadline: Date.now() + 120_000 });
    const hash = createHash('sha256');
    let messages = 0;
    let read = 0;
    let inOrder = true;
    const STOP_AT = 64; // 4 MiB read: the client stops reading until the server is seen waiting
    let stopped: (() => void) | null = null;
    const stop = new Promise<void>((resolve) => (stopped = resolve));
    call.on('data', (m: Buffer) => {
      if (m.length !== BIG_MESSAGE_BYTES || m.readUInt32BE(0) !== messages) inOrder = false;
      hash.update(m);
      messages++;
      read += m.length;
      if (messages === STOP_AT) {
        call.pause();
        stopped?.();
      } else if (messages % 16 === 0) {
        // A slow reader: a short pause every MiB.
        call.pause();
        setTimeout(() => call.resume(), 2);
      }
    });
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});

    await stop;
    await waitFor(() => up.big.waiting, 'the server waiting for drain', 30_000);
    // The server is stopped by flow control with the client at 4 MiB: what it has written is the
    // client's reads plus the windows and buffers of three hops, nowhere near 100 MiB.
    const stalled = { read, written: up.big.written, refused: up.big.refused };
    expect(stalled.read).toBe(STOP_AT * BIG_MESSAGE_BYTES);
    expect(stalled.written - stalled.read).toBeLessThan(16 * 1024 * 1024);
    expect(up.big.sha).toBeNull();
    call.resume();

    const st = await status;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, rssBytes(sc.pid));
    const report = {
      idle_rss_mb: +(idleRss / 2 ** 20).toFixed(1),
      peak_rss_mb: +(peakRss / 2 ** 20).toFixed(1),
      stalled_read_mb: +(stalled.read / 2 ** 20).toFixed(1),
      stalled_written_mb: +(stalled.written / 2 ** 20).toFixed(1),
      server_writes_refused: up.big.refused,
    };
    console.log(`grpc 100 MiB server stream: ${JSON.stringify(report)}`);
    expect(st.code).toBe(grpc.status.OK);
    expect(messages).toBe(BIG_MESSAGES);
    expect(read).toBe(BIG_TOTAL);
    expect(inOrder).toBe(true);
    expect(hash.digest('hex')).toBe(up.big.sha);
    expect(up.big.refused).toBeGreaterThan(1);
    expect(peakRss - idleRss, JSON.stringify(report)).toBeLessThan(64 * 1024 * 1024);
  }, 180_000);
});
