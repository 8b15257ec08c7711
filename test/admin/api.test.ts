// Every admin endpoint of DESIGN.md §5 against a real sidecar process (2 workers) and real
// upstreams: readiness, config get/put (YAML and JSON)/validate/history/rollback with traffic
// proving which routes run, clusters, stats and Prometheus metrics after real traffic, certs,
// log level, error answers (404, 413, malformed JSON/YAML), a configured bearer token, the refusal
// of a non-loopback admin address without a token, and reloads from a file edit and from SIGHUP.
// (The attacks the admin API resists, and the generated token, are in security.test.ts.)

import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adminCall,
  closeAll,
  configText,
  eventually,
  header,
  parsePrometheus,
  rawRequest,
  request,
  rewriteConfig,
  routedTo,
  runUntilExit,
  sampleValue,
  startSidecar,
  startUpstream,
  tempDir,
  tryConnect,
  untilRoutedTo,
  via,
  type Config,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

afterAll(closeAll);

interface Ups {
  a: Upstream;
  b: Upstream;
  bad: Upstream;
}

/** Listener `main`: /fail → cluster bad (answers 500), /b/ → b when `bPath`, everything else → `root`. */
function makeConfig(u: Ups, o: { root: string; bPath?: boolean; admin?: Record<string, unknown> }): Config {
  const routes: Array<Record<string, unknown>> = [{ name: 'fail', match: { path_prefix: '/fail' }, cluster: 'bad' }];
  if (o.bPath === true) routes.push({ name: 'bpath', match: { path_prefix: '/b/' }, cluster: 'b' });
  routes.push({ name: 'root', match: { path_prefix: '/' }, cluster: o.root });
  return {
    node: { workers: 2, drain_timeout_ms: 3000 },
    admin: o.admin ?? { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes }],
    clusters: [
      { name: 'a', endpoints: [{ address: u.a.address }] },
      { name: 'b', endpoints: [{ address: u.b.address }] },
      { name: 'bad', endpoints: [{ address: u.bad.address }] },
    ],
  };
}

async function startUps(): Promise<Ups> {
  return {
    a: await startUpstream('A'),
    b: await startUpstream('B'),
    bad: await startUpstream('BAD', { status: 500 }),
  };
}

