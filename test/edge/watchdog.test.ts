// The worker watchdog (issue 10): a worker whose event loop is stuck longer than
// node.worker_stall_ms is found by its missing heartbeats and replaced, counted in /metrics; a
// stuck worker serving uws listeners cannot be replaced (a thread that ends with uWS sockets open
// aborts the process), so the sidecar exits with code 70 for its service manager to restart it.

import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, cluster, config, hookRoutes, httpGet, rawRequest, restartLines, startSidecar, startUpstream } from '../helpers/sidecar.js';

const HOOKS = { env: { OUTRIGGER_ENABLE_TEST_HOOKS: '1' } };

function sidecarConfig(engine: 'uws' | 'node' | 'strict', app: string): Record<string, unknown> {
  return config(hookRoutes('/stall', 'test_stall'), [cluster('app', [app])], { node: { worker_stall_ms: 1000 }, listener: { engine } });
}

describe('worker watchdog', () => {
  afterAll(closeAll);

  for (const engine of ['node', 'strict'] as const) {
    it(`${engine} engine: a stuck worker is replaced, counted, and the listener serves again`, async () => {
      const app = await startUpstream();
      const sc = await startSidecar(sidecarConfig(engine, app.address), HOOKS);
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
  }

  it('a stall limit under the old fixed 250 ms heartbeat: healthy workers, starting, idle and serving, are never taken for stuck', async () => {
    // Workers beat a fifth of node.worker_stall_ms apart (at most once a second), and a worker is
    // judged only once it has sent its first message (module loading comes before). With fixed
    // 250 ms beats, a 100 ms limit read a worker as stuck at start (its first message came > 100 ms
    // after the spawn) and whenever the watchdog's check fell > 100 ms after a beat.
    const app = await startUpstream();
    const sc = await startSidecar(
      config(hookRoutes('/stall', 'test_stall'), [cluster('app', [app.address])], { node: { workers: 2, worker_stall_ms: 100 } }),
      HOOKS,
    );
    await new Promise((r) => setTimeout(r, 1500));
    for (let i = 0; i < 20; i++) expect((await httpGet(sc.url('/ok'))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    expect(sc.entries().filter((e) => typeof e.msg === 'string' && e.msg.startsWith('worker stuck'))).toEqual([]);
    expect(restartLines(sc)).toEqual([]);
    // And a real stall is still found, at this limit.
    void rawRequest(sc.port(), 'GET /stall HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 15_000 });
    const line = await sc.waitForLog((e) => e.msg === 'worker stuck; replacing it', 15_000);
    expect(line['stalled_ms']).toBeGreaterThan(100);
  });

  it('a reload that shortens the stall limit: the watchdog follows it, counted from the last message', async () => {
    // Each worker's watchdog is a deadline after its last message; a reload sets it again for the
    // new limit. Started at 60 s, a stall would not be found within this test; after the reload
    // to 1 s it is, and it is reported (stalled_ms) from the stuck worker's last message.
    const app = await startUpstream();
    const v1 = config(hookRoutes('/stall', 'test_stall'), [cluster('app', [app.address])], { node: { worker_stall_ms: 60_000 } });
    const sc = await startSidecar(v1, HOOKS);
    expect((await httpGet(sc.url('/ok'))).status).toBe(200);
    const v2 = structuredClone(v1) as { node: Record<string, unknown> };
    v2.node['worker_stall_ms'] = 1000;
    expect((await adminCall(sc, 'PUT', '/config', v2)).status).toBe(200);
    const stuckAt = Date.now();
    void rawRequest(sc.port(), 'GET /stall HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 15_000 });
    const line = await sc.waitForLog((e) => e.msg === 'worker stuck; replacing it', 15_000);
    expect(line['stalled_ms']).toBeGreaterThanOrEqual(1000);
    expect(line['stalled_ms']).toBeLessThan(Date.now() - stuckAt + 2000); // from a message near the stall, not from the start
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

  it('a catastrophic header regex against a 60 KB header value does not stall the worker (linear-time matching)', async () => {
    const app = await startUpstream();
    const routes = [
      { name: 'evil', match: { headers: { 'x-a': { regex: '(a+)+$' } } }, cluster: 'app' },
      { name: 'rest', match: { path_prefix: '/ok/' }, cluster: 'app' },
    ];
    const engines = ['strict', 'node', 'uws'] as const;
    const sc = await startSidecar({
      node: { workers: 1, worker_stall_ms: 1000 },
      listeners: engines.map((engine) => ({ name: engine, address: '127.0.0.1:0', engine, routes })),
      clusters: [cluster('app', [app.address])],
    });
    // uWS keeps at most ~4 KiB of a head that arrives in several reads (on a loaded machine a 60 KB
    // head does) and closes the connection beyond that: its attack is 3000 a's, which backtracking
    // would never finish either (the cost is exponential in the length).
    const evilHead = (n: number): string => `GET /evil HTTP/1.1\r\nHost: x\r\nx-a: ${'a'.repeat(n)}b\r\n\r\n`;
    for (const engine of engines) {
      const evil = evilHead(engine === 'uws' ? 3_000 : 60_000);
      // A backtracking match of (a+)+$ on 60 000 a's and a "b" would never end: an answer at all is the proof.
      const [r, other] = await Promise.all([
        rawRequest(sc.port(engine), evil, { timeoutMs: 20_000 }),
        rawRequest(sc.port(engine), 'GET /ok/other HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 20_000 }),
      ]);
      expect(r.response?.status, engine).toBe(404); // matched in linear time: not the regex route, and no other
      expect(other.response?.status, engine).toBe(200);
      const after = await rawRequest(sc.port(engine), 'GET /ok/after HTTP/1.1\r\nHost: x\r\nx-a: aaaa\r\n\r\n');
      expect(after.response?.status, engine).toBe(200);
    }
    expect(app.requests.filter((q) => q.url === '/evil')).toEqual([]);
    // The watchdog never fired: no stall counted, no worker replaced, the sidecar still up.
    const metrics = (await httpGet(`${sc.admin}/metrics`)).body.toString();
    expect(Number(/^outrigger_worker_stalls_total (\d+)$/m.exec(metrics)?.[1])).toBe(0);
    expect(sc.entries().filter((e) => typeof e.msg === 'string' && e.msg.startsWith('worker stuck'))).toEqual([]);
    expect(restartLines(sc)).toEqual([]);
    expect(sc.exited()).toBe(false);
  });
});
