// A drain (SIGTERM) of a sidecar with HTTP/2 calls in flight on its own HTTP/2 listener. Every
// session gets the sidecar's GOAWAY while its streams wait at the upstream. The streams are
// answered chunked, so each ends with trailers: the listener responds with waitForTrailers, the
// pattern with which Node 20's http2 server was seen to corrupt its heap when sessions close
// (test/h2/h2_upstream.test.ts, startH2Upstream). The calls in flight must complete with their
// trailers, a call sent after the GOAWAY is not processed, new connections are refused, and the
// sidecar exits 0.

import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, startSidecar, startUpstream, tryConnect } from '../helpers/sidecar.js';
import { h2connect, h2request } from './h2_client.js';

afterAll(closeAll);

const CALLS = 10;

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
      for (const res of held.splice(0)) {
        res.writeHead(200, { 'content-type': 'application/grpc', trailer: 'grpc-status' });
        res.write('answer');
        res.addTrailers({ 'grpc-status': '0' });
        res.end();
      }
    };
    const sc = await startSidecar({
      // Longer than the test waits for anything: the drain must end because the calls finished.
      node: { workers: 1, drain_timeout_ms: 60_000 },
      admin: { address: '127.0.0.1:0' },
      listeners: [{ name: 'h2', address: '127.0.0.1:0', engine: 'strict', protocol: 'http2', routes: [{ match: { path_prefix: '/' }, cluster: 'held' }] }],
      clusters: [{ name: 'held', endpoints: [{ address: up.address }] }],
    });

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
});
