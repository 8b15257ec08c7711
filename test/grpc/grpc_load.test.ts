// gRPC through one sidecar under load and change (issue 14): GOAWAY from one endpoint's server in
// the middle of 2000 unary calls (none fails, the pool opens a new session), a bidi stream that
// keeps flowing across PUT /config reloads, and 100 MiB streamed each way to a slow reader with the
// writer held back by flow control and the sidecar's RSS bounded. The clients are grpc-js; the
// servers are grpc-js (grpc_fixture.ts) or node:http2 speaking gRPC framing by hand, where the test
// must act on the session (GOAWAY) or watch the server's writes (backpressure).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import {
  adminCall,
  closeAll,
  cluster,
  clusterView,
  config,
  endpointView,
  listenTracked,
  sleep,
  startSidecar,
  track,
  waitFor,
  type Config,
  type Sidecar,
} from '../helpers/sidecar.js';
import { echoClient, GRPC_LISTENER, grpcFrame, startEchoServer, type EchoClient } from './grpc_fixture.js';

afterAll(closeAll);

const { NGHTTP2_NO_ERROR } = http2.constants;

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
  /** The server stream: bytes written, writes that had to wait for 'drain' (backpressure), the SHA-256 of what it sent once done. */
  big: { written: number; refused: number; sha: string | null };
  /** The client stream: bytes received (gRPC framing included). */
  upload: { received: number };
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
    big: { written: 0, refused: 0, sha: null },
    upload: { received: 0 },
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
      if (headers[':path'] === '/test.Echo/ClientStream') {
        receiveBig(state, stream);
        return;
      }
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        if (headers[':path'] === '/test.Echo/ServerStream') streamBig(state, stream);
        else answerUnary(state, stream, Buffer.concat(chunks).subarray(5));
      });
    });
  });
  state.address = await listenTracked(server, open);
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
    while (i < BIG_MESSAGES && !stream.destroyed) {
      const msg = bigMessage(i++);
      hash.update(msg);
      big.written += msg.length;
      if (!stream.write(grpcFrame(msg))) {
        big.refused++;
        stream.once('drain', more);
        return;
      }
    }
    big.sha = hash.digest('hex');
    stream.end();
  };
  more();
}

/** The client stream, read slowly (a short pause after each 256 KiB); answers with `<bytes>:<sha256>` of what it received (gRPC framing included). */
function receiveBig(state: RawGrpcServer, stream: http2.ServerHttp2Stream): void {
  const up = state.upload;
  const hash = createHash('sha256');
  let sincePause = 0;
  stream.on('data', (d: Buffer) => {
    up.received += d.length;
    hash.update(d);
    sincePause += d.length;
    if (sincePause >= 256 * 1024) {
      sincePause = 0;
      stream.pause();
      setTimeout(() => stream.resume(), 5);
    }
  });
  stream.on('end', () => answerUnary(state, stream, Buffer.from(`${up.received}:${hash.digest('hex')}`)));
}

/** A sidecar with one HTTP/2 listener; `/test.Echo/` goes to cluster `grpc`, other routes and clusters as given. */
function sidecarConfig(
  grpcEndpoints: readonly string[],
  o: { routes?: Array<Record<string, unknown>>; clusters?: Array<Record<string, unknown>>; listener?: Record<string, unknown> } = {},
): Config {
  const echo = { name: 'echo', match: { path_prefix: '/test.Echo/' }, cluster: 'grpc', timeout_ms: 120_000 };
  const grpcCluster = { ...cluster('grpc', grpcEndpoints), protocol: 'http2' };
  return config([...(o.routes ?? []), echo], [grpcCluster, ...(o.clusters ?? [])], { listener: { ...GRPC_LISTENER, ...o.listener } });
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

const mib = (bytes: number): number => +(bytes / 2 ** 20).toFixed(1);

/** Samples the VmRSS of process `pid` every 20 ms from now; stop() gives the figure at the start, the peak, and how far it grew. */
function sampleRss(pid: number): { stop(): { idle_rss_mb: number; peak_rss_mb: number; grownBytes: number } } {
  const idle = rssBytes(pid);
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 20);
  track({ close: () => Promise.resolve(clearInterval(sampler)) });
  return {
    stop() {
      clearInterval(sampler);
      peak = Math.max(peak, rssBytes(pid));
      return { idle_rss_mb: mib(idle), peak_rss_mb: mib(peak), grownBytes: peak - idle };
    },
  };
}

/** The raw server behind a sidecar and a client on it, the path (session, code) warmed by one call before any memory figure. */
async function startRawBehindSidecar(): Promise<{ up: RawGrpcServer; sc: Sidecar; c: EchoClient }> {
  const up = await startRawGrpcServer();
  const sc = await startSidecar(sidecarConfig([up.address]));
  const c = client(sc.port());
  const warm = await unary(c, Buffer.from('warm'));
  expect(warm.code).toBe(grpc.status.OK);
  return { up, sc, c };
}

