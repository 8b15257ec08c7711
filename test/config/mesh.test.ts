// The mesh sections compiled into the snapshot: retries, fault, rate limits (divided among the
// workers that serve the listener), circuit breaker, retry budget, health checks, outlier
// detection, cluster and listener TLS, authorization, the top-level certificate source,
// node.random_seed, and the cross checks that tie TLS sections together.
import { describe, expect, it } from 'vitest';
import { compileConfig, formatProblems, parseConfigText } from '../../src/config/load.js';
import type { ClusterSpec, ListenerSpec, RouteSpec, Snapshot } from '../../src/config/types.js';
import { listed, minimal, OPTS, ok, problems, RETRY_DEFAULTS } from './helpers.js';

type Obj = Record<string, unknown>;

const CA = { tls: { ca: { dir: './ca' } } };

/** Compiles `minimal()` with the route, listener, cluster and top-level fields merged in. */
function build(parts: { route?: Obj; listener?: Obj; cluster?: Obj; top?: Obj; workers?: number }): Obj {
  const cfg = minimal();
  const listener = { name: 'out', address: '127.0.0.1:0', routes: [{ cluster: 'api', ...parts.route }], ...parts.listener };
  cfg['listeners'] = [listener];
  cfg['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }], ...parts.cluster }];
  // The embedded CA issues our leaf for node.identity, so a config with tls.ca names one.
  const top = parts.top ?? {};
  const usesCa = typeof top['tls'] === 'object' && top['tls'] !== null && 'ca' in (top['tls'] as Obj);
  const node: Obj = { ...(usesCa ? { identity: 'spiffe://td/ns/a/sa/me' } : {}), ...(parts.workers !== undefined ? { workers: parts.workers } : {}) };
  if (Object.keys(node).length > 0) cfg['node'] = node;
  return { ...cfg, ...top };
}

function snap(parts: Parameters<typeof build>[0]): Snapshot {
  return ok(compileConfig(build(parts), OPTS)).snapshot;
}
function route(parts: Parameters<typeof build>[0]): RouteSpec {
  const r = snap(parts).listeners[0]?.routes[0];
  if (r === undefined) expect.fail('no route');
  return r;
}
function listener(parts: Parameters<typeof build>[0]): ListenerSpec {
  const l = snap(parts).listeners[0];
  if (l === undefined) expect.fail('no listener');
  return l;
}
function cluster(parts: Parameters<typeof build>[0]): ClusterSpec {
  const c = snap(parts).clusters[0];
  if (c === undefined) expect.fail('no cluster');
  return c;
}
/** What the compiler refuses in `build(parts)`, as `path: message` lines. */
function refusals(parts: Parameters<typeof build>[0]): string[] {
  return listed(compileConfig(build(parts), OPTS));
}

describe('route retries', () => {
  it('is null when absent or when attempts is 0', () => {
    expect(route({}).retries).toBeNull();
    expect(route({ route: { retries: { attempts: 0, on: ['5xx'] } } }).retries).toBeNull();
  });

  it('defaults: one retry on connect failure and reset, 25-250 ms backoff, idempotent methods, 64 KiB bodies', () => {
    expect(route({ route: { retries: {} } }).retries).toEqual(RETRY_DEFAULTS);
  });

  it.each([
    // on, [onConnectFailure, onReset, on5xx, onGatewayError, onRetriable4xx]
    [['connect-failure'], [true, false, false, false, false]],
    [['reset'], [false, true, false, false, false]],
    // 5xx implies connect failures and resets
    [['5xx'], [true, true, true, false, false]],
    // gateway-error implies connect failures, not resets
    [['gateway-error'], [true, false, false, true, false]],
    [['retriable-4xx'], [false, false, false, false, true]],
    // refused-stream is accepted (Envoy compatibility) but never happens on HTTP/1.1 upstreams
    [['refused-stream'], [false, false, false, false, false]],
    [['503'], [false, false, false, false, false]],
  ])('compiles on: %j into flags', (on, flags) => {
    const r = route({ route: { retries: { on } } }).retries;
    expect([r?.onConnectFailure, r?.onReset, r?.on5xx, r?.onGatewayError, r?.onRetriable4xx]).toEqual(flags);
  });

  it('collects status codes (numbers or strings) once each, in order', () => {
    const r = route({ route: { retries: { attempts: 3, on: [503, '503', '429', 'reset', 500] } } }).retries;
    expect(r?.statuses).toEqual([503, 429, 500]);
    expect(r?.attempts).toBe(3);
    expect(r?.onReset).toBe(true);
    expect(r?.on5xx).toBe(false);
  });

  it('passes the other fields through and never lets backoff_max_ms fall below backoff_base_ms', () => {
    const r = route({
      route: { retries: { per_try_timeout_ms: 300, backoff_base_ms: 100, backoff_max_ms: 10, allow_non_idempotent: true, max_body_bytes: 0 } },
    }).retries;
    expect(r).toMatchObject({ perTryTimeoutMs: 300, backoffBaseMs: 100, backoffMaxMs: 100, allowNonIdempotent: true, maxBodyBytes: 0 });
    expect(route({ route: { retries: { backoff_base_ms: 10, backoff_max_ms: 1000 } } }).retries?.backoffMaxMs).toBe(1000);
  });

  it('refuses out-of-range values', () => {
    const on =
      'must be one of connect-failure, reset, 5xx, gateway-error, retriable-4xx, refused-stream, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable or an HTTP status code';
    expect(refusals({ route: { retries: { attempts: 11, on: ['600', 99], max_body_bytes: 16 * 1024 * 1024 + 1, backoff_max_ms: -1 } } })).toEqual([
      'listeners[0].routes[0].retries.attempts: must be <= 10',
      `listeners[0].routes[0].retries.on[0]: ${on} (got "600")`,
      'listeners[0].routes[0].retries.on[1]: must be >= 100',
      'listeners[0].routes[0].retries.backoff_max_ms: must be >= 0',
      'listeners[0].routes[0].retries.max_body_bytes: must be <= 16777216',
    ]);
  });
});

describe('route fault and max_stream_duration_ms', () => {
  it('compiles delay and abort with their defaults (percent 100, abort status 503 when no abort)', () => {
    expect(route({}).fault).toBeNull();
    expect(route({ route: { fault: { delay: { duration_ms: 250 } } } }).fault).toEqual({ delayPercent: 100, delayMs: 250, abortPercent: 0, abortStatus: 503 });
    expect(route({ route: { fault: { abort: { status: 429, percent: 12.5 } } } }).fault).toEqual({
      delayPercent: 0,
      delayMs: 0,
      abortPercent: 12.5,
      abortStatus: 429,
    });
    expect(route({ route: { fault: {} } }).fault).toEqual({ delayPercent: 0, delayMs: 0, abortPercent: 0, abortStatus: 503 });
  });

  it('refuses an abort without a status, a percent above 100 and a status below 200', () => {
    expect(refusals({ route: { fault: { abort: { percent: 5 }, delay: { duration_ms: 1, percent: 101 } } } })).toEqual([
      'listeners[0].routes[0].fault.delay.percent: must be <= 100',
      'listeners[0].routes[0].fault.abort.status: required',
    ]);
    expect(refusals({ route: { fault: { abort: { status: 199 } } } })).toEqual(['listeners[0].routes[0].fault.abort.status: must be >= 200']);
  });

  it('max_stream_duration_ms defaults to 0 (none)', () => {
    expect(route({}).maxStreamDurationMs).toBe(0);
    expect(route({ route: { max_stream_duration_ms: 30000 } }).maxStreamDurationMs).toBe(30000);
  });
});

describe('rate limits, divided among the workers that serve the listener', () => {
  it('splits a plaintext listener limit evenly: 10 rps, burst 10, 2 workers → 5 tokens/s, burst 5 each', () => {
    const l = listener({ workers: 2, listener: { rate_limit: { requests_per_second: 10, burst: 10 } } });
    expect(l.rateLimit).toEqual({ tokensPerSecond: 5, burst: 5 });
    const r = route({ workers: 2, route: { rate_limit: { requests_per_second: 10, burst: 10 } } });
    expect(r.rateLimit).toEqual({ tokensPerSecond: 5, burst: 5 });
  });

  it('defaults burst to ceil(requests_per_second), divides it rounding up, and keeps at least 1', () => {
    expect(listener({ workers: 4, listener: { rate_limit: { requests_per_second: 10 } } }).rateLimit).toEqual({ tokensPerSecond: 2.5, burst: 3 });
    expect(listener({ workers: 2, listener: { rate_limit: { requests_per_second: 0.5 } } }).rateLimit).toEqual({ tokensPerSecond: 0.25, burst: 1 });
    expect(route({ workers: 8, route: { rate_limit: { requests_per_second: 100, burst: 1 } } }).rateLimit).toEqual({ tokensPerSecond: 12.5, burst: 1 });
    // node.workers: auto → availableParallelism (4 in OPTS)
    expect(route({ route: { rate_limit: { requests_per_second: 8, burst: 20 } } }).rateLimit).toEqual({ tokensPerSecond: 2, burst: 5 });
    expect(listener({}).rateLimit).toBeNull();
  });

  it("divides the limits of a TLS listener like a plaintext one (every worker serves it), and its routes'", () => {
    const limit = { requests_per_second: 10, burst: 10 };
    const tls = listener({ workers: 2, top: CA, listener: { tls: { mode: 'tls' }, rate_limit: limit }, route: { rate_limit: limit } });
    expect(tls.engine).toBe('strict');
    expect(tls.rateLimit).toEqual({ tokensPerSecond: 5, burst: 5 });
    expect(tls.routes[0]?.rateLimit).toEqual({ tokensPerSecond: 5, burst: 5 });
    const plain = listener({ workers: 2, listener: { tls: { mode: 'disabled' }, rate_limit: limit }, route: { rate_limit: limit } });
    expect(plain.tls).toBeNull();
    expect(plain.rateLimit).toEqual({ tokensPerSecond: 5, burst: 5 });
    expect(plain.routes[0]?.rateLimit).toEqual({ tokensPerSecond: 5, burst: 5 });
  });

  it('refuses engine: uws on a TLS listener', () => {
    expect(refusals({ top: CA, listener: { tls: { mode: 'tls' }, engine: 'uws' } })).toEqual([
      'listeners[0].engine: uws cannot serve TLS listeners (this uWS build cannot require or read client certificates): use strict (the default) or node',
    ]);
  });

  it('refuses a non-positive rate and a burst below 1', () => {
    expect(refusals({ listener: { rate_limit: { requests_per_second: 0, burst: 0 } } })).toEqual([
      'listeners[0].rate_limit.requests_per_second: must be > 0',
      'listeners[0].rate_limit.burst: must be >= 1',
    ]);
    expect(refusals({ route: { rate_limit: { burst: 5 } } })).toEqual(['listeners[0].routes[0].rate_limit.requests_per_second: required']);
  });
});

describe('listener access_log', () => {
  it('defaults to JSON lines on stdout', () => {
    expect(listener({ listener: { access_log: {} } }).accessLog).toEqual({ path: 'stdout', format: 'json' });
    expect(listener({ listener: { access_log: { path: '/var/log/out.log', format: 'text' } } }).accessLog).toEqual({
      path: '/var/log/out.log',
      format: 'text',
    });
    expect(refusals({ listener: { access_log: { format: 'csv' } } })).toEqual(['listeners[0].access_log.format: must be one of "json", "text" (got "csv")']);
  });
});

describe('cluster circuit breaker, retry budget, health check, outlier detection', () => {
  it('divides circuit_breaker.max_requests and max_pending among workers, rounding up', () => {
    expect(cluster({ workers: 4, cluster: { circuit_breaker: { max_requests: 10, max_pending: 10 } } })).toMatchObject({
      maxRequests: 3,
      pool: { maxPending: 3 },
    });
    expect(cluster({ workers: 8, cluster: { circuit_breaker: { max_requests: 1, max_pending: 1 } } })).toMatchObject({
      maxRequests: 1,
      pool: { maxPending: 1 },
    });
    expect(cluster({ workers: 3 }).maxRequests).toBe(342); // default 1024
    expect(refusals({ cluster: { circuit_breaker: { max_requests: 0 } } })).toEqual(['clusters[0].circuit_breaker.max_requests: must be >= 1']);
  });

  it('always has a retry budget: percent as is, min_concurrent rounded up and min_retries_per_second divided per worker', () => {
    expect(cluster({ workers: 2 }).retryBudget).toEqual({ percent: 20, minConcurrent: 2, minPerSecond: 5 });
    expect(cluster({ workers: 2, cluster: { retry_budget: { percent: 50, min_concurrent: 5, min_retries_per_second: 3 } } }).retryBudget).toEqual({
      percent: 50,
      minConcurrent: 3,
      minPerSecond: 1.5,
    });
    expect(cluster({ workers: 4, cluster: { retry_budget: { percent: 0, min_concurrent: 0, min_retries_per_second: 0 } } }).retryBudget).toEqual({
      percent: 0,
      minConcurrent: 0,
      minPerSecond: 0,
    });
    expect(cluster({ workers: 1, cluster: { retry_budget: {} } }).retryBudget).toEqual({ percent: 20, minConcurrent: 3, minPerSecond: 10 });
  });

  it('health_check and outlier_detection are null when absent and defaulted when given', () => {
    const none = cluster({});
    expect(none.healthCheck).toBeNull();
    expect(none.outlier).toBeNull();
    const c = cluster({ cluster: { health_check: {}, outlier_detection: {} } });
    expect(c.healthCheck).toEqual({ path: '/healthz', grpc: null, tcp: false, intervalMs: 5000, timeoutMs: 1000, unhealthyThreshold: 3, healthyThreshold: 2 });
    expect(c.outlier).toEqual({ consecutive5xx: 5, consecutiveGatewayFailure: 5, intervalMs: 10000, baseEjectionMs: 30000, maxEjectionPercent: 10 });
    const given = cluster({
      cluster: {
        health_check: { path: '/ready', interval_ms: 1000, timeout_ms: 200, unhealthy_threshold: 1, healthy_threshold: 4 },
        outlier_detection: { consecutive_5xx: 2, consecutive_gateway_failure: 3, interval_ms: 500, base_ejection_ms: 1000, max_ejection_percent: 100 },
      },
    });
    expect(given.healthCheck).toEqual({ path: '/ready', grpc: null, tcp: false, intervalMs: 1000, timeoutMs: 200, unhealthyThreshold: 1, healthyThreshold: 4 });
    expect(given.outlier).toEqual({ consecutive5xx: 2, consecutiveGatewayFailure: 3, intervalMs: 500, baseEjectionMs: 1000, maxEjectionPercent: 100 });
  });

  it('refuses bad health check and outlier values', () => {
    expect(
      refusals({
        cluster: { health_check: { interval_ms: 0, healthy_threshold: 0 }, outlier_detection: { consecutive_gateway_failure: 0, max_ejection_percent: 150 } },
      }),
    ).toEqual([
      'clusters[0].health_check.interval_ms: must be >= 1',
      'clusters[0].health_check.healthy_threshold: must be >= 1',
      'clusters[0].outlier_detection.consecutive_gateway_failure: must be >= 1',
      'clusters[0].outlier_detection.max_ejection_percent: must be <= 100',
    ]);
  });
});

describe('cluster tls', () => {
  it('compiles identity or identities into the list of accepted peer IDs; disabled or absent is plaintext', () => {
    expect(cluster({}).tls).toBeNull();
    expect(cluster({ top: CA, cluster: { tls: { identity: 'spiffe://td/ns/a/sa/api' } } }).tls).toEqual({ identities: ['spiffe://td/ns/a/sa/api'] });
    expect(cluster({ top: CA, cluster: { tls: { mode: 'mtls', identities: ['spiffe://td/ns/a/sa/api', 'spiffe://td/ns/b/*'] } } }).tls).toEqual({
      identities: ['spiffe://td/ns/a/sa/api', 'spiffe://td/ns/b/*'],
    });
    expect(cluster({ cluster: { tls: { mode: 'disabled', identity: 'spiffe://td/ns/a/sa/api' } } }).tls).toBeNull();
  });

  it('mtls needs exactly one of identity and identities', () => {
    const id = 'spiffe://td/ns/a/sa/api';
    expect(refusals({ top: CA, cluster: { tls: {} } })).toEqual([
      'clusters[0].tls: mtls needs identity (or identities): the SPIFFE ID the upstream must present',
    ]);
    expect(refusals({ top: CA, cluster: { tls: { identity: id, identities: [id] } } })).toEqual(['clusters[0].tls: give identity or identities, not both']);
    expect(refusals({ top: CA, cluster: { tls: { identities: [] } } })).toEqual(['clusters[0].tls.identities: must have at least 1 item']);
    expect(refusals({ top: CA, cluster: { tls: { identities: ['api.local'] } } })).toEqual([
      'clusters[0].tls.identities[0]: must be a SPIFFE ID or identity pattern: must start with "spiffe://" (lower case) (got "api.local")',
    ]);
    expect(refusals({ top: CA, cluster: { tls: { identity: 'spiffe://td/*' } } })).toEqual([
      'clusters[0].tls.identity: must be a SPIFFE ID like "spiffe://cluster.local/ns/default/sa/web" (got "spiffe://td/*")',
    ]);
  });
});

describe('cluster tls identity patterns', () => {
  // Only what the upstream identity check can compile is accepted: before, `spiffe://\S+` let
  // patterns such as `spiffe://td/ns/a*` through, and every connection to the cluster then threw.
  it.each([
    'spiffe://td',
    'spiffe://td/*',
    'spiffe://td/ns/a/*',
    'spiffe://td/*/sa/x',
    'spiffe://td/ns/*/sa/*',
    'spiffe://cluster.local/ns/default/sa/api',
    'spiffe://td/a.b/c_d-e',
  ])('accepts %j', (id) => {
    expect(cluster({ top: CA, cluster: { tls: { identities: [id] } } }).tls).toEqual({ identities: [id] });
  });

  // The same grammar and messages as authorization `from` (config/identity_pattern.ts).
  it.each([
    ['spiffe://td/ns/a*', '"*" must be a whole path segment, not part of "a*"'],
    ['spiffe://td*/ns/a', 'the trust domain is matched exactly: no "*" in "td*"'],
    ['spiffe://td/ns/a/', 'path has an empty segment (or a trailing "/")'],
    ['spiffe://TD/ns/a', 'trust domain "TD" may only hold a-z, 0-9, ".", "-", "_"'],
    ['spiffe://td//a', 'path has an empty segment (or a trailing "/")'],
    ['spiffe://td/ns/../x', 'path has a "." or ".." segment'],
    ['spiffe://td/./x', 'path has a "." or ".." segment'],
    ['spiffe://td/ns/a b', 'path segment "a b" may only hold A-Z, a-z, 0-9, ".", "-", "_"'],
    ['SPIFFE://td/a', 'must start with "spiffe://" (lower case)'],
  ])('refuses %j', (id, why) => {
    expect(refusals({ top: CA, cluster: { tls: { identities: [id] } } })).toEqual([
      `clusters[0].tls.identities[0]: must be a SPIFFE ID or identity pattern: ${why} (got ${JSON.stringify(id)})`,
    ]);
    const from = { top: CA, listener: { tls: { mode: 'mtls' }, authorization: [{ from: ['spiffe://td/ns/ok/sa/x', id] }] } };
    expect(refusals(from)).toEqual([`listeners[0].authorization[0].from[1]: must be a SPIFFE ID or identity pattern: ${why} (got ${JSON.stringify(id)})`]);
  });

  it('refuses "." and ".." path segments in a single identity (and in node.identity) too', () => {
    expect(refusals({ top: CA, cluster: { tls: { identity: 'spiffe://td/ns/../sa/x' } } })).toEqual([
      'clusters[0].tls.identity: must be a SPIFFE ID like "spiffe://cluster.local/ns/default/sa/web" (got "spiffe://td/ns/../sa/x")',
    ]);
    expect(listed(compileConfig({ ...minimal(), node: { identity: 'spiffe://td/./web' } }, OPTS))).toEqual([
      'node.identity: must be a SPIFFE ID like "spiffe://cluster.local/ns/default/sa/web" (got "spiffe://td/./web")',
    ]);
    // Dots inside a segment are fine.
    expect(ok(compileConfig({ ...minimal(), node: { identity: 'spiffe://td/ns/a.b/sa/..x' } }, OPTS)).snapshot.node.identity).toBe('spiffe://td/ns/a.b/sa/..x');
  });
});

describe('listener tls and authorization', () => {
  it('compiles the TLS mode: mtls by default, tls, or disabled (plaintext, null)', () => {
    expect(listener({ top: CA, listener: { tls: {} } }).tls).toBe('mtls');
    expect(listener({ top: CA, listener: { tls: { mode: 'tls' } } }).tls).toBe('tls');
    expect(listener({ top: CA, listener: { tls: { mode: 'disabled' } } }).tls).toBeNull();
  });

  it('compiles authorization rules: methods upper-cased, an omitted field null (allows any), an empty list null', () => {
    const l = listener({
      top: CA,
      listener: {
        tls: { mode: 'mtls' },
        authorization: [
          { from: ['spiffe://td/ns/a/sa/web', 'spiffe://td/ns/ops/*'], paths: ['/v1/*', '/healthz'], methods: ['get', 'Post'] },
          { methods: ['delete'] },
          { from: ['spiffe://td/ns/admin/sa/root'] },
        ],
      },
    });
    expect(l.authorization).toEqual([
      { from: ['spiffe://td/ns/a/sa/web', 'spiffe://td/ns/ops/*'], paths: ['/v1/*', '/healthz'], methods: ['GET', 'POST'] },
      { from: null, paths: null, methods: ['DELETE'] },
      { from: ['spiffe://td/ns/admin/sa/root'], paths: null, methods: null },
    ]);
    // `tls: {}` is mtls (the default mode), enough for authorization.
    expect(listener({ top: CA, listener: { tls: {}, authorization: [] } }).authorization).toBeNull();
  });

  it('refuses malformed rules', () => {
    expect(refusals({ top: CA, listener: { tls: {}, authorization: [{ from: ['web'], paths: ['v1/*'], methods: [] }, { users: ['x'] }] } })).toEqual([
      'listeners[0].authorization[0].from[0]: must be a SPIFFE ID or identity pattern: must start with "spiffe://" (lower case) (got "web")',
      'listeners[0].authorization[0].paths[0]: must start with "/" (a trailing "*" is allowed) (got "v1/*")',
      'listeners[0].authorization[0].methods: must have at least 1 item',
      'listeners[0].authorization[1].users: unknown key "users"',
    ]);
  });
});

describe('top-level tls', () => {
  it('is null when absent', () => {
    expect(snap({}).tls).toBeNull();
  });

  it('compiles files mode', () => {
    const s = snap({ top: { tls: { trust_bundle: './ca.pem', cert: './me.pem', key: './me.key' } } });
    expect(s.tls).toEqual({ mode: 'files', trustBundle: './ca.pem', cert: './me.pem', key: './me.key', federation: [], allowInsecureKeyPermissions: false });
  });

  it('refuses the embedded CA without node.identity', () => {
    expect(formatProblems(problems(parseConfigText('tls: {ca: {dir: ./ca}}\nlisteners: []\n', OPTS)))).toBe(
      "tls.ca: needs node.identity: the SPIFFE ID to issue this sidecar's certificate for (line 1)",
    );
  });

  const TRUST = { federation: [], allowInsecureKeyPermissions: false };

  it('compiles the embedded CA with its defaults (24 h leaves, EC P-256) or given values', () => {
    expect(snap({ top: CA }).tls).toEqual({ mode: 'ca', dir: './ca', ttlHours: 24, keyType: 'ec-p256', ...TRUST });
    expect(snap({ top: { tls: { ca: { dir: '/var/lib/outrigger/ca', ttl_hours: 1.5, key_type: 'rsa-2048' } } } }).tls).toEqual({
      mode: 'ca',
      dir: '/var/lib/outrigger/ca',
      ttlHours: 1.5,
      keyType: 'rsa-2048',
      ...TRUST,
    });
  });

  it('compiles a signer source (node.identity required), federation and the key-permission opt-out', () => {
    const signer = { address: '127.0.0.1:15200', ca_bundle: './ca.pem', token_file: './web.token' };
    const node = { node: { identity: 'spiffe://td/ns/a/sa/me' } };
    expect(ok(compileConfig({ ...minimal(), ...node, tls: { signer } }, OPTS)).snapshot.tls).toEqual({
      mode: 'signer',
      address: '127.0.0.1:15200',
      caBundle: './ca.pem',
      tokenFile: './web.token',
      signerIdentity: null,
      ttlHours: 24,
      keyType: 'ec-p256',
      ...TRUST,
    });
    const full = {
      signer: { ...signer, identity: 'spiffe://td/ops/signer', ttl_hours: 0.5, key_type: 'rsa-2048' },
      federation: [{ trust_domain: 'partner.example', bundle: './partner.pem' }],
      allow_insecure_key_permissions: true,
    };
    expect(ok(compileConfig({ ...minimal(), ...node, tls: full }, OPTS)).snapshot.tls).toMatchObject({
      signerIdentity: 'spiffe://td/ops/signer',
      ttlHours: 0.5,
      keyType: 'rsa-2048',
      federation: [{ trustDomain: 'partner.example', bundle: './partner.pem' }],
      allowInsecureKeyPermissions: true,
    });
    expect(listed(compileConfig({ ...minimal(), tls: { signer } }, OPTS))).toEqual(['tls.signer: needs node.identity: the SPIFFE ID to ask the signer for']);
  });

  it.each([
    [
      { signer: { address: 'signer.local:15200', ca_bundle: './ca.pem', token_file: './t' } },
      'tls.signer.address: host "signer.local" in "signer.local:15200" must be an IP address or localhost (DNS names are not resolved here)',
    ],
    [{ signer: { address: '127.0.0.1:1', ca_bundle: './ca.pem' } }, 'tls.signer.token_file: required'],
    [
      { signer: { address: '127.0.0.1:1', ca_bundle: './ca.pem', token_file: './t' }, ca: { dir: './ca' } },
      'tls: give one of cert/key, ca or signer, not ca and signer',
    ],
    [
      { ca: { dir: './ca' }, federation: [{ trust_domain: 'Partner', bundle: './p.pem' }] },
      'tls.federation[0].trust_domain: must be a trust domain name: 1-255 of a-z, 0-9, ".", "-", "_" (got "Partner")',
    ],
    [
      {
        ca: { dir: './ca' },
        federation: [
          { trust_domain: 'p', bundle: './p.pem' },
          { trust_domain: 'p', bundle: './q.pem' },
        ],
      },
      'tls.federation[1].trust_domain: trust domain "p" is already federated (federation[0]); put all its roots in one bundle',
    ],
    [
      { ca: { dir: './ca' }, federation: [{ trust_domain: 'td', bundle: './p.pem' }] },
      'tls.federation[0].trust_domain: "td" is this sidecar\'s own trust domain (node.identity): its roots come from the trust bundle, CA or signer, not from federation',
    ],
  ])('refuses %j', (tls, expected) => {
    expect(listed(compileConfig({ ...minimal(), node: { identity: 'spiffe://td/ns/a/sa/me' }, tls }, OPTS))).toContain(expected);
  });

  it.each([
    [{}, ['tls: give trust_bundle, cert and key, or ca: {dir}, or signer: {address, ca_bundle, token_file}']],
    [{ cert: './me.pem', key: './me.key' }, ['tls: give trust_bundle, cert and key, or ca: {dir}, or signer: {address, ca_bundle, token_file}']],
    [{ trust_bundle: './ca.pem', cert: './me.pem' }, ['tls: give cert and key together']],
    [
      { trust_bundle: './ca.pem', key: './me.key' },
      ['tls: give cert and key together', 'tls: give trust_bundle, cert and key, or ca: {dir}, or signer: {address, ca_bundle, token_file}'],
    ],
    [{ trust_bundle: './ca.pem', cert: './me.pem', key: './me.key', ca: { dir: './ca' } }, ['tls: give one of cert/key, ca or signer, not cert/key and ca']],
    [{ ca: {} }, ['tls.ca.dir: required']],
    [
      { ca: { dir: './ca', ttl_hours: 0, key_type: 'ed25519' } },
      ['tls.ca.ttl_hours: must be > 0', 'tls.ca.key_type: must be one of "ec-p256", "rsa-2048" (got "ed25519")'],
    ],
    [{ ca: { dir: './ca', ttl_hours: 8761 } }, ['tls.ca.ttl_hours: must be <= 8760']],
  ])('refuses %j', (tls, expected) => {
    expect(refusals({ top: { tls } })).toEqual(expected);
  });
});

describe('TLS cross checks', () => {
  it('a listener or cluster tls needs the top-level tls; reported at its path with its line', () => {
    const text = `listeners:
  - name: in
    address: 127.0.0.1:0
    tls: {mode: tls}
    routes: [{cluster: api}]
  - name: plain
    address: 127.0.0.1:0
    tls: {mode: disabled}
    routes: [{cluster: api}]
clusters:
  - name: api
    endpoints: [{address: 127.0.0.1:1}]
    tls: {identity: spiffe://td/ns/a/sa/api}
  - name: off
    endpoints: [{address: 127.0.0.1:2}]
    tls: {mode: disabled}
`;
    const need = "needs the top-level tls section (this sidecar's certificate and trust bundle)";
    expect(formatProblems(problems(parseConfigText(text, OPTS))).split('\n')).toEqual([
      `listeners[0].tls: ${need} (line 4)`,
      `clusters[0].tls: ${need} (line 13)`,
    ]);
    // The same file with a top-level tls section is valid.
    expect(ok(parseConfigText(`node: {identity: spiffe://td/ns/a/sa/me}\ntls: {ca: {dir: ./ca}}\n${text}`, OPTS)).warnings).toEqual([]);
  });

  it('authorization needs tls: {mode: mtls} on its listener', () => {
    const text = `node: {identity: spiffe://td/ns/a/sa/me}
tls: {ca: {dir: ./ca}}
listeners:
  - name: a
    address: 127.0.0.1:0
    authorization: [{methods: [GET]}]
    routes: [{cluster: api}]
  - name: b
    address: 127.0.0.1:0
    tls: {mode: tls}
    authorization: [{methods: [GET]}]
    routes: [{cluster: api}]
  - name: c
    address: 127.0.0.1:0
    tls: {mode: disabled}
    authorization: []
    routes: [{cluster: api}]
  - name: d
    address: 127.0.0.1:0
    tls: {mode: mtls}
    authorization: [{methods: [GET]}]
    routes: [{cluster: api}]
clusters: [{name: api, endpoints: [{address: 127.0.0.1:1}]}]
`;
    const msg = 'authorization decides by peer identity: it needs tls: {mode: mtls} on this listener';
    expect(problems(parseConfigText(text, OPTS))).toEqual([
      { path: 'listeners[0].authorization', message: msg, line: 6 },
      { path: 'listeners[1].authorization', message: msg, line: 11 },
      { path: 'listeners[2].authorization', message: msg, line: 16 },
    ]);
  });

  it('reports both cross-check problems of one listener in one pass, next to schema problems', () => {
    const cfg = build({ listener: { tls: { mode: 'tls' }, authorization: [{ methods: ['GET'] }] }, cluster: { lb: 'fastest' } });
    expect(listed(compileConfig(cfg, OPTS))).toEqual([
      'clusters[0].lb: must be one of "least_request", "round_robin", "random" (got "fastest")',
      "listeners[0].tls: needs the top-level tls section (this sidecar's certificate and trust bundle)",
      'listeners[0].authorization: authorization decides by peer identity: it needs tls: {mode: mtls} on this listener',
    ]);
  });
});

describe('node.random_seed', () => {
  it('is null when absent and passed through when given (0 to 2^32 - 1)', () => {
    expect(snap({}).node.randomSeed).toBeNull();
    const seeded = (random_seed: number): Snapshot => ok(compileConfig({ ...minimal(), node: { random_seed } }, OPTS)).snapshot;
    expect(seeded(42).node.randomSeed).toBe(42);
    expect(seeded(0).node.randomSeed).toBe(0);
    expect(seeded(4294967295).node.randomSeed).toBe(4294967295);
  });

  it('refuses a negative, too large or fractional seed', () => {
    const bad = (random_seed: unknown): string[] => listed(compileConfig({ ...minimal(), node: { random_seed } }, OPTS));
    expect(bad(-1)).toEqual(['node.random_seed: must be >= 0']);
    expect(bad(4294967296)).toEqual(['node.random_seed: must be <= 4294967295']);
    expect(bad(1.5)).toEqual(['node.random_seed: expected an integer, got 1.5']);
    expect(bad('7')).toEqual(['node.random_seed: expected a number, got "7"']);
  });
});
