// The happy path: a full valid config compiles with every default applied and normalised,
// the snapshot is frozen and structured-clone safe, and the DESIGN.md §4 example is accepted.
import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileConfig, loadConfigFile, parseConfigText } from '../../src/config/load.js';
import { header, route, split } from '../router/helpers.js';
import { minimal, OPTS, ok, RETRY_DEFAULTS } from './helpers.js';

const FULL = `
node:
  identity: spiffe://cluster.local/ns/default/sa/web
  workers: auto
admin:
  token_file: ./admin.token
listeners:
  - name: outbound
    address: localhost:15001
    routes:
      - name: api-canary
        match:
          host: API.Example.com
          path_prefix: /v1/
          methods: [get, POST, get]
          headers:
            X-Canary: "1"
            X-Env: {regex: "prod|staging"}
            X-Debug: {present: false}
            X-Exact: {exact: "a b"}
        split: [{cluster: api-v1, weight: 3}, {cluster: api-v2, weight: 1}]
        timeout_ms: 0
      - match: {host: "*.svc.local", path_regex: "/items/[0-9]+"}
        cluster: api-v1
      - match: {host: "*"}
        cluster: api-v2
  - name: inbound
    address: "[::1]:0"
    max_request_headers_bytes: 8192
    routes:
      - match: {path: /healthz}
        cluster: local-app
clusters:
  - name: api-v1
    lb: round_robin
    endpoints: [{address: 127.0.0.1:16006, weight: 5}, {address: "[::1]:16006"}]
    connect_timeout_ms: 250
    circuit_breaker: {max_pending: 10}
  - name: api-v2
    endpoints: [{address: localhost:16007}]
    circuit_breaker: {max_pending: 0}
  - name: local-app
    lb: random
    endpoints: [{address: 127.0.0.1:8080}]
    pool: {connections_per_worker: 8, idle_timeout_ms: 5000, connect_timeout_ms: 300}
`;

