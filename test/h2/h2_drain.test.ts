// A drain (SIGTERM) of a sidecar with HTTP/2 calls in flight on its own HTTP/2 listener. Every
// session gets the sidecar's GOAWAY while its streams wait at the upstream. The streams are
// answered chunked, so each ends with trailers: the listener responds with waitForTrailers, the
// pattern with which Node 20's http2 server was seen to corrupt its heap when sessions close
// (test/h2/h2_upstream.test.ts, startH2Upstream). The calls in flight must complete with their
// trailers, a call sent after the GOAWAY is not processed, new connections are refused, and the
// sidecar exits 0. A call whose exchange has ended while its stream still waits to send the end of
// its response (flow control) holds the drain until its trailers are out.

import http from 'node:http';
import http2 from 'node:http2';
import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, eventually, startSidecar, startUpstream, tryConnect } from '../helpers/sidecar.js';
import { h2connect, h2request } from './h2_client.js';

afterAll(closeAll);

const CALLS = 10;

/** A unary gRPC answer, chunked so that it ends with trailers. */
function answerCall(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/grpc', trailer: 'grpc-status' });
  res.write('answer');
  res.addTrailers({ 'grpc-status': '0' });
  res.end();
}

/** A 1-worker sidecar with an HTTP/2 listener to `app`; its drain timeout is longer than the test waits for anything: a drain must end because the calls finished. */
function drainingSidecar(app: string): ReturnType<typeof startSidecar> {
  return startSidecar({
    node: { workers: 1, drain_timeout_ms: 60_000 },
    admin: { address: '127.0.0.1:0' },
    listeners: [{ name: 'h2', address: '127.0.0.1:0', engine: 'strict', protocol: 'http2', routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }],
    clusters: [{ name: 'app', endpoints: [{ address: app }] }],
  });
}

describe('drain of an HTTP/2 listener', () => {
  it('SIGTERM with calls in flight: each completes with its trailers, a call after the GOAWAY is refused unprocessed, new connections refused, exit 0', async () => {
    const held: http.ServerResponse[] = [];
    const up = await startUpstream(
      (req, res) => {
        req.resume();
        req.on('end', () => held.push(res));
      },
      { name: 'held' },
    );
    const release = (): void => {
      for (const res of held.splice(0)) answerCall(res);
    };
    const sc = await drainingSidecar(up.address);

    const session = await h2connect(`http://127.0.0.1:${sc.port()}`);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const call = (i: number) =>
      h2request(session, { ':method': 'POST', ':path': `/svc/Call${i}`, 'content-type': 'application/grpc', te: 'trailers' }, `request ${i}`, 60_000);
    const inflight = Array.from({ length: CALLS }, (_, i) => call(i));
    await expect.poll(() => held.length, { timeout: 20_000 }).toBe(CALLS);

    process.kill(sc.pid, 'SIGTERM');
    await sc.waitForLog((e) => e.msg === 'draining');
    await expect.poll(() => goaway, { timeout: 20_000 }).toBe(true);

    // Sent after the GOAWAY: node's client refuses it (or the sidecar would, REFUSED_STREAM); unprocessed.
    const late = await call(CALLS).then(
      (a) => ({ status: a.status, refused: a.rstCode === 7 }),
      (e: NodeJS.ErrnoException) => ({ status: 0, refused: e.code === 'ERR_HTTP2_GOAWAY_SESSION' }),
    );
    expect(late).toEqual({ status: 0, refused: true });
    // New connections are refused while the calls are still held.
    await expect.poll(() => tryConnect(sc.port()), { timeout: 20_000 }).toBe('ECONNREFUSED');
    expect(up.requests).toHaveLength(CALLS);

    release();
    const answers = await Promise.all(inflight);
    for (const a of answers) {
      expect(a.error).toBeNull();
      expect(a.status).toBe(200);
      expect(a.body.toString()).toBe('answer');
      expect(a.trailers?.['grpc-status']).toBe('0');
    }
    expect(await sc.exit(15_000)).toBe(0);
    expect(sc.entries().find((e) => e.msg === 'stopped')).toMatchObject({ unfinished: 0 });
    expect(sc.stderr()).toBe('');
  }, 90_000);

  it('a response the exchange has ended but the stream has not sent yet (the client’s flow-control window is shut) holds the drain: the trailers arrive, then the sidecar stops', async () => {
    // Before 2026-12-07 the drain ended with the last exchange; the session was then destroyed
    // before 'wantTrailers', and the call lost its grpc-status (1 run in ~20 of the test above).
    const up = await startUpstream((req, res) => {
      req.resume();
      req.on('end', () => answerCall(res));
    });
    const sc = await drainingSidecar(up.address);
    // A window of 0: the sidecar may send HEADERS but no DATA on the call until the client opens it.
    const session = http2.connect(`http://127.0.0.1:${sc.port()}`, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    const stream = session.request({ ':method': 'POST', ':path': '/svc/Slow', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    const got = { status: 0, body: '', trailers: null as Record<string, unknown> | null, closed: false };
    stream.on('response', (h) => (got.status = Number(h[':status'])));
    stream.on('data', (d: Buffer) => (got.body += d.toString()));
    stream.on('trailers', (t) => (got.trailers = t));
    stream.on('close', () => (got.closed = true));
    stream.end('request');
    await expect.poll(() => got.status, { timeout: 10_000 }).toBe(200);

    process.kill(sc.pid, 'SIGTERM');
    await sc.waitForLog((e) => e.msg === 'draining');
    // The exchange has ended (the upstream answered whole, and the call is counted) ...
    await eventually(
      async () => {
        const s = (await adminCall(sc, 'GET', '/stats')).json as { listeners: Array<{ name: string; requests: number }> };
        return s.listeners.find((l) => l.name === 'h2')?.requests === 1 ? true : undefined;
      },
      'the call counted',
      10_000,
      100,
    );
    // ... but its body and trailers are still in the sidecar: the drain waits for them.
    expect(got).toMatchObject({ body: '', trailers: null, closed: false });
    expect(sc.entries().some((e) => e.msg === 'stopped')).toBe(false);

    session.settings({ initialWindowSize: 65_535 });
    await expect.poll(() => got.closed, { timeout: 10_000 }).toBe(true);
    expect(got).toMatchObject({ status: 200, body: 'answer', trailers: { 'grpc-status': '0' } });
    session.close();
    expect(await sc.exit(15_000)).toBe(0);
    expect(sc.entries().find((e) => e.msg === 'stopped')).toMatchObject({ unfinished: 0 });
  }, 90_000);
});