async function metrics(sc: Sidecar): Promise<ReturnType<typeof parsePrometheus>> {
  const r = await request(`${sc.admin}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toMatch(/^text\/plain/);
  return parsePrometheus(r.text);
}

describe('admin API endpoints', () => {
  let u: Ups;
  let sc: Sidecar;

  beforeAll(async () => {
    u = await startUps();
    sc = await startSidecar(makeConfig(u, { root: 'a' }));
  });

  it('GET /metrics before any traffic: parses, counters of the configured listener at 0, config version 1', async () => {
    const s = await metrics(sc);
    for (const route of ['fail', 'root']) {
      for (const code_class of ['2xx', '5xx']) {
        expect(sampleValue(s, 'outrigger_requests_total', { listener: 'main', route, code_class }), `${route} ${code_class}`).toBe(0);
      }
    }
    expect(sampleValue(s, 'outrigger_config_version')).toBe(1);
    expect(s.some((x) => x.name === 'outrigger_request_duration_seconds_bucket')).toBe(true);
  });

  it('GET /live and GET /ready answer 200 once ready', async () => {
    const live = await adminCall(sc, 'GET', '/live');
    expect(live.status).toBe(200);
    const ready = await adminCall(sc, 'GET', '/ready');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ ready: true, version: 1 });
  });

  it('GET /config gives the running config and its version', async () => {
    const r = await adminCall(sc, 'GET', '/config');
    expect(r.status).toBe(200);
    expect(r.json.version).toBe(1);
    expect(r.json.config.listeners[0].name).toBe('main');
    expect(r.json.config.clusters.map((c: { name: string }) => c.name)).toEqual(['a', 'b', 'bad']);
    expect(await routedTo(sc, '/x')).toBe('A');
  });

  it('POST /config/validate: a valid config → 200 with its warnings, and nothing is applied', async () => {
    const cfg = makeConfig(u, { root: 'b' });
    (cfg['clusters'] as Array<Record<string, unknown>>).push({ name: 'dns', discovery: { dns: { name: 'api.local', port: 8080 } } });
    const r = await adminCall(sc, 'POST', '/config/validate', cfg);
    expect(r.status, r.text).toBe(200);
    expect(r.json).toEqual({ valid: true, warnings: [] });
    // YAML works too.
    const y = await adminCall(sc, 'POST', '/config/validate', configText(makeConfig(u, { root: 'b' }), true));
    expect(y.status, y.text).toBe(200);
    expect(y.json).toEqual({ valid: true, warnings: [] });
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(1);
    expect(await routedTo(sc, '/x')).toBe('A');
  });

  it('POST /config/validate: an invalid config → 400 with every problem by path', async () => {
    const cfg = makeConfig(u, { root: 'nope' });
    (cfg['clusters'] as Array<Record<string, unknown>>)[0]!['lb'] = 'fastest';
    cfg['clustr'] = [];
    const r = await adminCall(sc, 'POST', '/config/validate', cfg);
    expect(r.status).toBe(400);
    const paths = (r.json.problems as Array<{ path: string; message: string }>).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['listeners[0].routes[1].cluster', 'clusters[0].lb', 'clustr']));
    for (const p of r.json.problems) expect(typeof p.message).toBe('string');
    expect(JSON.stringify(r.json.problems)).toContain('unknown cluster \\"nope\\"');
  });

  it('PUT /config with a YAML body: 200 with the new version, then traffic follows the new routes', async () => {
    const r = await adminCall(sc, 'PUT', '/config', configText(makeConfig(u, { root: 'b' }), true), { 'content-type': 'application/yaml' });
    expect(r.status, r.text).toBe(200);
    expect(r.json.version).toBe(2);
    expect(typeof r.json.summary).toBe('string');
    // Answered only once every worker runs it: the very next requests follow the new route.
    expect(await routedTo(sc, '/x', 6)).toBe('B');
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(2);
    expect(sampleValue(await metrics(sc), 'outrigger_config_version')).toBe(2);
  });

  it('PUT /config with a JSON body: 200 with the new version, new route and old routes as configured', async () => {
    const r = await adminCall(sc, 'PUT', '/config', makeConfig(u, { root: 'a', bPath: true }), { 'content-type': 'application/json' });
    expect(r.status, r.text).toBe(200);
    expect(r.json.version).toBe(3);
    expect(await routedTo(sc, '/x')).toBe('A');
    expect(await routedTo(sc, '/b/y')).toBe('B');
    expect(sampleValue(await metrics(sc), 'outrigger_config_version')).toBe(3);
  });

  it('an invalid PUT /config → 400 with every problem listed, and the old config keeps serving', async () => {
    const cfg = makeConfig(u, { root: 'b' });
    const routes = (cfg['listeners'] as Array<{ routes: Array<Record<string, unknown>> }>)[0]!.routes;
    routes[0]!['cluster'] = 'missing';
    routes[1]!['timeout_ms'] = -5;
    (cfg['clusters'] as Array<Record<string, unknown>>)[1]!['endpoints'] = [{ address: 'not-an-address' }];
    const r = await adminCall(sc, 'PUT', '/config', cfg);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('invalid config');
    const paths = (r.json.problems as Array<{ path: string }>).map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['listeners[0].routes[0].cluster', 'listeners[0].routes[1].timeout_ms']));
    expect(paths.some((p) => p.startsWith('clusters[1].endpoints[0]'))).toBe(true);
    expect(paths.length).toBeGreaterThanOrEqual(3);
    // Still version 3, still serving version 3's routes.
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(3);
    expect(await routedTo(sc, '/x')).toBe('A');
    expect(await routedTo(sc, '/b/y')).toBe('B');
    expect((await via(sc, '/fail')).status).toBe(500);
  });

  it('malformed YAML to PUT /config → 400 with the parser message and a line number', async () => {
    const text = 'node:\n  workers: 2\nlisteners:\n  - name: main\n    address: [unclosed\n';
    const r = await adminCall(sc, 'PUT', '/config', text);
    expect(r.status).toBe(400);
    const p = r.json.problems as Array<{ path: string; message: string; line?: number }>;
    expect(p.length).toBeGreaterThanOrEqual(1);
    expect(typeof p[0]!.line).toBe('number');
    expect(p[0]!.line).toBeGreaterThanOrEqual(5);
    expect(p[0]!.message.length).toBeGreaterThan(0);
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(3);
  });

  it('an empty PUT /config body → 400', async () => {
    const r = await adminCall(sc, 'PUT', '/config', '');
    expect(r.status).toBe(400);
  });

  it('GET /config/history lists the versions with at, by and summary', async () => {
    const r = await adminCall(sc, 'GET', '/config/history');
    expect(r.status).toBe(200);
    expect(r.json.current).toBe(3);
    const versions = r.json.versions as Array<{ version: number; at: string; by: string; summary: string }>;
    expect(versions.map((v) => v.version)).toEqual([1, 2, 3]);
    for (const v of versions) {
      expect(Number.isNaN(Date.parse(v.at))).toBe(false);
      expect(typeof v.by).toBe('string');
      expect(typeof v.summary).toBe('string');
      expect(v.summary.length).toBeGreaterThan(0);
    }
    expect(versions[0]!.summary).toBe('initial config');
    expect(versions[1]!.by).toContain('PUT /config');
    expect(versions[1]!.summary).toContain('main');
  });

  it('POST /config/rollback {version} restores that version’s routes (as a new version)', async () => {
    const r = await adminCall(sc, 'POST', '/config/rollback', { version: 2 });
    expect(r.status, r.text).toBe(200);
    expect(r.json.version).toBe(4);
    expect(await routedTo(sc, '/x')).toBe('B');
    // Version 2 had no /b/ route: /b/y is served by the root route (→ B as well), and /fail still fails.
    expect(await routedTo(sc, '/b/y')).toBe('B');
    const h = await adminCall(sc, 'GET', '/config/history');
    expect(h.json.current).toBe(4);
    expect(h.json.versions.at(-1).by).toContain('rollback to v2');
    // And back to version 1's routes.
    const r1 = await adminCall(sc, 'POST', '/config/rollback', { version: 1 });
    expect(r1.status).toBe(200);
    expect(r1.json.version).toBe(5);
    expect(await routedTo(sc, '/x')).toBe('A');
    expect(await routedTo(sc, '/b/y')).toBe('A');
    // A version that is not in the history.
    const missing = await adminCall(sc, 'POST', '/config/rollback', { version: 99 });
    expect(missing.status).toBe(404);
    const bad = await adminCall(sc, 'POST', '/config/rollback', { version: 'two' });
    expect(bad.status).toBe(400);
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(5);
  });

  it('GET /clusters: every cluster and endpoint, summed over the workers', async () => {
    const r = await adminCall(sc, 'GET', '/clusters');
    expect(r.status).toBe(200);
    expect(r.json.workers).toBe(2);
    const byName = new Map((r.json.clusters as Array<{ name: string; endpoints: Array<Record<string, unknown>> }>).map((c) => [c.name, c]));
    expect([...byName.keys()].sort()).toEqual(['a', 'b', 'bad']);
    const a = byName.get('a')!;
    expect(a.endpoints).toHaveLength(1);
    expect(a.endpoints[0]).toMatchObject({ address: u.a.address, healthy: true });
    for (const k of ['active', 'connections_open', 'connections_idle', 'connections_opened_total']) expect(typeof a.endpoints[0]![k]).toBe('number');
    expect(a.endpoints[0]!['connections_opened_total']).toBeGreaterThanOrEqual(1);
    // Every TCP connection the upstream saw was opened by the proxy (and counted by it).
    expect(a.endpoints[0]!['connections_opened_total']).toBe(u.a.connections);
  });

  it('GET /stats: counts, success/failure and p50/p90/p99/p99.9 per listener, route and cluster after real traffic', async () => {
    for (let i = 0; i < 20; i++) expect((await via(sc, `/ok/${i}`)).status).toBe(200);
    for (let i = 0; i < 10; i++) expect((await via(sc, `/fail/${i}`)).status).toBe(500);
    // Workers post deltas every second: poll until every request the upstreams saw is counted
    // (every request of this file so far was proxied; none was answered by the proxy itself).
    const proxied = u.a.requests.length + u.b.requests.length + u.bad.requests.length;
    const stats = await eventually(
      async () => {
        const s = (await adminCall(sc, 'GET', '/stats')).json;
        const main = (s.listeners as Array<{ name: string; requests: number }>).find((l) => l.name === 'main');
        return main !== undefined && main.requests >= proxied ? s : undefined;
      },
      `stats of ${proxied} requests`,
      10_000,
      200,
    );
    const listener = stats.listeners.find((l: { name: string }) => l.name === 'main');
    expect(listener.requests).toBe(proxied);
    expect(listener.failure_count).toBe(u.bad.requests.length);
    expect(listener.success_count).toBe(u.a.requests.length + u.b.requests.length);
    expect(listener.responses['2xx']).toBe(u.a.requests.length + u.b.requests.length);
    expect(listener.responses['5xx']).toBe(u.bad.requests.length);
    const fail = stats.routes.find((r: { name: string }) => r.name === 'fail');
    // One /fail request was sent by the invalid-PUT test above.
    expect(u.bad.requests.length).toBe(11);
    expect(fail).toMatchObject({ listener: 'main', requests: 11, success_count: 0, failure_count: 11, success_rate: 0 });
    expect(fail.responses['5xx']).toBe(11);
    const root = stats.routes.find((r: { name: string }) => r.name === 'root');
    expect(root.requests).toBeGreaterThanOrEqual(20);
    expect(root.failure_count).toBe(0);
    expect(root.success_count).toBe(root.requests);
    expect(root.success_rate).toBe(1);
    for (const name of ['a', 'b']) {
      const c = stats.clusters.find((x: { name: string }) => x.name === name);
      expect(c.requests, `cluster ${name}`).toBe(name === 'a' ? u.a.requests.length : u.b.requests.length);
      expect(c.success_count).toBe(c.requests);
    }
    for (const t of [fail, root, listener]) {
      const p = [t.p50_response_latency, t.p90_response_latency, t.p99_response_latency, t.p99_9_response_latency];
      for (const v of p) {
        expect(typeof v).toBe('number');
        expect(v).toBeGreaterThan(0);
      }
      expect(p[0]).toBeLessThanOrEqual(p[1]);
      expect(p[1]).toBeLessThanOrEqual(p[2]);
      expect(p[2]).toBeLessThanOrEqual(p[3]);
    }
    const bad = stats.clusters.find((c: { name: string }) => c.name === 'bad');
    expect(bad).toMatchObject({ requests: 11, failure_count: 11, success_count: 0 });
    expect(typeof bad.p99_9_response_latency).toBe('number');
  });

  it('GET /metrics after traffic: the same counts in Prometheus text', async () => {
    const s = await metrics(sc);
    expect(sampleValue(s, 'outrigger_requests_total', { listener: 'main', route: 'fail', code_class: '5xx' })).toBe(11);
    expect(sampleValue(s, 'outrigger_requests_total', { listener: 'main', route: 'fail', code_class: '2xx' })).toBe(0);
    expect(sampleValue(s, 'outrigger_config_version')).toBe(5);
    const inf = sampleValue(s, 'outrigger_request_duration_seconds_bucket', { listener: 'main', route: 'fail', cluster: 'bad', le: '+Inf' });
    expect(inf).toBe(11);
  });

  it('GET /certs answers (an empty list until the identity work lands)', async () => {
    const r = await adminCall(sc, 'GET', '/certs');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ certs: [] });
  });

  it('PUT /log-level changes the level at run time; a bad level → 400', async () => {
    const r = await adminCall(sc, 'PUT', '/log-level', { level: 'debug' });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ level: 'debug' });
    expect((await adminCall(sc, 'GET', '/log-level')).json).toEqual({ level: 'debug' });
    const bad = await adminCall(sc, 'PUT', '/log-level', { level: 'loud' });
    expect(bad.status).toBe(400);
    expect((await adminCall(sc, 'PUT', '/log-level', { level: 'info' })).status).toBe(200);
    expect((await adminCall(sc, 'GET', '/log-level')).json).toEqual({ level: 'info' });
  });

  it('an unknown endpoint (or method) → 404', async () => {
    const r = await adminCall(sc, 'GET', '/nope');
    expect(r.status).toBe(404);
    expect(r.json.error).toContain('/nope');
    expect((await adminCall(sc, 'DELETE', '/config')).status).toBe(404);
  });

  it('a body over 1 MiB → 413 (with Content-Length and chunked), and nothing changes', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 0x20);
    const auth = { authorization: `Bearer ${sc.token}`, 'content-type': 'application/yaml' };
    const r = await request(`${sc.admin}/config`, { method: 'PUT', body: big, headers: { ...auth, 'content-length': String(big.length) } }).catch(
      (e: Error) => e,
    );
    expect(r instanceof Error ? r.message : r.status).toBe(413);
    const chunked = await request(`${sc.admin}/config/validate`, { method: 'POST', body: big, headers: { ...auth, 'transfer-encoding': 'chunked' } }).catch(
      (e: Error) => e,
    );
    expect(chunked instanceof Error ? chunked.message : chunked.status).toBe(413);
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(5);
  });

  it('an answer given before the body is read (421, 401, 415, 404, 413) still reaches a client that sent Connection: close and 8 MiB', async () => {
    // node:http closes such a connection once its answer is written; a client still writing the
    // body then met a reset and lost the answer (a broken pipe after ~2.9 MB, before the fix).
    const port = Number(new URL(sc.admin).port);
    const version = (await adminCall(sc, 'GET', '/config')).json.version as number;
    const big = Buffer.alloc(8 * 1024 * 1024, 0x20);
    const auth = `authorization: Bearer ${sc.token}\r\n`;
    const cases: Array<[string, number]> = [
      [`PUT /config HTTP/1.1\r\nhost: evil.example\r\n${auth}content-type: application/yaml\r\n`, 421],
      ['PUT /config HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/yaml\r\n', 401],
      [`PUT /config HTTP/1.1\r\nhost: localhost\r\n${auth}`, 415],
      [`POST /nope HTTP/1.1\r\nhost: localhost\r\n${auth}content-type: application/yaml\r\n`, 404],
      [`PUT /config HTTP/1.1\r\nhost: localhost\r\n${auth}content-type: application/yaml\r\n`, 413],
    ];
    for (const [head, status] of cases) {
      const r = await rawRequest(port, [`${head}connection: close\r\ncontent-length: ${big.length}\r\n\r\n`, big], { endAfterWrite: true, timeoutMs: 30_000 });
      expect(r.response?.status, `${head.split('\r\n')[0]}: ${r.error ?? ''}`).toBe(status);
    }
    // A body declared beyond 16 MiB is not waited for: 413 at once, and the connection closes.
    const declared = await rawRequest(
      port,
      `PUT /config HTTP/1.1\r\nhost: localhost\r\n${auth}content-type: application/yaml\r\ncontent-length: ${100 * 1024 * 1024}\r\n\r\n`,
      { untilClose: true, timeoutMs: 30_000 },
    );
    expect(declared.response?.status).toBe(413);
    expect(header(declared.response!, 'connection')).toBe('close');
    expect(declared.closed).toBe(true);
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(version);
  });

  it('malformed JSON to POST /config/rollback → 400 with the parser’s message', async () => {
    const text = '{"version": 1,}';
    let parserMessage = '';
    try {
      JSON.parse(text);
    } catch (e) {
      parserMessage = (e as Error).message;
    }
    const r = await adminCall(sc, 'POST', '/config/rollback', text);
    expect(r.status).toBe(400);
    expect(r.json.error).toContain(parserMessage);
    expect(r.json.error).toContain('position');
    // A truncated body: Node's message names no position, ours does (where the body ended).
    const cut = '{"version": 1';
    const r2 = await adminCall(sc, 'POST', '/config/rollback', cut);
    expect(r2.status).toBe(400);
    expect(r2.json.error).toContain(`at position ${cut.length}`);
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(5);
  });

  it('a change to the admin block through PUT /config is applied for the rest and reported as needing a restart', async () => {
    const r = await adminCall(sc, 'PUT', '/config', makeConfig(u, { root: 'b', admin: { address: '127.0.0.1:0', history_limit: 5 } }));
    expect(r.status, r.text).toBe(200);
    expect(r.json.version).toBe(6);
    expect(r.json.restart_required).toEqual(['admin']);
    expect(await routedTo(sc, '/x')).toBe('B');
  });

  it('an apply that cannot bind a moved listener → 409 with the reason (a conflict with another process, not a fault), and the old config keeps serving', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const held = (holder.address() as net.AddressInfo).port;
    try {
      const cfg = makeConfig(u, { root: 'a' });
      (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['address'] = `127.0.0.1:${held}`;
      const r = await adminCall(sc, 'PUT', '/config', cfg);
      expect(r.status, r.text).toBe(409);
      expect(r.json.error).toBe('a port of the config is held by another process; the previous config stays in force');
      expect(r.json.detail).toContain(`listener main: 127.0.0.1:${held} is already in use by another process`);
      expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(6);
      expect(await routedTo(sc, '/x')).toBe('B');
      expect((await adminCall(sc, 'GET', '/ready')).status).toBe(200);
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
  });

  it('a listener moved to a new address serves there, and the old address stops accepting', async () => {
    const oldPort = sc.port();
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const newPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const cfg = makeConfig(u, { root: 'a' });
    (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['address'] = `127.0.0.1:${newPort}`;
    const r = await adminCall(sc, 'PUT', '/config', cfg);
    expect(r.status, r.text).toBe(200);
    const moved = { url: (p: string) => `http://127.0.0.1:${newPort}${p}` };
    expect(await routedTo(moved, '/x')).toBe('A');
    expect(await tryConnect(oldPort)).toBe('ECONNREFUSED');
  });
});

