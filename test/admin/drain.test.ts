// Drain and shutdown against a real sidecar (2 workers): with a slow request in flight (the
// upstream answers after ~1 s), POST /drain, SIGTERM and POST /shutdown each turn /ready to 503,
// close the listener to new connections, let the in-flight request finish with 200, and exit 0.

import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, request, startSidecar, startUpstream, tryConnect, eventually, type Answer, type Sidecar } from './helpers.js';

afterAll(closeAll);

const SLOW_MS = 1000;

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
      let arrived!: () => void;
      const arrival = new Promise<void>((r) => (arrived = r));
      const slow = await startUpstream('SLOW', { delayMs: SLOW_MS, onRequest: () => arrived() });
      const sc = await startSidecar({
        node: { workers: 2, drain_timeout_ms: 8000 },
        admin: { address: '127.0.0.1:0' },
        listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'slow' }] }],
        clusters: [{ name: 'slow', endpoints: [{ address: slow.address }] }],
      });
      const port = sc.port();
      expect((await adminCall(sc, 'GET', '/ready')).status).toBe(200);

      let settled = false;
      const inflight: Promise<Answer> = request(sc.url('/slow'), { timeoutMs: 15_000 }).finally(() => (settled = true));
      await Promise.race([arrival, inflight.then((a) => Promise.reject(new Error(`answered before reaching the upstream: ${a.status} ${a.text}`)))]); // the request is at the upstream, which answers in ~1 s
      const started = Date.now();
      await trigger(sc, how);

      // /ready turns 503 while the request is in flight.
      const ready = await request(`${sc.admin}/ready`).catch((e: NodeJS.ErrnoException) => e);
      if (ready instanceof Error) {
        // Only acceptable once the process is gone.
        expect(settled).toBe(true);
      } else {
        expect(ready.status).toBe(503);
        expect(JSON.parse(ready.text).ready).toBe(false);
      }

      // New connections to the listener are refused soon after the drain started, before the
      // in-flight request finished.
      await eventually(async () => ((await tryConnect(port)) === 'ECONNREFUSED' ? true : undefined), 'the listener to refuse connections', 2000, 10);
      const refusedAfterMs = Date.now() - started;
      expect(settled, `refused only after ${refusedAfterMs} ms, when the in-flight request had already finished`).toBe(false);
      for (let i = 0; i < 5; i++) expect(await tryConnect(port)).toBe('ECONNREFUSED');

      const answer = await inflight;
      expect(answer.status).toBe(200);
      expect(answer.text).toBe('SLOW /slow');
      expect(await sc.exit(15_000)).toBe(0);
      const draining = sc.entries().find((e) => e.msg === 'draining');
      expect(draining).toBeDefined();
      expect(sc.entries().find((e) => e.msg === 'stopped')).toMatchObject({ unfinished: 0 });
      expect(sc.stderr()).toBe('');
      await slow.close();
    },
  );
});
