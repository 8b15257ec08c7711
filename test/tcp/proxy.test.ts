// Raw TCP through one sidecar (`protocol: tcp` listener → cluster): bytes pass both ways exactly,
// a FIN in either direction passes while the other direction keeps flowing, a reset on either side
// becomes a reset on the other, idle connections close, the circuit breaker refuses connections
// beyond max_requests, connections are balanced across endpoints, and a dead endpoint's connect
// failure is reported to outlier detection and takes it out of the balancing. /stats, /metrics and the access log count it all.

import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  accessLogLines,
  adminCall,
  closeAll,
  deadPort,
  parsePrometheus,
  sampleValue,
  startSidecar,
  tempDir,
  untilCluster,
  type Sidecar,
} from '../helpers/sidecar.js';
import { connectClient, halfCloseAndResetCases, startTcpApp, tcpSidecarConfig, tcpStatOf, type TcpApp, type TcpStat } from './helpers.js';

afterAll(closeAll);

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function tcpStats(sc: Sidecar): Promise<TcpStat | undefined> {
  return tcpStatOf((await adminCall(sc, 'GET', '/stats')).json, 'main');
}

describe('raw TCP through one sidecar', () => {
  let app: TcpApp;
  let sc: Sidecar;
  let log: string;

  it('starts', async () => {
    app = await startTcpApp();
    log = path.join(tempDir(), 'access.log');
    sc = await startSidecar(tcpSidecarConfig({ endpoints: [app.address], accessLog: log }));
  });

  it('carries 1 MB each way exactly; the client FIN reaches the app, which answers and closes', async () => {
    const c = await connectClient(sc.port());
    const payload = randomBytes(1024 * 1024);
    c.socket.end(payload);
    await c.ended;
    expect(sha(c.received())).toBe(sha(payload));
    expect(await c.closed).toBe('');
  });

  halfCloseAndResetCases(
    () => sc.port(),
    () => app,
  );

  it('/stats, /metrics and the access log count the connections', async () => {
    await expect.poll(async () => (await tcpStats(sc))?.closed, { timeout: 10_000 }).toBe(5);
    const t = (await tcpStats(sc))!;
    expect(t).toMatchObject({ cluster: 'app', opened: 5, active: 0 });
    expect(t.bytes_from_client).toBe(1024 * 1024 + 'question'.length + 'still talking'.length);
    expect(t.bytes_from_upstream).toBe(1024 * 1024 + 'answer after your FIN'.length + 'bye from the app'.length);
    expect(t.duration_seconds_total).toBeGreaterThan(0);
    const m = parsePrometheus((await adminCall(sc, 'GET', '/metrics')).text);
    expect(sampleValue(m, 'outrigger_tcp_bytes_total', { listener: 'main', cluster: 'app', direction: 'from_client' })).toBe(t.bytes_from_client);
    expect(sampleValue(m, 'outrigger_tcp_connections_total', { listener: 'main', cluster: 'app', destination_port: String(sc.port()) })).toBe(5);
    expect(sampleValue(m, 'outrigger_tcp_connections_active', { listener: 'main', cluster: 'app' })).toBe(0);
    // The log is buffered: stopping the sidecar writes it out.
    expect(await sc.stop()).toBe(0);
    const lines = accessLogLines(log);
    expect(lines.length).toBe(5);
    expect(lines.map((l) => l['end']).sort()).toEqual(['client_reset', 'closed', 'closed', 'closed', 'upstream_reset']);
    expect(lines[0]).toMatchObject({ protocol: 'tcp', cluster: 'app', upstream: app.address, destination_port: sc.port(), bytes_from_client: 1024 * 1024 });
  });
});

