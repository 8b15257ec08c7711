// Reloads of `tcp_fallback`: adding it to a running auto listener turns detection on (the
// listener is re-bound on its port: raw bytes that got a 400 before now reach the fallback app),
// pointing it at another cluster sends new opaque connections there while an open one stays on
// its endpoint, and removing it turns detection off again — HTTP is served throughout.

import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, httpGet, startSidecar, startUpstream } from '../helpers/sidecar.js';
import { connectClient, startTcpApp } from '../tcp/helpers.js';

afterAll(closeAll);

const PING = '*1\r\n$4\r\nPING\r\n';

/** Sends a redis PING on a fresh connection, half-closes, and resolves to what came back. */
async function ping(port: number): Promise<string> {
  const c = await connectClient(port);
  c.socket.end(PING);
  await Promise.race([c.ended, c.closed]);
  return c.received().toString('latin1');
}

describe('tcp_fallback on reload', () => {
  it('is turned on, re-pointed and turned off on a running listener', async () => {
    const upstream = await startUpstream();
    const first = await startTcpApp();
    const second = await startTcpApp();
    const listener: Record<string, unknown> = {
      name: 'main',
      address: '127.0.0.1:0',
      routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'web' }],
    };
    const config = {
      node: { workers: 1 },
      listeners: [listener],
      clusters: [
        { name: 'web', endpoints: [{ address: upstream.address }] },
        { name: 'first', endpoints: [{ address: first.address }] },
        { name: 'second', endpoints: [{ address: second.address }] },
      ],
    };
    const sc = await startSidecar(config);
    const port = sc.port();
    listener['address'] = `127.0.0.1:${port}`;
    expect(await ping(port)).toMatch(/^HTTP\/1\.1 400 /);

    listener['tcp_fallback'] = { cluster: 'first', detect_timeout_ms: 300 };
    expect((await adminCall(sc, 'PUT', '/config', config)).status).toBe(200);
    await expect.poll(() => ping(port), { timeout: 10_000 }).toBe(PING);
    expect((await httpGet({ port, path: '/after-on' })).status).toBe(200);

    const open = await connectClient(port);
    open.socket.write('kept;');
    await expect.poll(() => open.received().toString()).toBe('kept;');
    const onFirst = first.sockets.length;
    listener['tcp_fallback'] = { cluster: 'second', detect_timeout_ms: 300 };
    expect((await adminCall(sc, 'PUT', '/config', config)).status).toBe(200);
    await expect.poll(() => ping(port), { timeout: 10_000 }).toBe(PING);
    expect(second.sockets.length).toBeGreaterThanOrEqual(1);
    expect(first.sockets.length).toBe(onFirst);
    open.socket.write('open');
    await expect.poll(() => open.received().toString()).toBe('kept;open');
    open.socket.end();

    delete listener['tcp_fallback'];
    expect((await adminCall(sc, 'PUT', '/config', config)).status).toBe(200);
    await expect.poll(() => ping(port), { timeout: 10_000 }).toMatch(/^HTTP\/1\.1 400 /);
    expect((await httpGet({ port, path: '/after-off' })).status).toBe(200);
    expect(upstream.requests.map((r) => r.url)).toEqual(['/after-on', '/after-off']);
  });
});
