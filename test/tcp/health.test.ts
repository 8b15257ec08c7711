// `health_check: {tcp: {}}`: a connect is the whole check. A dead endpoint turns unhealthy with
// the connect error, a listening one stays healthy, and new connections avoid the unhealthy one.

import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, deadPort, startSidecar, untilCluster } from '../helpers/sidecar.js';
import { connectClient, startTcpApp, tcpSidecarConfig } from './helpers.js';

afterAll(closeAll);

describe('TCP health checks', () => {
  it('marks an endpoint that refuses connections unhealthy, keeps a listening one healthy, and balances to the healthy one', async () => {
    const live = await startTcpApp();
    const dead = `127.0.0.1:${await deadPort()}`;
    const cfg = tcpSidecarConfig({ endpoints: [dead, live.address], lb: 'round_robin' });
    (cfg['clusters'] as Array<Record<string, unknown>>)[0]!['health_check'] = { tcp: {}, interval_ms: 50, unhealthy_threshold: 1 };
    const sc = await startSidecar(cfg);
    const c = await untilCluster(
      sc,
      'app',
      (v) => v.endpoints.every((e) => e.health_check?.last_checked != null) && v.endpoints.find((e) => e.address === dead)?.healthy === false,
      'the dead endpoint checked unhealthy',
    );
    expect(c.endpoints.find((e) => e.address === dead)?.health_check).toMatchObject({ healthy: false, last_error: 'connect failed: ECONNREFUSED' });
    expect(c.endpoints.find((e) => e.address === live.address)?.health_check).toMatchObject({ healthy: true, last_error: null });
    // The health checks' own connections reached the live app; the proxied ones come on top.
    const before = live.sockets.length;
    for (let i = 0; i < 3; i++) {
      const client = await connectClient(sc.port());
      client.socket.write('ok');
      await expect.poll(() => client.received().toString()).toBe('ok');
    }
    expect(live.sockets.filter((s) => s.bytesRead > 0).length).toBe(3);
    expect(live.sockets.length).toBeGreaterThanOrEqual(before + 3);
  });
});
