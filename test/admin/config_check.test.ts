// Configs are checked in a worker thread (src/admin/config_check_thread.ts): the sidecar's main
// thread never loads the config layer (zod, yaml, js-yaml, config/load), at start or on a PUT
// /config, and a config it refuses is refused as before: every problem by path and line, the
// same list the in-process check gives, and the running config stays.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfigBody } from '../../src/admin/body_limits.js';
import { formatProblems, parseConfigText } from '../../src/config/load.js';
import { loadedFrom, MAIN_ENTRY, moduleLogEnv } from '../helpers/loaded_modules.js';
import { adminCall, closeAll, spawnCli, startSidecar, startUpstream, tempDir, via, type Config, type Upstream } from '../helpers/sidecar.js';

afterAll(closeAll);

const CONFIG_LAYER = [/\/node_modules\/zod\//, /\/node_modules\/yaml\//, /\/node_modules\/js-yaml\//, /\/dist\/src\/config\/(load|schema)\.js$/];
const OPTS = { version: 2, availableParallelism: os.availableParallelism(), enableTestHooks: false, fixedWorkers: 1 };

function config(up: Upstream, prefix: string): Config {
  return {
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: prefix }, cluster: 'app' }] }],
    clusters: [{ name: 'app', endpoints: [{ address: up.address }] }],
  };
}

/** A YAML config with three problems: an unknown cluster, a bad port, an unknown key. */
function badYaml(up: Upstream): string {
  return [
    'listeners:',
    '  - name: main',
    '    address: 127.0.0.1:0',
    '    routes:',
    '      - match: {path_prefix: /}',
    '        cluster: ap',
    'clusters:',
    '  - name: app',
    `    endpoints: [{address: "${up.address}"}, {address: "127.0.0.1:99999"}]`,
    '    colour: blue',
    '',
  ].join('\n');
}

describe('config checks off the main thread', () => {
  it('the main thread loads no config layer at start or on PUT /config; a bad config is refused with every problem and the running one stays', async () => {
    const up = await startUpstream('A');
    const moduleLog = path.join(tempDir(), 'modules.log');
    const sc = await startSidecar(config(up, '/'), { env: moduleLogEnv(moduleLog) });

    const bad = badYaml(up);
    const refused = await adminCall(sc, 'PUT', '/config', bad);
    expect(refused.status).toBe(400);
    const inProcess = parseConfigBody(bad, OPTS);
    expect(inProcess.ok).toBe(false);
    expect(refused.json).toEqual({ error: 'invalid config', problems: inProcess.ok ? [] : inProcess.problems });
    expect((refused.json as { problems: unknown[] }).problems).toHaveLength(3);
    expect((await adminCall(sc, 'GET', '/config')).json).toMatchObject({ version: 1 });
    expect((await via(sc, '/any')).status).toBe(200);

    const applied = await adminCall(sc, 'PUT', '/config', config(up, '/v2/'));
    expect(applied.status, applied.text).toBe(200);
    expect(applied.json).toMatchObject({ version: 2 });
    expect((await via(sc, '/any')).status).toBe(404);
    expect((await via(sc, '/v2/x')).status).toBe(200);

    const log = readFileSync(moduleLog, 'utf8');
    const main = [...loadedFrom(log, MAIN_ENTRY)];
    const checker = [...loadedFrom(log, /\/dist\/src\/admin\/config_check_worker\.js$/)];
    // The log sees what each thread loads: the main thread's pino, the check thread's config layer.
    expect(main.some((url) => url.includes('/node_modules/pino/'))).toBe(true);
    for (const layer of CONFIG_LAYER) {
      expect(checker.filter((url) => layer.test(url)).length, `check thread loads ${layer}`).toBeGreaterThan(0);
      expect(main.filter((url) => layer.test(url))).toEqual([]);
    }
  });

  it('a config file with problems stops the start (exit 2) with the same problem lines as the in-process check', async () => {
    const up = await startUpstream('A');
    const file = path.join(tempDir(), 'bad.yaml');
    const text = `node: {workers: 1}\nadmin: {address: "127.0.0.1:0"}\n${badYaml(up)}`;
    writeFileSync(file, text);
    const p = spawnCli(['run', '-c', file]);
    expect(await p.exit(15_000)).toBe(2);
    const inProcess = parseConfigText(text, { ...OPTS, version: 1 });
    expect(inProcess.ok).toBe(false);
    expect(p.stderr()).toBe(`${formatProblems(inProcess.ok ? [] : inProcess.problems)}\n`);
  });
});
