// The access log of upgraded connections (issue 15): an answered upgrade writes one line when
// both its sockets have closed — the request, the upstream's answer (101, or the status it gave
// instead) and the bytes of the whole tunnel each way — on every engine (on uws, the bytes of the
// frames the proxy re-encoded).

import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/live.js';
import { accessLogLines, adminCall, closeAll, startSidecar } from '../helpers/sidecar.js';
import { closed, nextMessage, openWs, refusalOf, send, startWsApp, wsConfig } from './helpers.js';

describe.each(['strict', 'node', 'uws'] as const)('access log of WebSocket tunnels, %s engine', (engine) => {
  afterAll(closeAll);

  it('one line per tunnel when it ends: 101, the route, the endpoint and its bytes both ways; a refused upgrade logs the app’s status', async () => {
    const app = await startWsApp();
    const log = path.join(tempDir(), 'access.log');
    const cfg = wsConfig(app, engine);
    (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['access_log'] = { path: log };
    const sc = await startSidecar(cfg);
    const url = (p: string): string => `ws://127.0.0.1:${sc.port()}${p}`;

    const ws = await openWs(url('/chat?room=7'), { headers: { 'x-request-id': 'ws-log-1' } });
    const echo = nextMessage(ws);
    await send(ws, Buffer.alloc(1000, 1), { binary: true });
    expect((await echo).data.length).toBe(1000);
    const bye = closed(ws);
    ws.close(1000, 'done');
    await bye;
    expect((await refusalOf(url('/refuse'))).status).toBe(403);
    // The tunnel is over on both sides before the sidecar stops (a drain would wait for it anyway).
    await expect.poll(async () => (await adminCall(sc, 'GET', '/stats')).json.upgrades[0]?.closed, { timeout: 10_000 }).toBe(1);
    // The log is buffered: stopping the sidecar writes it out.
    expect(await sc.stop()).toBe(0);

    const lines = accessLogLines(log);
    const tunnel = lines.find((l) => l['path'] === '/chat?room=7');
    expect(tunnel).toMatchObject({
      method: 'GET',
      status: 101,
      route: 'ws',
      cluster: 'app',
      upstream: app.address,
      request_id: 'ws-log-1',
      error: null,
      tries: 1,
    });
    // From the client after the 101: the 1000-byte frame (with its header and mask) and its close frame.
    expect(tunnel!['bytes_in']).toBeGreaterThan(1000);
    // From the app: its 101 head, the echoed frame and its close frame.
    expect(tunnel!['bytes_out']).toBeGreaterThan(1000);
    const refused = lines.find((l) => l['path'] === '/refuse');
    expect(refused).toMatchObject({ method: 'GET', status: 403, cluster: 'app', error: null });
    expect(lines.filter((l) => l['path'] === '/chat?room=7')).toHaveLength(1);
  });
});
