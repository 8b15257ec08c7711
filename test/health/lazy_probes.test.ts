// The health checks' probes (node:http2, node:https, node:tls and the certificate code) load on
// the main thread with the first check: a sidecar without health checks never loads them, and one
// whose config gains a health check by PUT /config loads them then and checks its endpoints.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadedFrom, MAIN_ENTRY, moduleLogEnv } from '../helpers/loaded_modules.js';
import { adminCall, closeAll, cluster, config, endpointView, startSidecar, startUpstream, tempDir, untilCluster, via } from '../helpers/sidecar.js';

afterAll(closeAll);

const PROBE_MODULES = ['node:http2', 'node:https', 'node:tls', /\/dist\/src\/health\/probes\.js$/, /\/dist\/src\/tls\/contexts\.js$/] as const;

/** The PROBE_MODULES the main thread has loaded so far. */
function probeModulesOnMain(moduleLog: string): string[] {
  const main = [...loadedFrom(readFileSync(moduleLog, 'utf8'), MAIN_ENTRY)];
  return main.filter((url) => PROBE_MODULES.some((m) => (typeof m === 'string' ? url === m : m.test(url))));
}

describe('health check probes load with the first check', () => {
  it('not at start without health checks; after PUT /config adds one, they load and the failing endpoint is marked unhealthy', async () => {
    const up = await startUpstream('app');
    const moduleLog = path.join(tempDir(), 'modules.log');
    const routes = [{ match: { path_prefix: '/' }, cluster: 'app' }];
    const sc = await startSidecar(config(routes, [cluster('app', [up.address])]), { env: moduleLogEnv(moduleLog) });
    expect((await via(sc, '/x')).status).toBe(200);
    expect(probeModulesOnMain(moduleLog)).toEqual([]);

    up.health = 'fail';
    const checked = cluster('app', [up.address], {
      health_check: { path: '/healthz', interval_ms: 50, timeout_ms: 500, unhealthy_threshold: 2, healthy_threshold: 1 },
    });
    const applied = await adminCall(sc, 'PUT', '/config', config(routes, [checked]));
    expect(applied.status, applied.text).toBe(200);
    const v = await untilCluster(sc, 'app', (c) => !endpointView(c, up.address).healthy, 'the endpoint unhealthy');
    expect(endpointView(v, up.address).health_check).toMatchObject({ healthy: false, last_error: 'HTTP 503' });
    expect(up.healthChecks.length).toBeGreaterThanOrEqual(2);
    expect(probeModulesOnMain(moduleLog)).toEqual(expect.arrayContaining([expect.stringMatching(/\/health\/probes\.js$/), 'node:http2', 'node:https']));
  });
});
