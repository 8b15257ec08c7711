// Sections whose feature is not built yet are accepted with one warning each (path and line),
// never a problem; the admin block is accepted silently; defaults never cause a warning.
import { describe, expect, it } from 'vitest';
import { compileConfig, parseConfigText } from '../../src/config/load.js';
import { minimal, OPTS, ok } from './helpers.js';

const NOT_BUILT = 'accepted, not built yet in this version (ignored)';

describe('not-built sections', () => {
  it('warns once per section, in document order, with lines', () => {
    const text = `admin: {address: 127.0.0.1:0, token_file: ./t, history_limit: 5}
tls: {ca: {dir: ./ca}}
listeners:
  - name: out
    address: 127.0.0.1:0
    tls: {mode: tls}
    authorization: [{from: ["spiffe://td/*"], paths: ["/v1/*"], methods: [GET]}]
    rate_limit: {requests_per_second: 100}
    access_log: {format: text}
    routes:
      - cluster: api
        retries: {attempts: 2, on: [reset, 503, "502", 5xx]}
        fault: {abort: {status: 503, percent: 1}, delay: {duration_ms: 10}}
        rate_limit: {requests_per_second: 5, burst: 10}
clusters:
  - name: api
    endpoints: [{address: 127.0.0.1:1}]
    tls: {identity: spiffe://td/ns/a/sa/api}
    circuit_breaker: {max_requests: 10}
    retry_budget: {}
    health_check: {}
    outlier_detection: {}
  - name: dns
    discovery: {dns: api.local, port: 80}
`;
    const r = ok(parseConfigText(text, OPTS));
    expect(r.warnings.map((w) => `${w.path} ${w.line}`)).toEqual([
      'tls 2',
      'listeners[0].tls 6',
      'listeners[0].authorization 7',
      'listeners[0].rate_limit 8',
      'listeners[0].access_log 9',
      'listeners[0].routes[0].retries 12',
      'listeners[0].routes[0].fault 13',
      'listeners[0].routes[0].rate_limit 14',
      'clusters[0].tls 18',
      'clusters[0].circuit_breaker.max_requests 19',
      'clusters[0].retry_budget 20',
      'clusters[0].health_check 21',
      'clusters[0].outlier_detection 22',
      'clusters[1].discovery 24',
    ]);
    expect(r.warnings[0]?.message).toBe(NOT_BUILT);
    expect(r.warnings.at(-1)?.message).toBe(`${NOT_BUILT}; the cluster has no endpoints until it is`);
    expect(r.admin).toEqual({ address: '127.0.0.1:0', host: '127.0.0.1', port: 0, tokenFile: './t', historyLimit: 5 });
    // Ignored sections leave no trace in the snapshot.
    expect(Object.keys(r.snapshot.listeners[0] ?? {}).sort()).toEqual(['host', 'maxRequestHeadersBytes', 'name', 'port', 'routes']);
    // …but the defaulted source keeps them, defaults filled in.
    expect(r.source.listeners[0]?.routes[0]?.retries).toEqual({ attempts: 2, on: ['reset', 503, '502', '5xx'], per_try_timeout_ms: 0, backoff_base_ms: 25 });
    expect(r.source.clusters[0]?.health_check).toEqual({ path: '/healthz', interval_ms: 5000, timeout_ms: 1000, unhealthy_threshold: 3, healthy_threshold: 2 });
  });

  it('does not warn for defaults nor for circuit_breaker.max_pending', () => {
    const cfg = minimal();
    cfg['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:1' }], circuit_breaker: { max_pending: 3 } }];
    expect(ok(compileConfig(cfg, OPTS)).warnings).toEqual([]);
  });

  it('refuses a bad retry condition with the list of good ones', () => {
    const cfg = minimal();
    cfg['listeners'] = [{ name: 'out', address: '127.0.0.1:0', routes: [{ cluster: 'api', retries: { on: ['timeout'] } }] }];
    const r = compileConfig(cfg, OPTS);
    expect(r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      'listeners[0].routes[0].retries.on[0]: must be one of connect-failure, reset, 5xx, gateway-error, retriable-4xx, refused-stream or an HTTP status code (got "timeout")',
    ]);
  });
});
