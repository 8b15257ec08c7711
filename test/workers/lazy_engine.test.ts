// A worker loads an engine's modules only once it is used: uWS (the uws engine,
// dataplane/uws_engine.ts; not on the main thread either), node:http's server (the node engine),
// node:http2 (an HTTP/2 client on a `protocol: auto` listener, h2/lazy.ts). A strict-only sidecar
// loads none; the first h2c client and listeners added by PUT /config load them and are served.
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, describe, expect, it } from 'vitest';
import { checkEngines } from '../../src/cli/preflight.js';
import { uwsNativeProblem } from '../../src/dataplane/uws_check.js';
import { loadedFrom, MAIN_ENTRY, moduleLogEnv } from '../helpers/loaded_modules.js';
import { adminCall, closeAll, cluster, config, deadPort, httpGet, startSidecar, startUpstream, tempDir, via } from '../helpers/sidecar.js';

afterAll(closeAll);

const WORKER_ENTRY = /\/dist\/src\/workers\/worker_main\.js$/;
const UWS_MODULES = [/\/uWebSockets\.js\//, /\/dist\/src\/dataplane\/uws_engine\.js$/, /\/dist\/src\/dataplane\/uws_downstream\.js$/];
const NODE_ENGINE_MODULES = [/\/dist\/src\/dataplane\/node_server\.js$/, /^node:https?$/];
const H2_MODULES = [/^node:http2$/, /\/dist\/src\/dataplane\/h2\/server\.js$/];

/** The modules matching `patterns` that the threads starting at `entry` have loaded so far. */
function loaded(moduleLog: string, patterns: readonly RegExp[], entry = WORKER_ENTRY): string[] {
  const all = [...loadedFrom(readFileSync(moduleLog, 'utf8'), entry)];
  return all.filter((url) => patterns.some((m) => m.test(url)));
}

/** One request over HTTP/2 with prior knowledge (h2c): status and body. */
async function h2cGet(port: number, p: string): Promise<{ status: number; text: string }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    return await new Promise((resolve, reject) => {
      const req = session.request({ ':path': p });
      let status = 0;
      let text = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.setEncoding('utf8');
      req.on('data', (d: string) => (text += d));
      req.on('end', () => resolve({ status, text }));
      req.on('error', reject);
    });
  } finally {
    session.close();
  }
}

describe('engine modules load with their first use', () => {
  it('a strict-only sidecar loads neither uWS, node:http nor node:http2; HTTP/2 loads with the first h2c client, uws and node with listeners added by PUT /config', async () => {
    const up = await startUpstream('app');
    const moduleLog = path.join(tempDir(), 'modules.log');
    const routes = [{ match: { path_prefix: '/' }, cluster: 'app' }];
    const clusters = [cluster('app', [up.address])];
    const sc = await startSidecar(config(routes, clusters, { listener: { engine: 'strict' } }), { env: moduleLogEnv(moduleLog) });
    expect((await via(sc, '/x')).status).toBe(200);
    expect(loadedFrom(readFileSync(moduleLog, 'utf8'), WORKER_ENTRY).size).toBeGreaterThan(10); // the log sees the worker
    expect(loaded(moduleLog, [...UWS_MODULES, ...NODE_ENGINE_MODULES, ...H2_MODULES])).toEqual([]);
    expect(loaded(moduleLog, UWS_MODULES, MAIN_ENTRY)).toEqual([]);

    // protocol: auto (the default): the first HTTP/2 client waits for the module, then is served.
    expect(await h2cGet(sc.port(), '/h2')).toEqual({ status: 200, text: 'app /h2' });
    expect(loaded(moduleLog, H2_MODULES)).toHaveLength(2);

    const [uwsPort, nodePort] = [await deadPort(), await deadPort()];
    const more = config(routes, clusters, {
      listener: { engine: 'strict' },
      listeners: [
        { name: 'fast', address: `127.0.0.1:${uwsPort}`, engine: 'uws', routes },
        { name: 'old', address: `127.0.0.1:${nodePort}`, engine: 'node', routes },
      ],
    });
    const applied = await adminCall(sc, 'PUT', '/config', more);
    expect(applied.status, applied.text).toBe(200);
    for (const port of [uwsPort, nodePort]) {
      const r = await httpGet(`http://127.0.0.1:${port}/y`);
      expect(r.status).toBe(200);
      expect(r.text).toBe('app /y');
    }
    expect(loaded(moduleLog, UWS_MODULES)).toEqual(
      expect.arrayContaining([expect.stringMatching(/uws_engine\.js$/), expect.stringMatching(/uWebSockets\.js\//)]),
    );
    expect(loaded(moduleLog, NODE_ENGINE_MODULES)).toEqual(expect.arrayContaining([expect.stringMatching(/node_server\.js$/), 'node:http']));
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
