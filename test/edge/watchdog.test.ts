// The worker watchdog (issue 10): a worker whose event loop is stuck longer than
// node.worker_stall_ms is found by its missing heartbeats and replaced, counted in /metrics; a
// stuck worker serving uws listeners cannot be replaced (a thread that ends with uWS sockets open
// aborts the process), so the sidecar exits with code 70 for its service manager to restart it.

import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, cluster, config, hookRoutes, httpGet, rawRequest, startSidecar, startUpstream } from '../helpers/sidecar.js';

const HOOKS = { env: { OUTRIGGER_ENABLE_TEST_HOOKS: '1' } };

function sidecarConfig(engine: 'uws' | 'node', app: string): Record<string, unknown> {
  return config(hookRoutes('/stall', 'test_stall'), [cluster('app', [app])], { node: { worker_stall_ms: 1000 }, listener: { engine } });
}

describe('worker watchdog', () => {
  afterAll(closeAll);

  it('node engine: a stuck worker is replaced, counted, and the listener serves again', async () => {
    const app = await startUpstream();
    const sc = await startSidecar(sidecarConfig('node', app.address), HOOKS);
    expect((await httpGet(sc.url('/ok'))).status).toBe(200);
    void rawRequest(sc.port(), 'GET /stall HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 15_000 });
    const line = await sc.waitForLog((e) => e.msg === 'worker stuck; replacing it', 15_000);
    expect(line['worker']).toBe(1);
    await expect
      .poll(
        () =>
          httpGet(sc.url('/ok'), { timeoutMs: 2000 }).then(
            (r) => r.status,
            () => 0,
          ),
        { timeout: 10_000, interval: 100 },
      )
      .toBe(200);
    const metrics = (await httpGet(`${sc.admin}/metrics`)).body.toString();
    // At least this stall (a replacement slow to start on a loaded machine may be counted too).
    expect(Number(/^outrigger_worker_stalls_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(sc.exited()).toBe(false);
  });

  it('uws engine: a stuck worker makes the sidecar exit with code 70 and say why', async () => {
    const app = await startUpstream();
    const sc = await startSidecar(sidecarConfig('uws', app.address), HOOKS);
    void rawRequest(sc.port(), 'GET /stall HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 15_000 });
    await sc.waitForLog((e) => typeof e.msg === 'string' && e.msg.startsWith('worker stuck; it serves uws listeners'), 15_000);
    expect(await sc.exit(10_000)).toBe(70);
    expect(sc.stderr()).toMatch(/worker 1 stuck for \d+ ms while serving uws listeners; exiting \(70\)/);
  });
});
