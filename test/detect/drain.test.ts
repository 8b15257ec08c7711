// A drain with connections that protocol detection is still reading: a client that has sent half
// a request line when the drain begins counts in flight — the drain waits for it, and once its
// bytes decide it is HTTP its request is served; one still undecided when node.drain_timeout_ms
// runs out is closed then, and counted as cut off.

import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, httpGet, startSidecar, startUpstream, type Sidecar } from '../helpers/sidecar.js';
import { connectClient, startTcpApp, type Client } from '../tcp/helpers.js';

afterAll(closeAll);

/** Answers of the web app that wait for the test (`/late`); the others are answered at once. */
const held: http.ServerResponse[] = [];

/** One plaintext auto listener with tcp_fallback: HTTP to `web`, anything else to `fallback`. Detection waits long (the test decides). */
async function detectingSidecar(drainTimeoutMs: number): Promise<Sidecar> {
  const upstream = await startUpstream((req, res) => {
    if (req.url === '/late') held.push(res);
    else res.end('ok');
  });
  const fallback = await startTcpApp();
  return startSidecar({
    node: { workers: 1, drain_timeout_ms: drainTimeoutMs },
    listeners: [
      {
        name: 'main',
        address: '127.0.0.1:0',
        engine: 'node',
        tcp_fallback: { cluster: 'fallback', detect_timeout_ms: 60_000 },
        routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'web' }],
      },
    ],
    clusters: [
      { name: 'web', endpoints: [{ address: upstream.address }] },
      { name: 'fallback', endpoints: [{ address: fallback.address }] },
    ],
  });
}

/**
 * A connection the sidecar has accepted (its detector reads it): a request on a second connection
 * is served only after the first was taken from the accept queue (one worker, FIFO).
 */
async function acceptedConnection(sc: Sidecar): Promise<Client> {
  const c = await connectClient(sc.port());
  expect((await httpGet({ port: sc.port(), path: '/after' })).status).toBe(200);
  return c;
}

describe('a drain while protocol detection reads a connection', () => {
  it('waits for a half-sent request line, then serves the request it turns out to be', async () => {
    const sc = await detectingSidecar(30_000);
    const c = await acceptedConnection(sc);
    // "GE" could still be a method token: nothing is decided yet.
    c.socket.write('GE');
    const stopped = sc.stop();
    await sc.waitForLog((e) => e.msg === 'draining');
    c.socket.write('T /late HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    // The request reached the app: the drain is still waiting for it.
    await expect.poll(() => held.length, { timeout: 10_000 }).toBe(1);
    expect(sc.entries().some((e) => e.msg === 'stopped')).toBe(false);
    held[0]!.end('late');
    await expect.poll(() => c.received().toString('latin1'), { timeout: 10_000 }).toMatch(/^HTTP\/1\.1 200 /);
    expect(await stopped).toBe(0);
    expect(sc.entries().find((e) => e.msg === 'stopped')).toMatchObject({ unfinished: 0 });
  }, 30_000);

  it('closes a connection still undecided when the grace period ends, and counts it as cut off', async () => {
    const sc = await detectingSidecar(500);
    const c = await acceptedConnection(sc);
    c.socket.write('GE');
    expect(await sc.stop()).toBe(0);
    expect(sc.entries().find((e) => e.msg === 'stopped')).toMatchObject({ unfinished: 1 });
    await Promise.race([c.ended, c.closed]);
    expect(c.received().length).toBe(0);
  }, 30_000);
});
