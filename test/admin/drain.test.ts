// Drain and shutdown against a real sidecar (2 workers): with a request held in flight at the
// upstream, POST /drain, SIGTERM and POST /shutdown each turn /ready to 503 and close the listener
// to new connections; the held request, released only then, still finishes with 200, and the
// sidecar exits 0.

import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, request, startSidecar, startUpstream, tryConnect, type Answer, type Sidecar } from '../helpers/sidecar.js';

afterAll(closeAll);

type Trigger = 'POST /drain' | 'SIGTERM' | 'POST /shutdown';

async function trigger(sc: Sidecar, how: Trigger): Promise<void> {
  if (how === 'SIGTERM') {
    process.kill(sc.pid, 'SIGTERM');
    await sc.waitForLog((e) => e.msg === 'draining');
    return;
  }
  const r = await adminCall(sc, 'POST', how === 'POST /drain' ? '/drain' : '/shutdown');
  expect(r.status).toBeGreaterThanOrEqual(200);
  expect(r.status).toBeLessThan(300);
}

describe('drain and shutdown', () => {
  it.each<Trigger>(['POST /drain', 'SIGTERM', 'POST /shutdown'])(
    '%s: in-flight request completes with 200, /ready 503, new connections refused, exit 0',
    async (how) => {
      const slow = await startUpstream('SLOW', { mode: 'hang' });
      const sc = await startSidecar({
        // Longer than the test waits for anything: the drain must end because the request finished.
        node: { workers: 2, drain_timeout_ms: 60_000 },
        admin: { address: '127.0.0.1:0' },
        listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'slow' }] }],
        clusters: [{ name: 'slow', endpoints: [{ address: slow.address }] }],
      });
      const port = sc.port();
      expect((await adminCall(sc, 'GET', '/ready')).status).toBe(200);

      let settled = false;
      const inflight: Promise<Answer> = request(sc.url('/slow'), { timeoutMs: 60_000 }).finally(() => (settled = true));
      await expect.poll(() => slow.hanging).toBe(1); // held at the upstream until release()
      await trigger(sc, how);

      // /ready turns 503 while the request is in flight.
      const ready = await request(`${sc.admin}/ready`);
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.text).ready).toBe(false);

      // New connections to the listener are refused while the request is still held.
      await expect.poll(() => tryConnect(port)).toBe('ECONNREFUSED');
      for (let i = 0; i < 5; i++) expect(await tryConnect(port)).toBe('ECONNREFUSED');
      expect(settled).toBe(false);

      slow.release();
      const answer = await inflight;
      expect(answer.status).toBe(200);
      expect(answer.text).toBe('SLOW released');
      expect(await sc.exit(15_000)).toBe(0);
      const draining = sc.entries().find((e) => e.msg === 'draining');
      expect(draining).toBeDefined();
      expect(sc.entries().find((e) => e.msg === 'stopped')).toMatchObject({ unfinished: 0 });
      expect(sc.stderr()).toBe('');
      await slow.close();
    },
  );
});
