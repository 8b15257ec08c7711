// Reload and drain with raw TCP connections open: a reload that keeps the tcp listener keeps its
// open connections (a new cluster applies to new connections only); a drain lets open connections
// carry on for node.drain_timeout_ms, then closes them.

import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, deadPort, startSidecar } from '../helpers/sidecar.js';
import { connectClient, sidecarWithOpenConnection, startTcpApp, tcpSidecarConfig } from './helpers.js';

afterAll(closeAll);

describe('tcp listener reload and drain', () => {
  it('a reload that points the listener at another cluster keeps the open connection on the old endpoint', async () => {
    const first = await startTcpApp();
    const second = await startTcpApp();
    const v1 = tcpSidecarConfig({ endpoints: [first.address] });
    const { sc, open } = await sidecarWithOpenConnection(v1);

    const v2 = structuredClone(v1) as { listeners: Array<Record<string, unknown>>; clusters: Array<Record<string, unknown>> };
    v2.clusters.push({ name: 'other', endpoints: [{ address: second.address }] });
    v2.listeners[0]!['cluster'] = 'other';
    v2.listeners[0]!['address'] = `127.0.0.1:${sc.port()}`;
    const put = await adminCall(sc, 'PUT', '/config', v2);
    expect(put.status, JSON.stringify(put.json)).toBe(200);

    open.socket.write(' after');
    await expect.poll(() => open.received().toString()).toBe('before after');
    const fresh = await connectClient(sc.port());
    fresh.socket.write('new');
    await expect.poll(() => fresh.received().toString()).toBe('new');
    expect([first.sockets.length, second.sockets.length]).toEqual([1, 1]);
    // The kept connection still counts where it started, and its end is counted too.
    open.socket.end();
    fresh.socket.end();
    await Promise.all([open.ended, fresh.ended]);
    await expect
      .poll(
        async () =>
          ((await adminCall(sc, 'GET', '/stats')).json as { tcp: Array<{ cluster: string; active: number; closed: number }> }).tcp.map((t) => [
            t.cluster,
            t.active,
            t.closed,
          ]),
        {
          timeout: 10_000,
        },
      )
      .toEqual([
        ['app', 0, 1],
        ['other', 0, 1],
      ]);
  });

  it('a reload that moves the listener to another port keeps the open connection, and counts its bytes and its end', async () => {
    const app = await startTcpApp();
    const v1 = tcpSidecarConfig({ endpoints: [app.address] });
    const { sc, open } = await sidecarWithOpenConnection(v1);

    // The new port is one no process held a moment ago (deadPort); the other test lane may bind it
    // in between, which the reload refuses (409, "already in use by another process"): then another port.
    const v2 = structuredClone(v1) as { listeners: Array<Record<string, unknown>> };
    let put: Awaited<ReturnType<typeof adminCall>>;
    for (let attempt = 1; ; attempt++) {
      v2.listeners[0]!['address'] = `127.0.0.1:${await deadPort()}`;
      put = await adminCall(sc, 'PUT', '/config', v2);
      if (put.status !== 409 || attempt === 3) break;
    }
    expect(put.status, JSON.stringify(put.json)).toBe(200);
    open.socket.write(' after');
    await expect.poll(() => open.received().toString()).toBe('before after');
    open.socket.end();
    await open.ended;
    await expect
      .poll(async () => ((await adminCall(sc, 'GET', '/stats')).json as { tcp: Array<{ active: number; closed: number; bytes_from_client: number }> }).tcp, {
        timeout: 10_000,
      })
      .toMatchObject([{ active: 0, closed: 1, bytes_from_client: 'before after'.length }]);
  });

  it('a drain lets an open connection carry on, then closes it at node.drain_timeout_ms', async () => {
    const app = await startTcpApp();
    const cfg = tcpSidecarConfig({ endpoints: [app.address] });
    (cfg['node'] as Record<string, unknown>)['drain_timeout_ms'] = 3000;
    const sc = await startSidecar(cfg);
    const c = await connectClient(sc.port());
    c.socket.write('one');
    await expect.poll(() => c.received().toString()).toBe('one');
    const stopped = sc.stop();
    await sc.waitForLog((e) => e.msg === 'draining');
    // Still open during the grace period: bytes flow both ways.
    c.socket.write(' two');
    await expect.poll(() => c.received().toString()).toBe('one two');
    // Then closed when the grace period ends, and the sidecar exits.
    expect(await stopped).toBe(0);
    await c.ended;
    await expect.poll(() => app.sockets[0]!.destroyed).toBe(true);
  }, 20_000);
});
