// The dashboard's admin endpoints against a real sidecar under load from a real upstream: the
// page and its assets are served without the token under a CSP that allows only this server;
// GET /dashboard/series (the whole ring, or the samples after a time) and GET /config/version
// need the token like /stats, and answer the documented shapes; the Host and cross-site checks apply to the dashboard as to every endpoint.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adminCall,
  closeAll,
  eventually,
  httpGet,
  proxyConfig,
  startLoad,
  startSidecar,
  startUpstream,
  stopWithoutFailures,
  type Load,
  type Sidecar,
} from '../helpers/sidecar.js';

afterAll(closeAll);

let sc: Sidecar;
let load: Load;

beforeAll(async () => {
  const app = await startUpstream('app');
  sc = await startSidecar(proxyConfig([app.address]));
  load = startLoad(sc.port(), { connections: 2 });
});

describe('dashboard endpoints', () => {
  it('GET /, /dashboard/app.js, /dashboard/style.css, /dashboard/icon.svg: no token needed, CSP of this server only, no data', async () => {
    const page = await httpGet(`${sc.admin}/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toBe("default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    expect(page.text).toContain('<script src="/dashboard/app.js" defer></script>');
    expect(page.text).not.toContain(sc.token);
    for (const [p, type] of [
      ['/dashboard/app.js', 'text/javascript; charset=utf-8'],
      ['/dashboard/style.css', 'text/css; charset=utf-8'],
      ['/dashboard/icon.svg', 'image/svg+xml'],
    ] as const) {
      const a = await httpGet(`${sc.admin}${p}`);
      expect(a.status, p).toBe(200);
      expect(a.headers['content-type'], p).toBe(type);
      expect(a.headers['content-security-policy'], p).toContain("default-src 'self'");
      expect(a.headers['x-content-type-options'], p).toBe('nosniff');
    }
    // Only GET: the assets are not a way around the token for anything else.
    expect((await httpGet(`${sc.admin}/`, { method: 'POST' })).status).toBe(404);
  });

  it('GET /dashboard/series: 401 without the token; with it, per-second samples of the load per listener, route and cluster', async () => {
    const anonymous = await adminCall({ admin: sc.admin }, 'GET', '/dashboard/series');
    expect(anonymous.status).toBe(401);

    const withTraffic = await eventually(async () => {
      const r = await adminCall(sc, 'GET', '/dashboard/series');
      expect(r.status).toBe(200);
      const route = r.json.routes.find((x: { name: string }) => x.name === 'all');
      return route !== undefined && route.rate.some((v: number | null) => v !== null && v > 0) ? r.json : undefined;
    }, 'a sample with requests on route all');
    expect(withTraffic).toMatchObject({ interval_ms: 1000, capacity: 900 });
    const n = withTraffic.times.length;
    expect(n).toBeGreaterThan(0);
    expect(withTraffic.listeners.map((l: { name: string }) => l.name)).toEqual(['main']);
    expect(withTraffic.routes.map((r: { listener: string; name: string }) => [r.listener, r.name])).toEqual([['main', 'all']]);
    expect(withTraffic.clusters.map((c: { name: string }) => c.name)).toEqual(['app']);
    for (const s of [...withTraffic.listeners, ...withTraffic.routes, ...withTraffic.clusters]) {
      for (const k of ['rate', 'success_rate', 'p50_ms', 'p90_ms', 'p99_ms', 'p99_9_ms']) expect(s[k], k).toHaveLength(n);
    }
    const cluster = withTraffic.clusters[0];
    const busy = cluster.rate.findLastIndex((v: number | null) => v !== null && v > 0);
    expect(cluster.success_rate[busy]).toBe(1);
    expect(cluster.p50_ms[busy]).toBeGreaterThan(0);
    expect(cluster.p50_ms[busy]).toBeLessThanOrEqual(cluster.p90_ms[busy]);
    expect(cluster.p99_ms[busy]).toBeLessThanOrEqual(cluster.p99_9_ms[busy]);

    // Sampling goes on; ?after= answers only the newer samples (the page fetches the whole ring once).
    const last = withTraffic.times[n - 1];
    const newer = await eventually(async () => {
      const r = await adminCall(sc, 'GET', `/dashboard/series?after=${last}`);
      return r.json.times.length > 0 ? r.json : undefined;
    }, 'a newer sample');
    expect(newer.times.every((t: number) => t > last)).toBe(true);
    expect(newer.clusters[0].rate).toHaveLength(newer.times.length);
  });

  it('GET /config/version?version=N: 401 without the token; the config of that version; 404 for one not in the history', async () => {
    expect((await adminCall({ admin: sc.admin }, 'GET', '/config/version?version=1')).status).toBe(401);
    const v1 = await adminCall(sc, 'GET', '/config/version?version=1');
    expect(v1.status).toBe(200);
    expect(v1.json).toMatchObject({ version: 1, summary: 'initial config' });
    expect(v1.json.config.clusters[0].name).toBe('app');
    expect((await adminCall(sc, 'GET', '/config/version?version=99')).status).toBe(404);
    expect((await adminCall(sc, 'GET', '/config/version')).status).toBe(404);
  });

  it('the dashboard passes the Host and cross-site checks, it does not weaken them', async () => {
    const foreignHost = await httpGet(`${sc.admin}/`, { headers: { host: 'evil.example' } });
    expect(foreignHost.status).toBe(421);
    const crossSite = await adminCall(sc, 'GET', '/dashboard/series', undefined, { 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const otherOrigin = await httpGet(`${sc.admin}/dashboard/app.js`, { headers: { origin: 'http://evil.example' } });
    expect(otherOrigin.status).toBe(403);
  });

  it('the load saw no failure', async () => {
    await stopWithoutFailures(load);
  });
});
