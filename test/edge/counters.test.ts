// One counter pipeline (issue 10): counters kept in data-plane objects reach /metrics as growth
// posted by the workers, so they never go down for the life of the process — not when a worker
// crashes and is replaced, and not when a reload re-binds the listener (new objects at zero).

import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, hookRoutes, httpGet, rawRequest, startSidecar, startUpstream, type Sidecar } from '../helpers/sidecar.js';

async function metric(sc: Sidecar, series: string): Promise<number> {
  const text = (await httpGet(`${sc.admin}/metrics`)).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? -1 : Number(line.slice(series.length + 1));
}

/** Waits until `series` reads `want` (workers post their growth once a second). */
async function until(sc: Sidecar, series: string, want: number): Promise<void> {
  await expect.poll(() => metric(sc, series), { timeout: 10_000, interval: 100 }).toBe(want);
}

function listener(engine: 'uws' | 'node'): Record<string, unknown> {
  return {
    name: 'main',
    address: '127.0.0.1:0',
    engine,
    routes: hookRoutes('/crash', 'test_crash'),
  };
}

const DROPPED = 'outrigger_headers_with_underscores_dropped_total{listener="main"}';

describe('counters never decrease', () => {
  afterAll(closeAll);

  it('across a worker crash and a listener re-bind', async () => {
    const app = await startUpstream();
    const cfg = { node: { workers: 1 }, listeners: [listener('node')], clusters: [{ name: 'app', endpoints: [{ address: app.address }] }] };
    const sc = await startSidecar(cfg, { env: { OUTRIGGER_ENABLE_TEST_HOOKS: '1' } });
    expect(await metric(sc, DROPPED)).toBe(0); // declared at zero from the start
    const underscored = (): Promise<unknown> => rawRequest(sc.port(), 'GET /x HTTP/1.1\r\nHost: x\r\nx_a: 1\r\n\r\n');
    for (let i = 0; i < 3; i++) await underscored();
    await until(sc, DROPPED, 3);

    // The worker crashes and is replaced: its listener objects start over at zero.
    await rawRequest(sc.port(), 'GET /crash HTTP/1.1\r\nHost: x\r\n\r\n');
    await sc.waitForLog((e) => e.msg === 'worker exited; restarting', 10_000);
    expect(await metric(sc, DROPPED)).toBe(3);
    // The replacement serves again (this request has an underscored header too: the 4th).
    await expect
      .poll(async () => (await rawRequest(sc.port(), 'GET /x HTTP/1.1\r\nHost: x\r\nx_b: 1\r\n\r\n')).response?.status, { timeout: 10_000, interval: 100 })
      .toBe(200);
    await until(sc, DROPPED, 4);

    // Two reloads that re-bind the listener (node → uws → node): the last one is a new listener
    // object whose own count starts at zero.
    for (const engine of ['uws', 'node'] as const) {
      const put = await httpGet(`${sc.admin}/config`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${sc.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...cfg, listeners: [{ ...listener(engine), address: `127.0.0.1:${sc.port()}` }] }),
      });
      expect(put.status).toBe(200);
    }
    expect(await metric(sc, DROPPED)).toBe(4);
    await underscored();
    await until(sc, DROPPED, 5);
  });
});