describe('gRPC under load and change', () => {
  it('GOAWAY from one endpoint during 2000 unary calls at concurrency 50: every call succeeds, the pool opens new sessions', async () => {
    const a = await startEchoServer();
    track(a);
    const b = await startRawGrpcServer();
    const sc = await startSidecar(sidecarConfig([a.address, b.address]));
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
    const v1 = sidecarConfig([a.address], { clusters: [{ name: 'side', protocol: 'http2', endpoints: [{ address: a.address }] }] });
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

    // Reloads that keep the stream's route: the same routes with an unrelated cluster changed and
    // the listener's HTTP/2 SETTINGS changed (sent to the open session), back and forth.
    const v2 = sidecarConfig([a.address], {
      clusters: [{ name: 'side', protocol: 'http2', endpoints: [{ address: other.address }] }],
      listener: { http2: { max_concurrent_streams: 50 } },
    });
    const versions: number[] = [];
    for (let i = 0; i < 10; i++) {
      const before = got.length;
      const r = await adminCall(sc, 'PUT', '/config', i % 2 === 0 ? v2 : v1);
      expect(r.status, r.text).toBe(200);
      versions.push(r.json.version as number);
      await waitFor(() => got.length >= before + 10, `messages after reload ${i}`);
    }
    // The last reload sends new Unary calls to the side cluster (its endpoint: the raw server); Bidi keeps its route.
    const v3 = sidecarConfig([a.address], {
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
    // The stream's pool survived every reload: one connection to its endpoint all along.
    expect(endpointView(await clusterView(sc, 'grpc'), a.address).connections_opened_total).toBe(1);
    console.log(`grpc bidi across 11 reloads: ${sent} messages each way`);
  }, 120_000);

  it('a 100 MiB server stream to a slow client: arrives whole, the server never runs far ahead of what the client has read, the sidecar RSS stays bounded', async () => {
    const { up, sc, c } = await startRawBehindSidecar();
    const rss = sampleRss(sc.pid);

    const call = c.serverStream(Buffer.alloc(4), new grpc.Metadata(), { deadline: Date.now() + 120_000 });
    const hash = createHash('sha256');
    let messages = 0;
    let read = 0;
    let inOrder = true;
    // The most the server had written beyond what the client had read, seen at each message read.
    let maxAhead = 0;
    call.on('data', (m: Buffer) => {
      if (m.length !== BIG_MESSAGE_BYTES || m.readUInt32BE(0) !== messages) inOrder = false;
      hash.update(m);
      messages++;
      read += m.length;
      maxAhead = Math.max(maxAhead, up.big.written - read);
      if (messages % 4 === 0) {
        // A slow reader: a short pause after every 256 KiB.
        call.pause();
        setTimeout(() => call.resume(), 5);
      }
    });
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    // grpc-js reports the status when it arrives, possibly before a paused reader has taken every message: wait for the end too.
    const end = new Promise<void>((resolve) => call.on('end', resolve));
    call.on('error', () => {});

    const [st] = await Promise.all([status, end]);
    const { grownBytes, ...memory } = rss.stop();
    const report = { ...memory, server_max_ahead_of_client_mb: mib(maxAhead), server_writes_waiting_for_drain: up.big.refused };
    console.log(`grpc 100 MiB server stream: ${JSON.stringify(report)}`);
    expect(st.code).toBe(grpc.status.OK);
    expect(messages).toBe(BIG_MESSAGES);
    expect(read).toBe(BIG_TOTAL);
    expect(inOrder).toBe(true);
    expect(hash.digest('hex')).toBe(up.big.sha);
    // Flow control end to end: the server is held to the windows and buffers of three hops (its
    // writes wait for 'drain'), never to the sidecar's memory; a proxy that buffered would let it
    // run tens of MiB ahead of this reader.
    expect(up.big.refused).toBeGreaterThan(0);
    expect(maxAhead, JSON.stringify(report)).toBeLessThan(16 * 1024 * 1024);
    expect(grownBytes, JSON.stringify(report)).toBeLessThan(64 * 1024 * 1024);
  }, 180_000);

  it('a 100 MiB client stream to a slow server: the client never runs far ahead of what the server has read, everything arrives, the sidecar RSS stays bounded', async () => {
    const { up, sc, c } = await startRawBehindSidecar();
    const rss = sampleRss(sc.pid);

    let answered: (a: { err: grpc.ServiceError | null; res: string }) => void = () => {};
    const answer = new Promise<{ err: grpc.ServiceError | null; res: string }>((resolve) => (answered = resolve));
    const upload = c.clientStream(new grpc.Metadata(), { deadline: Date.now() + 120_000 }, (err, res) => answered({ err, res: res?.toString() ?? '' }));
    const hash = createHash('sha256');
    // Bytes (framed) the client has handed to grpc-js, and the most it ever was ahead of the server's reads.
    let written = 0;
    let maxAhead = 0;
    for (let i = 0; i < BIG_MESSAGES; i++) {
      const framed = grpcFrame(bigMessage(i));
      hash.update(framed);
      written += framed.length;
      maxAhead = Math.max(maxAhead, written - up.upload.received);
      if (!upload.write(framed.subarray(5))) await new Promise<void>((resolve) => upload.once('drain', resolve));
    }
    upload.end();
    const r = await answer;
    const { grownBytes, ...memory } = rss.stop();
    const report = { ...memory, client_max_ahead_of_server_mb: mib(maxAhead) };
    console.log(`grpc 100 MiB client stream: ${JSON.stringify(report)}`);
    expect(r.err).toBeNull();
    expect(r.res).toBe(`echo:${written}:${hash.digest('hex')}`);
    // Flow control end to end: the client is held to the windows and buffers of the path, not the sidecar's memory.
    expect(maxAhead, JSON.stringify(report)).toBeLessThan(16 * 1024 * 1024);
    expect(grownBytes, JSON.stringify(report)).toBeLessThan(64 * 1024 * 1024);
  }, 180_000);
});
