// `outrigger wait-ready --admin HOST:PORT`: returns 0 once a real sidecar's /ready answers 200
// (also when the sidecar starts after the wait began), 1 with a clear line when the time is up
// (nothing listening, or /ready saying 503), 2 for bad flags.

import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, deadPort, listenTracked, proxyConfig, spawnCli, startSidecar, startUpstream } from '../helpers/sidecar.js';

describe('outrigger wait-ready', () => {
  afterAll(closeAll);

  it('waits while nothing answers and returns 0 once the sidecar started on that admin port is ready', async () => {
    const app = await startUpstream();
    const port = await deadPort();
    const waiter = spawnCli(['wait-ready', '--admin', `127.0.0.1:${port}`, '--timeout-ms', '30000']);
    // It has polled and found nothing listening before the sidecar exists.
    await waiter.waitForLog((e) => e.msg === `waiting for http://127.0.0.1:${port}/ready (ECONNREFUSED)`, 10_000);
    const cfg = proxyConfig([app.address]);
    cfg['admin'] = { address: `127.0.0.1:${port}` };
    await startSidecar(cfg);
    expect(await waiter.exit(30_000)).toBe(0);
    expect(waiter.stdout()).toBe(`waiting for http://127.0.0.1:${port}/ready (ECONNREFUSED)\nready: http://127.0.0.1:${port}/ready\n`);
  });

  it('returns 0 at once for a sidecar that is already ready', async () => {
    const app = await startUpstream();
    const sc = await startSidecar(proxyConfig([app.address]));
    const waiter = spawnCli(['wait-ready', '--admin', sc.admin.replace('http://', ''), '--timeout-ms', '5000']);
    expect(await waiter.exit(10_000)).toBe(0);
  });

  it('exits 1 with the last answer when nothing listens before the timeout', async () => {
    const port = await deadPort();
    const waiter = spawnCli(['wait-ready', '--admin', `127.0.0.1:${port}`, '--timeout-ms', '300']);
    expect(await waiter.exit(10_000)).toBe(1);
    expect(waiter.stderr()).toBe(`outrigger: wait-ready: http://127.0.0.1:${port}/ready not ready after 300 ms (last: ECONNREFUSED)\n`);
  });

  it('exits 1 while /ready answers 503', async () => {
    const server = http.createServer((_req, res) => res.writeHead(503, { 'content-type': 'application/json' }).end('{"ready":false}'));
    const address = await listenTracked(server, new Set());
    const waiter = spawnCli(['wait-ready', '--admin', address, '--timeout-ms', '300']);
    expect(await waiter.exit(10_000)).toBe(1);
    expect(waiter.stderr()).toBe(`outrigger: wait-ready: http://${address}/ready not ready after 300 ms (last: 503 {"ready":false})\n`);
  });

  it('refuses bad flags with exit 2', async () => {
    const cases: Array<[string[], string]> = [
      [[], 'wait-ready needs --admin HOST:PORT (the sidecar admin API address)'],
      [['--admin', 'sidecar:15000'], '--admin: host "sidecar" in "sidecar:15000" must be an IP address or localhost (DNS names are not resolved here)'],
      [['--admin', '127.0.0.1:15000', '--timeout-ms', 'soon'], '--timeout-ms must be a positive number of milliseconds, got "soon"'],
    ];
    for (const [args, message] of cases) {
      const p = spawnCli(['wait-ready', ...args]);
      expect(await p.exit(10_000)).toBe(2);
      expect(p.stderr()).toBe(`outrigger: ${message}\n`);
    }
  });
});
