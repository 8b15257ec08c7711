// The uws engine (uWebSockets.js's native addon and its adapters, dataplane/uws_engine.ts) loads
// in a worker only once one of its listeners uses it: a sidecar with strict listeners never loads
// it, and one whose config gains a uws listener by PUT /config loads it then and serves on it.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadedFrom, moduleLogEnv } from '../helpers/loaded_modules.js';
import { adminCall, closeAll, cluster, config, httpGet, startSidecar, startUpstream, tempDir, via } from '../helpers/sidecar.js';

afterAll(closeAll);

const WORKER_ENTRY = /\/dist\/src\/workers\/worker_main\.js$/;
const UWS_MODULES = [/\/uWebSockets\.js\//, /\/dist\/src\/dataplane\/uws_engine\.js$/, /\/dist\/src\/dataplane\/uws_downstream\.js$/] as const;

/** The UWS_MODULES the worker threads have loaded so far. */
function uwsModulesOnWorkers(moduleLog: string): string[] {
  const loaded = [...loadedFrom(readFileSync(moduleLog, 'utf8'), WORKER_ENTRY)];
  return loaded.filter((url) => UWS_MODULES.some((m) => m.test(url)));
}

async function unusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('the uws engine loads with its first listener', () => {
  it('not with strict listeners only; after PUT /config adds a uws listener, it loads and serves', async () => {
    const up = await startUpstream('app');
    const moduleLog = path.join(tempDir(), 'modules.log');
    const routes = [{ match: { path_prefix: '/' }, cluster: 'app' }];
    const clusters = [cluster('app', [up.address])];
    const sc = await startSidecar(config(routes, clusters, { listener: { engine: 'strict' } }), { env: moduleLogEnv(moduleLog) });
    expect((await via(sc, '/x')).status).toBe(200);
    expect(loadedFrom(readFileSync(moduleLog, 'utf8'), WORKER_ENTRY).size).toBeGreaterThan(10); // the log sees the worker
    expect(uwsModulesOnWorkers(moduleLog)).toEqual([]);

    const port = await unusedPort();
    const withUws = config(routes, clusters, {
      listener: { engine: 'strict' },
      listeners: [{ name: 'fast', address: `127.0.0.1:${port}`, engine: 'uws', routes }],
    });
    const applied = await adminCall(sc, 'PUT', '/config', withUws);
    expect(applied.status, applied.text).toBe(200);
    const r = await httpGet(`http://127.0.0.1:${port}/y`);
    expect(r.status).toBe(200);
    expect(r.text).toBe('app /y');
    expect(uwsModulesOnWorkers(moduleLog)).toEqual(
      expect.arrayContaining([expect.stringMatching(/uws_engine\.js$/), expect.stringMatching(/uWebSockets\.js\//)]),
    );
  });
});