describe('admin token', () => {
  it('a configured token file: every call but /live, /ready, /metrics needs its token (trimmed from the file)', async () => {
    const u = await startUps();
    const dir = tempDir();
    const tokenFile = path.join(dir, 'admin.token');
    writeFileSync(tokenFile, '  \n s3cret-Token.42 \n\n');
    const admin = { address: '127.0.0.1:0', token_file: tokenFile };
    const sc = await startSidecar(makeConfig(u, { root: 'a', admin }), { dir });
    expect(sc.tokenFile).toBe(tokenFile);
    expect(sc.token).toBe('s3cret-Token.42');
    const right = { authorization: 'Bearer s3cret-Token.42' };
    const wrong = { authorization: 'Bearer s3cret-Token.43' };
    const anon = { admin: sc.admin }; // adminCall sends no token for it

    const next = makeConfig(u, { root: 'b', admin });
    for (const headers of [{}, wrong, { authorization: 's3cret-Token.42' }, { authorization: 'Basic s3cret-Token.42' }]) {
      const what = JSON.stringify(headers);
      const put = await adminCall(anon, 'PUT', '/config', next, headers);
      expect(put.status, what).toBe(401);
      expect(put.json.error).toContain('bearer token');
      expect(put.headers['www-authenticate']).toContain('Bearer');
      expect((await adminCall(anon, 'POST', '/config/rollback', { version: 1 }, headers)).status).toBe(401);
      expect((await adminCall(anon, 'PUT', '/log-level', { level: 'debug' }, headers)).status).toBe(401);
      expect((await adminCall(anon, 'POST', '/drain', undefined, headers)).status).toBe(401);
      expect((await adminCall(anon, 'POST', '/shutdown', undefined, headers)).status).toBe(401);
      expect((await adminCall(anon, 'POST', '/config/validate', next, headers)).status).toBe(401);
      for (const p of ['/config', '/config/history', '/clusters', '/stats', '/certs', '/log-level']) {
        expect((await adminCall(anon, 'GET', p, undefined, headers)).status, `${p} ${what}`).toBe(401);
      }
    }
    // Nothing changed and the sidecar is still up.
    expect((await adminCall(anon, 'GET', '/config', undefined, right)).json.version).toBe(1);
    expect((await adminCall(anon, 'GET', '/ready')).status).toBe(200);
    expect(await routedTo(sc, '/x')).toBe('A');

    // Liveness, readiness and Prometheus need no token; the rest answers with it.
    for (const p of ['/live', '/ready', '/metrics']) expect((await request(`${sc.admin}${p}`)).status, p).toBe(200);
    for (const p of ['/config', '/config/history', '/clusters', '/stats', '/certs', '/log-level']) {
      expect((await request(`${sc.admin}${p}`, { headers: right })).status, p).toBe(200);
    }
    expect((await adminCall(anon, 'POST', '/config/validate', next, right)).status).toBe(200);

    // With the right token.
    const put = await adminCall(anon, 'PUT', '/config', next, right);
    expect(put.status, put.text).toBe(200);
    expect(put.json.version).toBe(2);
    expect(await routedTo(sc, '/x')).toBe('B');
    const rb = await adminCall(anon, 'POST', '/config/rollback', { version: 1 }, right);
    expect(rb.status).toBe(200);
    expect(await routedTo(sc, '/x')).toBe('A');
    expect((await adminCall(anon, 'PUT', '/log-level', { level: 'warn' }, right)).status).toBe(200);
    const shut = await adminCall(anon, 'POST', '/shutdown', undefined, right);
    expect(shut.status).toBeLessThan(300);
    expect(await sc.exit()).toBe(0);
  });

  it('a non-loopback admin address without a token is refused at start: exit 2, one line', async () => {
    const u = await startUps();
    const r = await runUntilExit(makeConfig(u, { root: 'a', admin: { address: '0.0.0.0:0' } }));
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('admin.address');
    expect(lines[0]).toContain('token');
    expect(r.stdout).not.toContain('"msg":"ready"');
  });
});