describe('tcp listener limits and balancing', () => {
  it('closes a connection idle for tcp.idle_timeout_ms', async () => {
    const app = await startTcpApp();
    const sc = await startSidecar(tcpSidecarConfig({ endpoints: [app.address], idleTimeoutMs: 200 }));
    const c = await connectClient(sc.port());
    c.socket.write('one');
    await expect.poll(() => c.received().toString()).toBe('one');
    // No byte either way from here: both sides are closed by the sidecar.
    await c.ended;
    await expect.poll(() => app.sockets[0]!.destroyed).toBe(true);
  });

  it('refuses connections beyond circuit_breaker.max_requests at once, and counts them', async () => {
    const app = await startTcpApp();
    const sc = await startSidecar(tcpSidecarConfig({ endpoints: [app.address], maxConnections: 2 }));
    const held = await Promise.all([connectClient(sc.port()), connectClient(sc.port())]);
    for (const c of held) c.socket.write('x');
    await expect.poll(() => held.map((c) => c.received().toString())).toEqual(['x', 'x']);
    const third = await connectClient(sc.port());
    await third.ended;
    expect(third.received().length).toBe(0);
    expect(app.sockets.length).toBe(2);
    await expect.poll(async () => (await tcpStats(sc))?.refused, { timeout: 10_000 }).toEqual({ overflow: 1 });
    // Open connections count in /stats as they carry bytes, not only once closed.
    expect(await tcpStats(sc)).toMatchObject({ active: 2, bytes_from_client: 2, bytes_from_upstream: 2 });
    // A slot freed is a slot to use again.
    held[0].socket.end();
    await held[0].ended;
    const next = await connectClient(sc.port());
    next.socket.write('y');
    await expect.poll(() => next.received().toString()).toBe('y');
  });

  it('max_connections closes connections beyond it at accept', async () => {
    const app = await startTcpApp();
    const sc = await startSidecar(tcpSidecarConfig({ endpoints: [app.address], listener: { max_connections: 1 } }));
    const held = await connectClient(sc.port());
    held.socket.write('x');
    await expect.poll(() => held.received().toString()).toBe('x');
    const second = await connectClient(sc.port());
    await second.ended;
    expect(second.received().length).toBe(0);
    expect(app.sockets.length).toBe(1);
  });

  it('balances connections across two endpoints (round_robin)', async () => {
    const a = await startTcpApp();
    const b = await startTcpApp();
    const sc = await startSidecar(tcpSidecarConfig({ endpoints: [a.address, b.address], lb: 'round_robin' }));
    const clients = [];
    for (let i = 0; i < 4; i++) {
      const c = await connectClient(sc.port());
      c.socket.write('hi');
      await expect.poll(() => c.received().toString()).toBe('hi');
      clients.push(c);
    }
    expect([a.sockets.length, b.sockets.length]).toEqual([2, 2]);
  });

  it('least_request counts open connections: new ones go to the endpoint holding fewer', async () => {
    const a = await startTcpApp();
    const b = await startTcpApp();
    const sc = await startSidecar(tcpSidecarConfig({ endpoints: [a.address, b.address] }));
    // Two endpoints: power of two choices compares both, so each new connection goes to the one with fewer open.
    for (let i = 0; i < 6; i++) {
      const c = await connectClient(sc.port());
      c.socket.write('hi');
      await expect.poll(() => c.received().toString()).toBe('hi');
    }
    expect([a.sockets.length, b.sockets.length]).toEqual([3, 3]);
  });

  it('a connect failure to a dead endpoint closes that connection, the next one reaches the live endpoint, and outlier detection ejects the dead one', async () => {
    const live = await startTcpApp();
    const dead = `127.0.0.1:${await deadPort()}`;
    const sc = await startSidecar(
      tcpSidecarConfig({
        endpoints: [dead, live.address],
        lb: 'round_robin',
        outlier: { consecutive_gateway_failure: 1, base_ejection_ms: 60_000, max_ejection_percent: 50 },
      }),
    );
    const first = await connectClient(sc.port());
    await first.ended;
    expect(first.received().length).toBe(0);
    const second = await connectClient(sc.port());
    second.socket.write('alive');
    await expect.poll(() => second.received().toString()).toBe('alive');
    await untilCluster(sc, 'app', (c) => c.endpoints.find((e) => e.address === dead)?.ejected === true, 'the dead endpoint ejected');
    for (let i = 0; i < 3; i++) {
      const c = await connectClient(sc.port());
      c.socket.write('again');
      await expect.poll(() => c.received().toString()).toBe('again');
    }
    expect(live.sockets.length).toBe(4);
    await expect.poll(async () => (await tcpStats(sc))?.refused, { timeout: 10_000 }).toEqual({ connect_failed: 1 });
  });

  it('without outlier detection a dead endpoint costs one connection too: it leaves the balancing after its failed connect', async () => {
    const live = await startTcpApp();
    const dead = `127.0.0.1:${await deadPort()}`;
    const sc = await startSidecar(tcpSidecarConfig({ endpoints: [dead, live.address], lb: 'round_robin' }));
    const first = await connectClient(sc.port());
    await first.ended;
    expect(first.received().length).toBe(0);
    // Round robin would send every other connection to the dead endpoint; none goes there now.
    for (let i = 0; i < 6; i++) {
      const c = await connectClient(sc.port());
      c.socket.write('again');
      await expect.poll(() => c.received().toString()).toBe('again');
    }
    expect(live.sockets.length).toBe(6);
    await untilCluster(sc, 'app', (c) => c.endpoints.find((e) => e.address === dead)?.unreachable_workers === 1, 'the dead endpoint unreachable');
    await expect.poll(async () => (await tcpStats(sc))?.refused, { timeout: 10_000 }).toEqual({ connect_failed: 1 });
  });
});
