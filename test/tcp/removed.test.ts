// A tcp listener removed outright by a reload: its open connections keep flowing until they end
// (or a drain ends them), and their ends still count where the listener's did — closed, bytes and
// durations in /stats and /metrics under its name — with one access log line each.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, parsePrometheus, sampleValue, startSidecar, tempDir } from '../helpers/sidecar.js';
import { connectClient, startTcpApp, tcpSidecarConfig } from './helpers.js';

afterAll(closeAll);

interface TcpStat {
  listener: string;
  active: number;
  closed: number;
  bytes_from_client: number;
  bytes_from_upstream: number;
  duration_seconds_total: number;
}

describe('a tcp listener removed by a reload', () => {
  it('carries its open connection on, then counts and logs its end', async () => {
    const app = await startTcpApp();
    const log = path.join(tempDir(), 'access.log');
    const v1 = tcpSidecarConfig({ endpoints: [app.address], accessLog: log }) as { listeners: Array<Record<string, unknown>> };
    const sc = await startSidecar(v1);
    const open = await connectClient(sc.port());
    open.socket.write('before');
    await expect.poll(() => open.received().toString()).toBe('before');

    // `main` goes; another listener keeps the sidecar serving.
    const v2 = structuredClone(v1);
    v2.listeners = [{ name: 'other', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'app' }];
    expect((await adminCall(sc, 'PUT', '/config', v2)).status).toBe(200);

    open.socket.write(' after');
    await expect.poll(() => open.received().toString()).toBe('before after');
    open.socket.end();
    await open.ended;
    const stat = async (): Promise<TcpStat | undefined> =>
      ((await adminCall(sc, 'GET', '/stats')).json as { tcp: TcpStat[] }).tcp.find((t) => t.listener === 'main');
    await expect.poll(stat, { timeout: 10_000 }).toMatchObject({ active: 0, closed: 1, bytes_from_client: 12, bytes_from_upstream: 12 });
    expect((await stat())!.duration_seconds_total).toBeGreaterThan(0);
    const m = parsePrometheus((await adminCall(sc, 'GET', '/metrics')).text);
    expect(sampleValue(m, 'outrigger_tcp_connections_closed_total', { listener: 'main', cluster: 'app' })).toBe(1);
    expect(sampleValue(m, 'outrigger_tcp_bytes_total', { listener: 'main', cluster: 'app', direction: 'from_client' })).toBe(12);
    expect(sampleValue(m, 'outrigger_tcp_connections_active', { listener: 'main', cluster: 'app' })).toBe(0);

    // The log is buffered: stopping the sidecar writes it out.
    expect(await sc.stop()).toBe(0);
    const lines = readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ listener: 'main', protocol: 'tcp', end: 'closed', bytes_from_client: 12, bytes_from_upstream: 12 })]);
  });
});
