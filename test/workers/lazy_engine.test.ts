// The uws engine (uWebSockets.js's native addon and its adapters, dataplane/uws_engine.ts) loads
// only once a listener uses it: a sidecar with strict listeners never loads it (neither its
// workers nor its main thread), and one whose config gains a uws listener by PUT /config loads it
// in the worker then and serves on it.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { checkEngines } from '../../src/cli/preflight.js';
import { uwsNativeProblem } from '../../src/dataplane/uws_check.js';
import { loadedFrom, MAIN_ENTRY, moduleLogEnv } from '../helpers/loaded_modules.js';
import { adminCall, closeAll, cluster, config, httpGet, startSidecar, startUpstream, tempDir, via } from '../helpers/sidecar.js';

afterAll(closeAll);

const WORKER_ENTRY = /\/dist\/src\/workers\/worker_main\.js$/;
const UWS_MODULES = [/\/uWebSockets\.js\//, /\/dist\/src\/dataplane\/uws_engine\.js$/, /\/dist\/src\/dataplane\/uws_downstream\.js$/] as const;

/** The UWS_MODULES the threads that start at `entry` have loaded so far. */
function uwsModules(moduleLog: string, entry = WORKER_ENTRY): string[] {
  const loaded = [...loadedFrom(readFileSync(moduleLog, 'utf8'), entry)];
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
    expect(uwsModules(moduleLog)).toEqual([]);
    expect(uwsModules(moduleLog, MAIN_ENTRY)).toEqual([]);

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
    expect(uwsModules(moduleLog)).toEqual(expect.arrayContaining([expect.stringMatching(/uws_engine\.js$/), expect.stringMatching(/uWebSockets\.js\//)]));
  });
});

describe('the native uWS check runs where the engine is used', () => {
  it('checkEngines passes a config without uws listeners untested, and checks the binary for one with them', () => {
    expect(checkEngines([{ engine: 'strict' }, { engine: 'node' }])).toBeNull();
    expect(checkEngines([{ engine: 'strict' }, { engine: 'uws' }])).toBeNull(); // the native binary loads here (npm ci)
  });
  it('uwsNativeProblem refuses the pure-JS fallback (no getParts) and accepts the native build', () => {
    expect(uwsNativeProblem({})).toMatch(/^uWebSockets\.js loaded without its native binary \(pure-JS fallback\); refusing to run slowly/);
    expect(uwsNativeProblem(null)).not.toBeNull();
    expect(uwsNativeProblem(createRequire(import.meta.url)('uWebSockets.js'))).toBeNull();
  });
});