describe('reloads from the config file', () => {
  it('a file edit reloads; an invalid edit is logged and ignored; SIGHUP reloads', async () => {
    const u = await startUps();
    const sc = await startSidecar(makeConfig(u, { root: 'a' }), { yaml: true });
    expect(await routedTo(sc, '/x')).toBe('A');

    // A valid edit (the file replaced by rename, as editors do).
    rewriteConfig(sc, makeConfig(u, { root: 'b', bPath: true }), true);
    await untilRoutedTo(sc, '/x', 'B');
    await sc.waitForLog((e) => e.msg === 'config reloaded' && e['version'] === 2);
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(2);

    // An edit in place, with a YAML syntax error: logged, ignored, version 2 keeps serving.
    writeFileSync(sc.file, 'listeners:\n  - name: main\n    routes: [\n');
    const logged = await sc.waitForLog((e) => e.msg === 'config file is invalid; running config stays');
    expect(JSON.stringify(logged['problems'])).toContain('line');
    // An edit that parses but is invalid: also logged with its problems.
    const invalid = makeConfig(u, { root: 'nowhere' });
    rewriteConfig(sc, invalid, true);
    await sc.waitForLog((e) => e.msg === 'config file is invalid; running config stays' && JSON.stringify(e['problems']).includes('nowhere'));
    expect((await adminCall(sc, 'GET', '/config')).json.version).toBe(2);
    expect(await routedTo(sc, '/x')).toBe('B');
    expect(await routedTo(sc, '/b/z')).toBe('B');

    // SIGHUP: the file is written and the signal sent at once; the reload is SIGHUP's (the file
    // watch waits 200 ms and then finds nothing new).
    writeFileSync(sc.file, configText(makeConfig(u, { root: 'a' }), true));
    process.kill(sc.pid, 'SIGHUP');
    await untilRoutedTo(sc, '/x', 'A');
    let h = await adminCall(sc, 'GET', '/config/history');
    expect(h.json.current).toBe(3);
    expect(h.json.versions.at(-1).by).toMatch(/^SIGHUP/);
    // SIGHUP with the file unchanged still reloads (a new version, same routes).
    process.kill(sc.pid, 'SIGHUP');
    h = await eventually(async () => {
      const x = await adminCall(sc, 'GET', '/config/history');
      return x.json.current === 4 ? x : undefined;
    }, 'version 4 after SIGHUP');
    expect(h.json.versions.at(-1).by).toMatch(/^SIGHUP/);
    expect(await routedTo(sc, '/x')).toBe('A');
    expect(await sc.stop()).toBe(0);
  });
});
