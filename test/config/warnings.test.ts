// Every mesh section is built now (cluster `discovery` was the last): it compiles into the snapshot
// and causes no warning; the admin block and defaults never warn.
import { describe, expect, it } from 'vitest';
import { compileConfig, parseConfigText } from '../../src/config/load.js';
import { minimal, OPTS, ok } from './helpers.js';

/** Every section that used to warn, two discovery clusters among them. */
const EVERYTHING = `admin: {address: 127.0.0.1:0, token_file: ./t, history_limit: 5}
node: {identity: spiffe://td/ns/a/sa/web, random_seed: 7}
tls: {ca: {dir: ./ca}}
listeners:
  - name: in
    address: 127.0.0.1:0
    tls: {mode: mtls}
    authorization: [{from: ["spiffe://td/*"], paths: ["/v1/*"], methods: [GET]}]
    rate_limit: {requests_per_second: 100}
    access_log: {format: text}
    routes:
      - cluster: api
        retries: {attempts: 2, on: [reset, 503, "502", 5xx]}
        fault: {abort: {status: 503, percent: 1}, delay: {duration_ms: 10}}
        rate_limit: {requests_per_second: 5, burst: 10}
        max_stream_duration_ms: 60000
clusters:
  - name: api
    endpoints: [{address: 127.0.0.1:1}]
    tls: {identity: spiffe://td/ns/a/sa/api}
    circuit_breaker: {max_requests: 10}
    retry_budget: {}
    health_check: {}
    outlier_detection: {consecutive_gateway_failure: 2}
  - name: dns
    discovery: {dns: {name: api.local, port: 80}}
  - name: dns2
    discovery: {dns: {name: _api._tcp.api2.local, type: SRV, refresh_ms: 1000, resolvers: ["127.0.0.1:5353"]}}
`;

describe('warnings', () => {
  it('warns for nothing; a discovery cluster compiles with no endpoints and its source', () => {
    const r = ok(parseConfigText(EVERYTHING, OPTS));
    expect(r.warnings).toEqual([]);
    // The discovery manager fills the endpoints in at run time.
    expect(r.snapshot.clusters.map((c) => [c.name, c.endpoints.length])).toEqual([
      ['api', 1],
      ['dns', 0],
      ['dns2', 0],
    ]);
    expect(r.admin).toEqual({ address: '127.0.0.1:0', host: '127.0.0.1', port: 0, tokenFile: './t', historyLimit: 5, hosts: [], metricsTokenFile: null });
  });

  it('compiles every built section into the snapshot (none is ignored any more)', () => {
    const r = ok(parseConfigText(EVERYTHING, OPTS));
    const s = r.snapshot;
    const l = s.listeners[0];
    const route = l?.routes[0];
    const api = s.clusters[0];
    expect(s.node.randomSeed).toBe(7);
    expect(s.tls).toEqual({ mode: 'ca', dir: './ca', ttlHours: 24, keyType: 'ec-p256', federation: [], allowInsecureKeyPermissions: false });
    expect(Object.keys(l ?? {}).sort()).toEqual([
      'accessLog',
      'authorization',
      'engine',
      'errorDetail',
      'h2MaxConcurrentStreams',
      'headersWithUnderscores',
      'host',
      'maxConnections',
      'maxRequestHeadersBytes',
      'name',
      'originalDestination',
      'port',
      'protocol',
      'rateLimit',
      'routes',
      'tcp',
      'tcpFallback',
      'timeouts',
      'tls',
      'xForwardedFor',
    ]);
    expect(l?.tls).toBe('mtls');
    expect(l?.engine).toBe('strict');
    expect(l?.xForwardedFor).toBe('append');
    expect(l?.accessLog).toEqual({ path: 'stdout', format: 'text' });
    expect(l?.authorization).toEqual([{ from: ['spiffe://td/*'], paths: ['/v1/*'], methods: ['GET'] }]);
    // Every worker serves a TLS listener too: its limits are divided among the 4 workers.
    expect(l?.rateLimit).toEqual({ tokensPerSecond: 25, burst: 25 });
    expect(route?.rateLimit).toEqual({ tokensPerSecond: 1.25, burst: 3 });
    expect(route?.retries).toMatchObject({ attempts: 2, onReset: true, on5xx: true, statuses: [503, 502] });
    expect(route?.fault).toEqual({ delayPercent: 100, delayMs: 10, abortPercent: 1, abortStatus: 503 });
    expect(route?.maxStreamDurationMs).toBe(60000);
    expect(api?.tls).toEqual({ identities: ['spiffe://td/ns/a/sa/api'] });
    expect(api?.maxRequests).toBe(3); // ceil(10 / 4)
    expect(api?.healthCheck).not.toBeNull();
    expect(api?.outlier?.consecutiveGatewayFailure).toBe(2);
  });

  it('keeps the sections, defaults filled in, in the defaulted source', () => {
    const r = ok(parseConfigText(EVERYTHING, OPTS));
    expect(r.source.listeners[0]?.routes?.[0]?.retries).toEqual({
      attempts: 2,
      on: ['reset', 503, '502', '5xx'],
      per_try_timeout_ms: 0,
      backoff_base_ms: 25,
      backoff_max_ms: 250,
      allow_non_idempotent: false,
      max_body_bytes: 65536,
    });
    expect(r.source.clusters[0]?.health_check).toEqual({ path: '/healthz', interval_ms: 5000, timeout_ms: 1000, unhealthy_threshold: 3, healthy_threshold: 2 });
    expect(r.source.clusters[0]?.outlier_detection).toEqual({
      consecutive_5xx: 5,
      consecutive_gateway_failure: 2,
      interval_ms: 10000,
      base_ejection_ms: 30000,
      max_ejection_percent: 10,
    });
    expect(r.source.clusters[2]?.discovery).toEqual({ dns: { name: '_api._tcp.api2.local', type: 'SRV', refresh_ms: 1000, resolvers: ['127.0.0.1:5353'] } });
    expect(r.snapshot.clusters.map((c) => c.discovery)).toEqual([
      null,
      { kind: 'dns', name: 'api.local', type: 'A', port: 80, refreshMs: 5000, resolvers: [] },
      { kind: 'dns', name: '_api._tcp.api2.local', type: 'SRV', port: null, refreshMs: 1000, resolvers: ['127.0.0.1:5353'] },
    ]);
  });

  it('does not warn for defaults, for the built sections, nor for circuit_breaker', () => {
    const cfg = minimal();
    cfg['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:1' }], circuit_breaker: { max_pending: 3, max_requests: 5 } }];
    expect(ok(compileConfig(cfg, OPTS)).warnings).toEqual([]);
    const withoutDiscovery = EVERYTHING.slice(0, EVERYTHING.indexOf('  - name: dns\n'));
    expect(ok(parseConfigText(withoutDiscovery, OPTS)).warnings).toEqual([]);
  });

  it('refuses a bad retry condition with the list of good ones', () => {
    const cfg = minimal();
    cfg['listeners'] = [{ name: 'out', address: '127.0.0.1:0', routes: [{ cluster: 'api', retries: { on: ['timeout'] } }] }];
    const r = compileConfig(cfg, OPTS);
    expect(r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'listeners[0].routes[0].retries.on[0]: must be one of connect-failure, reset, 5xx, gateway-error, retriable-4xx, refused-stream, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable or an HTTP status code (got "timeout")',
    ]);
  });
});