describe('compile', () => {
  it('compiles a full config with defaults applied and values normalised', () => {
    const r = ok(parseConfigText(FULL, { ...OPTS, version: 7, availableParallelism: 3 }));
    const s = r.snapshot;
    expect(r.warnings).toEqual([]);
    expect(s.version).toBe(7);
    expect(s.node).toEqual({ workers: 3, identity: 'spiffe://cluster.local/ns/default/sa/web', drainTimeoutMs: 10000, randomSeed: null, workerStallMs: 5000 });
    expect(s.tls).toBeNull();

    const [outbound, inbound] = s.listeners;
    expect(outbound).toMatchObject({ name: 'outbound', host: '127.0.0.1', port: 15001, maxRequestHeadersBytes: 65536 });
    expect(inbound).toMatchObject({ name: 'inbound', host: '::1', port: 0, maxRequestHeadersBytes: 8192 });
    // Optional listener sections left out compile to null (plaintext, no limit, no log, no rules).
    for (const l of [outbound, inbound]) {
      expect(l).toMatchObject({ rateLimit: null, accessLog: null, tls: null, authorization: null });
    }

    // Every optional route field at its default, as route() builds it.
    expect(outbound?.routes[0]).toEqual(
      route(
        'api-canary',
        {
          host: 'api.example.com',
          pathPrefix: '/v1/',
          methods: ['GET', 'POST'],
          headers: [
            header('x-canary', { exact: '1' }),
            header('x-env', { regex: '^(?:prod|staging)$' }),
            header('x-debug', { present: false }),
            header('x-exact', { exact: 'a b' }),
          ],
        },
        split(['api-v1', 3], ['api-v2', 1]),
      ),
    );
    expect(outbound?.routes[1]).toMatchObject({
      name: 'outbound#1',
      match: { host: '*.svc.local', pathRegex: '^(?:/items/[0-9]+)$', methods: null, headers: [] },
      action: { kind: 'cluster', cluster: 'api-v1' },
      timeoutMs: 15000,
    });
    expect(outbound?.routes[2]?.match.host).toBeNull();
    expect(inbound?.routes[0]?.match.path).toBe('/healthz');

    const [v1, v2, app] = s.clusters;
    expect(v1).toEqual({
      name: 'api-v1',
      lb: 'round_robin',
      endpoints: [
        { address: '127.0.0.1:16006', host: '127.0.0.1', port: 16006, weight: 5 },
        { address: '[::1]:16006', host: '::1', port: 16006, weight: 1 },
      ],
      // max_pending 10 over 3 workers → ceil(10 / 3) = 4 per worker
      pool: {
        connectionsPerWorker: 64,
        idleTimeoutMs: 60000,
        connectTimeoutMs: 250,
        keepaliveIntervalMs: 30000,
        pipelineDepth: 16,
        pipelinePlaintext: 'loopback',
        maxPending: 4,
      },
      protocol: 'http1',
      // max_requests 1024 (default) over 3 workers → ceil(1024 / 3) = 342
      maxRequests: 342,
      // The retry budget always exists (defaults 20 %, min_concurrent 3, 10 retries/s), floors divided:
      // ceil(3 / 3) = 1 concurrent, 10 / 3 per second.
      retryBudget: { percent: 20, minConcurrent: 1, minPerSecond: 10 / 3 },
      healthCheck: null,
      outlier: null,
      tls: null,
      discovery: null,
    });
    expect(v2?.lb).toBe('least_request');
    expect(v2?.endpoints[0]).toEqual({ address: 'localhost:16007', host: '127.0.0.1', port: 16007, weight: 1 });
    expect(v2?.pool.maxPending).toBe(0);
    expect(app?.pool).toEqual({
      connectionsPerWorker: 8,
      idleTimeoutMs: 5000,
      connectTimeoutMs: 300,
      keepaliveIntervalMs: 30000,
      pipelineDepth: 16,
      pipelinePlaintext: 'loopback',
      maxPending: 342,
    });

    expect(r.admin).toEqual({
      address: '127.0.0.1:15000',
      host: '127.0.0.1',
      port: 15000,
      tokenFile: './admin.token',
      historyLimit: 20,
      hosts: [],
      metricsTokenFile: null,
    });
  });

  it('fills every default for a minimal config, and an explicit worker count wins', () => {
    const r = ok(compileConfig({ ...minimal(), node: { workers: 2, drain_timeout_ms: 500 } }, OPTS));
    expect(r.snapshot.node).toEqual({ workers: 2, identity: null, drainTimeoutMs: 500, randomSeed: null, workerStallMs: 5000 });
    expect(r.snapshot.clusters[0]).toMatchObject({ maxRequests: 512, retryBudget: { percent: 20, minConcurrent: 2, minPerSecond: 5 } });
    expect(r.snapshot.clusters[0]?.pool).toEqual({
      connectionsPerWorker: 64,
      idleTimeoutMs: 60000,
      connectTimeoutMs: 5000,
      keepaliveIntervalMs: 30000,
      pipelineDepth: 16,
      pipelinePlaintext: 'loopback',
      maxPending: 512,
    });
    expect(r.admin.historyLimit).toBe(20);
    expect(r.admin.tokenFile).toBeNull();
    expect(r.source.node.workers).toBe(2);
    expect(r.source.clusters[0]?.circuit_breaker).toEqual({ max_requests: 1024, max_pending: 1024 });
    expect(r.source.listeners[0]?.routes?.[0]?.match).toEqual({ headers: {} });
  });

  it('accepts an empty mapping (no listeners, no clusters) but not an empty file', () => {
    const r = ok(compileConfig({}, OPTS));
    expect(r.snapshot.listeners).toEqual([]);
    expect(r.snapshot.node.workers).toBe(4);
    const empty = parseConfigText('# nothing here\n', OPTS, 'sidecar.yaml');
    expect(empty).toEqual({ ok: false, problems: [{ path: '', message: 'config file "sidecar.yaml" is empty', line: null }] });
  });

  it('returns a deeply frozen, structured-clone safe snapshot', () => {
    const r = ok(parseConfigText(FULL, OPTS));
    const s = r.snapshot;
    expect(Object.isFrozen(s)).toBe(true);
    expect(Object.isFrozen(s.listeners)).toBe(true);
    expect(Object.isFrozen(s.listeners[0]?.routes[0]?.match.headers[0])).toBe(true);
    expect(Object.isFrozen(s.clusters[0]?.endpoints)).toBe(true);
    expect(Object.isFrozen(r.admin)).toBe(true);
    expect(Object.isFrozen(r.source.clusters[0]?.pool)).toBe(true);
    expect(() => {
      (s.listeners as unknown as unknown[]).push(1);
    }).toThrow(TypeError);
    expect(structuredClone(s)).toEqual(s);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('compiles test_crash only when test hooks are enabled', () => {
    const cfg = minimal();
    cfg['listeners'] = [{ name: 'out', address: '127.0.0.1:0', routes: [{ cluster: 'api', test_crash: true }] }];
    const r = ok(compileConfig(cfg, { ...OPTS, enableTestHooks: true }));
    expect(r.snapshot.listeners[0]?.routes[0]?.testCrash).toBe(true);
  });

  it('recompiling the defaulted source gives the same snapshot', () => {
    const r = ok(parseConfigText(FULL, OPTS));
    const again = ok(compileConfig(JSON.parse(JSON.stringify(r.source)), OPTS));
    expect(again.snapshot).toEqual(r.snapshot);
  });
});

describe('the DESIGN.md §4 example', () => {
  const text = readFileSync(new URL('../fixtures/design-example.yaml', import.meta.url), 'utf8');

  it('is accepted with no warning and no problem, every mesh section compiled', () => {
    // OPTS: workers auto → 4.
    const r = ok(parseConfigText(text, OPTS, 'design-example.yaml'));
    expect(r.warnings).toEqual([]);
    const s = r.snapshot;
    expect(s.node).toEqual({ workers: 4, identity: 'spiffe://cluster.local/ns/default/sa/web', drainTimeoutMs: 10000, randomSeed: null, workerStallMs: 5000 });
    expect(s.tls).toEqual({
      mode: 'files',
      trustBundle: './certs/ca.pem',
      cert: './certs/web.pem',
      key: './certs/web.key',
      federation: [],
      allowInsecureKeyPermissions: false,
    });
    expect(r.admin.tokenFile).toBe('./admin.token');

    const [outbound, inbound] = s.listeners;
    expect(s.listeners.map((l) => l.name)).toEqual(['outbound', 'inbound']);
    expect(outbound?.tls).toBeNull();
    expect(outbound?.authorization).toBeNull();
    expect(outbound?.routes[0]?.action).toEqual({
      kind: 'split',
      split: [
        { cluster: 'api-v1', weight: 90 },
        { cluster: 'api-v2', weight: 10 },
      ],
      totalWeight: 100,
    });
    expect(outbound?.routes[0]?.timeoutMs).toBe(5000);
    expect(outbound?.routes[0]?.retries).toEqual({ ...RETRY_DEFAULTS, attempts: 2, statuses: [503] });
    expect(outbound?.routes[1]?.retries).toBeNull();
    expect(inbound?.tls).toBe('mtls');
    expect(inbound?.authorization).toEqual([{ from: ['spiffe://cluster.local/ns/default/sa/web'], paths: ['/v1/*'], methods: ['GET'] }]);

    const [apiV1, localApp, apiV2] = s.clusters;
    expect(apiV1).toMatchObject({
      name: 'api-v1',
      tls: { identities: ['spiffe://cluster.local/ns/default/sa/api'] },
      pool: {
        connectionsPerWorker: 32,
        idleTimeoutMs: 60000,
        connectTimeoutMs: 1000,
        keepaliveIntervalMs: 30000,
        pipelineDepth: 16,
        pipelinePlaintext: 'loopback',
        maxPending: 256,
      },
      maxRequests: 256, // 1024 / 4 workers
      retryBudget: { percent: 20, minConcurrent: 1, minPerSecond: 2.5 }, // ceil(3 / 4), 10 / 4
      healthCheck: { path: '/healthz', grpc: null, intervalMs: 5000, timeoutMs: 1000, unhealthyThreshold: 3, healthyThreshold: 2 },
      outlier: { consecutive5xx: 5, consecutiveGatewayFailure: 5, intervalMs: 10000, baseEjectionMs: 30000, maxEjectionPercent: 10 },
    });
    for (const c of [localApp, apiV2]) expect(c).toMatchObject({ tls: null, healthCheck: null, outlier: null });
  });

  it('as written in DESIGN.md (without the added api-v2 cluster) has exactly one problem', () => {
    // Line 19 of the fixture is line 17 of the example (the fixture opens with two comment lines).
    const verbatim = text.slice(0, text.indexOf('  # added (not in DESIGN.md'));
    const r = parseConfigText(verbatim, OPTS);
    expect(r).toEqual({
      ok: false,
      problems: [{ path: 'listeners[0].routes[0].split[1].cluster', message: 'unknown cluster "api-v2" (did you mean "api-v1"?)', line: 19 }],
    });
  });
});

describe('loadConfigFile', () => {
  it('reads and compiles a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-config-'));
    const file = join(dir, 'sidecar.json');
    writeFileSync(file, JSON.stringify(minimal(), null, 2));
    const r = ok(await loadConfigFile(file, OPTS));
    expect(r.snapshot.clusters[0]?.name).toBe('api');
  });

  it('reports an unreadable file as one problem', async () => {
    const r = await loadConfigFile('/nonexistent/outrigger.yaml', OPTS);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]?.path).toBe('');
    expect(r.problems[0]?.line).toBeNull();
    expect(r.problems[0]?.message).toMatch(/^cannot read config file "\/nonexistent\/outrigger.yaml": ENOENT/);
  });
});
