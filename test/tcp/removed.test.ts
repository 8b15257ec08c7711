// A tcp listener removed outright by a reload: its open connections keep flowing until they end
// (or a drain ends them), and their ends still count where the listener's did — closed, bytes and
// durations in /stats and /metrics under its name — with one access log line each.

import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { accessLogLines, adminCall, closeAll, deadPort, parsePrometheus, sampleValue, tempDir } from '../helpers/sidecar.js';
import { connectClient, sidecarWithOpenConnection, startTcpApp, tcpSidecarConfig, tcpStatOf, type TcpStat } from './helpers.js';

afterAll(closeAll);

describe('a tcp listener removed by a reload', () => {
  it('carries its open connection on, then counts and logs its end', async () => {
    const app = await startTcpApp();
    const log = path.join(tempDir(), 'access.log');
    const v1 = tcpSidecarConfig({ endpoints: [app.address], accessLog: log }) as { listeners: Array<Record<string, unknown>> };
    const { sc, open } = await sidecarWithOpenConnection(v1);

    // `main` goes; another listener keeps the sidecar serving.
    const v2 = structuredClone(v1);
    v2.listeners = [{ name: 'other', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'app' }];
    expect((await adminCall(sc, 'PUT', '/config', v2)).status).toBe(200);

    open.socket.write(' after');
    await expect.poll(() => open.received().toString()).toBe('before after');
    open.socket.end();
    await open.ended;
    const stat = async (): Promise<TcpStat | undefined> => tcpStatOf((await adminCall(sc, 'GET', '/stats')).json, 'main');
    await expect.poll(stat, { timeout: 10_000 }).toMatchObject({ active: 0, closed: 1, bytes_from_client: 12, bytes_from_upstream: 12 });
    expect((await stat())!.duration_seconds_total).toBeGreaterThan(0);
    const m = parsePrometheus((await adminCall(sc, 'GET', '/metrics')).text);
    expect(sampleValue(m, 'outrigger_tcp_connections_closed_total', { listener: 'main', cluster: 'app' })).toBe(1);
    expect(sampleValue(m, 'outrigger_tcp_bytes_total', { listener: 'main', cluster: 'app', direction: 'from_client' })).toBe(12);
    expect(sampleValue(m, 'outrigger_tcp_connections_active', { listener: 'main', cluster: 'app' })).toBe(0);

    // `main` comes back with another log: its connections are written there, not to the old one.
    // Through the admin API a log may only be written under the sidecar's own directory.
    const again = path.join(sc.dir, 'again.log');
    const v3 = structuredClone(v1);
    const port = await deadPort();
    v3.listeners[0]!['access_log'] = { path: again };
    v3.listeners[0]!['address'] = `127.0.0.1:${port}`;
    const put = await adminCall(sc, 'PUT', '/config', v3);
    expect(put.status).toBe(200);
    const next = await connectClient(port);
    next.socket.end('next');
    await next.ended;
    await expect.poll(async () => (await stat())?.closed, { timeout: 10_000 }).toBe(2);

    // The logs are buffered: stopping the sidecar writes them out.
    expect(await sc.stop()).toBe(0);
    expect(accessLogLines(log)).toEqual([
      expect.objectContaining({ listener: 'main', protocol: 'tcp', end: 'closed', bytes_from_client: 12, bytes_from_upstream: 12 }),
    ]);
    expect(accessLogLines(again)).toEqual([expect.objectContaining({ listener: 'main', end: 'closed', bytes_from_client: 4 })]);
  });
});
