// Bad configs: every problem is listed (not just the first) with its path, a clear message and
// the line of the offending node, for YAML and JSON input alike; syntax errors carry the line.
import { describe, expect, it } from 'vitest';
import { compileConfig, formatProblems, parseConfigText } from '../../src/config/load.js';
import { listed, minimal, OPTS, problems } from './helpers.js';

/** What the compiler refuses in `cfg`, as `path: message` lines. */
function refusals(cfg: unknown): string[] {
  return listed(compileConfig(cfg, OPTS));
}

/** minimal() with its one listener, "out" on `address`, carrying `routes`. */
function withListener(routes: unknown[], address = '127.0.0.1:0'): Record<string, unknown> {
  return { ...minimal(), listeners: [{ name: 'out', address, routes }] };
}

const MANY_MISTAKES = `node:
  workers: 0
  identty: spiffe://cluster.local/ns/a/sa/b
listeners:
  - name: outbound
    address: 127.0.0.1:99999
    routes:
      - match: {host: "api:8080", path: v1, path_prefix: /v1/}
        cluster: ap
      - match:
          path_regex: "(unclosed"
          methods: [GET, "BAD METHOD"]
          headers: {x-canary: 1, X-Env: {regex: "("}, x-env: prod}
        split: [{cluster: api, weight: 0}, {cluster: nope, weight: 0}]
        test_crash: true
  - name: outbound
    address: localhost:15000
    routes: []
clustr: []
clusters:
  - name: api
    lb: fastest
    endpoints: [{address: api.local:80}, {address: 127.0.0.1:80, weight: 0}, {address: "127.0.0.1:80"}]
    connect_timeout_ms: 500
    pool: {connect_timeout_ms: 1000, max_conns: 3}
    circuit_breaker: {max_pending: -1}
  - name: api
    endpoints: []
`;

describe('problems', () => {
  it('lists every mistake of a bad config with its path and line', () => {
    const r = parseConfigText(MANY_MISTAKES, OPTS);
    expect(formatProblems(problems(r)).split('\n')).toEqual([
      'node.workers: must be >= 1 (line 2)',
      'node.identty: unknown key "identty" (did you mean "identity"?) (line 3)',
      'listeners[0].address: port "99999" in "127.0.0.1:99999" must be an integer 0-65535 (line 6)',
      'listeners[0].routes[0].match.host: "api:8080" must not contain a port (routes match the host without its port) (line 8)',
      'listeners[0].routes[0].match.path: must start with "/" (got "v1") (line 8)',
      'listeners[0].routes[0].match: give at most one of path, path_prefix, path_regex (got path, path_prefix) (line 8)',
      'listeners[0].routes[0].cluster: unknown cluster "ap" (did you mean "api"?) (line 9)',
      'listeners[0].routes[1].match.path_regex: does not compile: Invalid regular expression: /(unclosed/: Unterminated group (line 11)',
      'listeners[0].routes[1].match.methods[1]: must be an HTTP method token (e.g. GET) (got "BAD METHOD") (line 12)',
      'listeners[0].routes[1].match.headers.x-canary: must be a string, {exact: string}, {regex: string} or {present: boolean}; got 1 (quote it: "1") (line 13)',
      'listeners[0].routes[1].match.headers.X-Env.regex: does not compile: Invalid regular expression: /(/: Unterminated group (line 13)',
      'listeners[0].routes[1].match.headers.x-env: header "x-env" is already matched as "X-Env" (names are case-insensitive) (line 13)',
      'listeners[0].routes[1].split[1].cluster: unknown cluster "nope" (line 14)',
      'listeners[0].routes[1].split: weights must add up to more than 0 (line 14)',
      'listeners[0].routes[1].test_crash: test hooks are disabled (set OUTRIGGER_ENABLE_TEST_HOOKS=1) (line 15)',
      'listeners[1].name: duplicate listener name "outbound" (also listeners[0]) (line 16)',
      'listeners[1].address: 127.0.0.1:15000 overlaps the admin server (127.0.0.1:15000) (line 17)',
      'listeners[1].routes: must have at least 1 item (line 18)',
      'clustr: unknown key "clustr" (did you mean "clusters"?) (line 19)',
      'clusters[0].lb: must be one of "least_request", "round_robin", "random" (got "fastest") (line 22)',
      'clusters[0].endpoints[0].address: host "api.local" in "api.local:80" must be an IP address or localhost (DNS names are not resolved here) (line 23)',
      'clusters[0].endpoints[1].weight: must be >= 1 (line 23)',
      'clusters[0].endpoints[2].address: duplicate endpoint 127.0.0.1:80 (also endpoints[1]) (line 23)',
      'clusters[0].connect_timeout_ms: conflicts with pool.connect_timeout_ms (500 vs 1000); give one (line 24)',
      'clusters[0].pool.max_conns: unknown key "max_conns" (line 25)',
      'clusters[0].circuit_breaker.max_pending: must be >= 0 (line 26)',
      'clusters[1].name: duplicate cluster name "api" (also clusters[0]) (line 27)',
      'clusters[1].endpoints: needs at least one endpoint (or discovery) (line 28)',
    ]);
  });

  it('reports an unknown key with its own line', () => {
    const text = 'listeners: []\nclustr:\n  - name: api\n';
    expect(problems(parseConfigText(text, OPTS))).toEqual([{ path: 'clustr', message: 'unknown key "clustr" (did you mean "clusters"?)', line: 2 }]);
  });

  it('reports a missing required field at its parent', () => {
    const text = 'listeners:\n  - address: 127.0.0.1:1\n    routes: [{cluster: api}]\nclusters: [{name: api, endpoints: [{address: 127.0.0.1:2}]}]\n';
    expect(problems(parseConfigText(text, OPTS))).toEqual([{ path: 'listeners[0].name', message: 'required', line: 2 }]);
  });

  it.each([
    ['api:80', 'host "api" in "api:80" must be an IP address or localhost (DNS names are not resolved here)'],
    ['127.0.0.1', '"127.0.0.1" must be "host:port", e.g. "127.0.0.1:15001"'],
    ['::1:80', '"::1:80": an IPv6 address needs brackets, e.g. "[::1]:15001"'],
    ['[::g]:80', '"::g" in "[::g]:80" is not an IPv6 address'],
    ['[::1]80', '"[::1]80" must be "[ipv6]:port", e.g. "[::1]:15001"'],
    ['127.0.0.1:65536', 'port "65536" in "127.0.0.1:65536" must be an integer 0-65535'],
    ['127.0.0.1:-1', 'port "-1" in "127.0.0.1:-1" must be an integer 0-65535'],
    ['127.0.0.1:', 'port "" in "127.0.0.1:" must be an integer 0-65535'],
    ['256.0.0.1:80', 'host "256.0.0.1" in "256.0.0.1:80" must be an IP address or localhost (DNS names are not resolved here)'],
  ])('refuses the listener address %j', (address, message) => {
    const cfg = withListener([{ cluster: 'api' }], address);
    expect(refusals(cfg)).toEqual([`listeners[0].address: ${message}`]);
  });

  it('refuses port 0 for an endpoint but allows it for a listener', () => {
    const cfg = withListener([{ cluster: 'api' }], '0.0.0.0:0');
    cfg['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:0' }] }];
    expect(refusals(cfg)).toEqual(['clusters[0].endpoints[0].address: port 0 in "127.0.0.1:0" is not allowed here (1-65535)']);
  });

  it('refuses duplicate names and overlapping listener addresses, but not two port-0 listeners', () => {
    const route = [{ cluster: 'api' }];
    const cfg = {
      listeners: [
        { name: 'a', address: '0.0.0.0:15001', routes: route },
        { name: 'b', address: '127.0.0.1:15001', routes: route },
        { name: 'a', address: '127.0.0.1:0', routes: route },
        {
          name: 'c',
          address: '127.0.0.1:0',
          routes: [
            { name: 'r', cluster: 'api' },
            { name: 'r', cluster: 'api' },
          ],
        },
        { name: 'd', address: '[::]:15002', routes: route },
        { name: 'e', address: '127.0.0.1:15002', routes: route },
      ],
      clusters: [
        { name: 'api', endpoints: [{ address: '127.0.0.1:1' }] },
        { name: 'api', endpoints: [{ address: '127.0.0.1:1' }] },
      ],
    };
    expect(refusals(cfg)).toEqual([
      'clusters[1].name: duplicate cluster name "api" (also clusters[0])',
      'listeners[2].name: duplicate listener name "a" (also listeners[0])',
      'listeners[1].address: 127.0.0.1:15001 overlaps listener "a" (0.0.0.0:15001)',
      'listeners[5].address: 127.0.0.1:15002 overlaps listener "d" ([::]:15002)',
      'listeners[3].routes[1].name: duplicate route name "r" (also routes[0])',
    ]);
  });

  it('refuses an unknown cluster in a split and a cluster named twice in one split', () => {
    const split = [
      { cluster: 'api', weight: 1 },
      { cluster: 'apii', weight: 1 },
      { cluster: 'api', weight: 2 },
    ];
    const cfg = withListener([{ split }]);
    expect(refusals(cfg)).toEqual([
      'listeners[0].routes[0].split[1].cluster: unknown cluster "apii" (did you mean "api"?)',
      'listeners[0].routes[0].split[2].cluster: cluster "api" appears twice in this split',
    ]);
  });

  it('refuses a route with both or neither of cluster and split', () => {
    const cfg = withListener([{ cluster: 'api', split: [{ cluster: 'api', weight: 1 }] }, { match: {} }]);
    expect(refusals(cfg)).toEqual(['listeners[0].routes[0]: give cluster or split, not both', 'listeners[0].routes[1]: needs a cluster or a split']);
  });

  it('refuses a path regex or a header regex that does not compile', () => {
    const text = `listeners:
  - name: out
    address: 127.0.0.1:0
    routes:
      - match:
          path_regex: "/a[b"
          headers:
            x-id: {regex: "a)|(b"}
        cluster: api
clusters: [{name: api, endpoints: [{address: 127.0.0.1:1}]}]
`;
    const ps = problems(parseConfigText(text, OPTS));
    expect(ps.map((p) => [p.path, p.line])).toEqual([
      ['listeners[0].routes[0].match.path_regex', 6],
      ['listeners[0].routes[0].match.headers.x-id.regex', 8],
    ]);
    expect(ps[0]?.message).toMatch(/^does not compile: Invalid regular expression/);
    expect(ps[1]?.message).toMatch(/^does not compile: Invalid regular expression/);
  });

  it('refuses test_crash unless test hooks are enabled', () => {
    const cfg = withListener([{ cluster: 'api', test_crash: true }]);
    expect(refusals(cfg)).toEqual(['listeners[0].routes[0].test_crash: test hooks are disabled (set OUTRIGGER_ENABLE_TEST_HOOKS=1)']);
  });

  it.each([
    [{ host: '*.' }, 'listeners[0].routes[0].match.host: "*." is not a host name (letters, digits, "-", "." and an optional leading "*.")'],
    [{ host: 'a b' }, 'listeners[0].routes[0].match.host: "a b" is not a host name (letters, digits, "-", "." and an optional leading "*.")'],
    [{ path_prefix: '/a?b=1' }, 'listeners[0].routes[0].match.path_prefix: must not contain "?" or "#" (paths match without the query)'],
    [{ methods: [] }, 'listeners[0].routes[0].match.methods: must have at least 1 item'],
    [{ headers: { 'bad name': 'x' } }, 'listeners[0].routes[0].match.headers["bad name"]: invalid key: must be a header name (an HTTP token)'],
    [
      { headers: { 'x-a': { exact: 'a', regex: 'b' } } },
      'listeners[0].routes[0].match.headers.x-a: must be a string, {exact: string}, {regex: string} or {present: boolean}',
    ],
    [{ headers: { 'x-a': { exact: 7 } } }, 'listeners[0].routes[0].match.headers.x-a.exact: expected a string, got 7 (quote it: "7")'],
    [{ headers: { 'x-a': 'a\r\nb' } }, 'listeners[0].routes[0].match.headers.x-a: must not contain CR, LF or NUL (got "a\\r\\nb")'],
  ])('refuses the match %j', (match, message) => {
    const cfg = withListener([{ match, cluster: 'api' }]);
    expect(refusals(cfg)).toEqual([message]);
  });

  it('refuses wrong types and out-of-range numbers with plain messages', () => {
    const cfg = {
      node: { workers: 'many', drain_timeout_ms: 1.5 },
      admin: { history_limit: 0 },
      listeners: [{ name: 'out', address: '127.0.0.1:0', max_request_headers_bytes: 100, routes: [{ cluster: 'api', timeout_ms: -1 }] }],
      clusters: [{ name: 7, endpoints: [{ address: '127.0.0.1:1', weight: 1001 }], pool: { connections_per_worker: 0 } }],
    };
    expect(refusals(cfg)).toEqual([
      'node.workers: must be "auto" or an integer 1-1024; got "many"',
      'node.drain_timeout_ms: expected an integer, got 1.5',
      'admin.history_limit: must be >= 1',
      'listeners[0].max_request_headers_bytes: must be >= 1024',
      'listeners[0].routes[0].timeout_ms: must be >= 0',
      'clusters[0].name: expected a string, got 7 (quote it: "7")',
      'clusters[0].endpoints[0].weight: must be <= 1000',
      'clusters[0].pool.connections_per_worker: must be >= 1',
      'listeners[0].routes[0].cluster: unknown cluster "api"',
    ]);
  });

  it('refuses a top level that is not a mapping', () => {
    expect(refusals([1, 2])).toEqual([': expected a mapping, got a list']);
    expect(formatProblems(problems(parseConfigText('- a\n- b\n', OPTS)))).toBe('expected a mapping, got a list (line 1)');
  });

  it('validates the shape of the mesh sections', () => {
    const cfg = minimal();
    cfg['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:1' }], health_check: { path: 'healthz', intervl_ms: 5 }, tls: { mode: 'plain' } }];
    cfg['tls'] = { cert: './c.pem' };
    expect(refusals(cfg)).toEqual([
      'tls: give cert and key together',
      'tls: give trust_bundle, cert and key, or ca: {dir}, or signer: {address, ca_bundle, token_file}',
      'clusters[0].tls.mode: must be one of "mtls", "disabled" (got "plain")',
      'clusters[0].health_check.path: must start with "/" (got "healthz")',
      'clusters[0].health_check.intervl_ms: unknown key "intervl_ms" (did you mean "interval_ms"?)',
    ]);
  });

  it('pool.pipeline_plaintext: refused with tls, with protocol http2 and with pipeline_depth 1; accepted on a plaintext http1 cluster', () => {
    const withPool = (extra: Record<string, unknown>, pool: Record<string, unknown> = {}): Record<string, unknown> => ({
      ...minimal(),
      clusters: [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }], pool: { pipeline_plaintext: true, ...pool }, ...extra }],
    });
    expect(refusals(withPool({ protocol: 'http2' }, { pipeline_depth: 1 }))).toEqual([
      'clusters[0].pool.pipeline_plaintext: pipelines HTTP/1.1: not for protocol: http2 (which multiplexes already)',
      'clusters[0].pool.pipeline_plaintext: needs pool.pipeline_depth above 1 (1 = one request per connection)',
    ]);
    expect(refusals(withPool({ tls: { mode: 'mtls' } }))).toContain(
      'clusters[0].pool.pipeline_plaintext: for clusters without tls: over mTLS an outrigger sidecar selects pipelining itself (pool.pipeline_depth)',
    );
    const r = compileConfig(withPool({}), OPTS);
    expect(r.ok && r.snapshot.clusters[0]?.pool).toMatchObject({ pipelinePlaintext: 'on', pipelineDepth: 16 });
    // The default pipelines to loopback endpoints (the app beside the sidecar; pool.ts), and is no problem where it cannot apply.
    const pool = (extra: Record<string, unknown>, p: Record<string, unknown> = {}): unknown => {
      const c = compileConfig({ ...minimal(), clusters: [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }], pool: p, ...extra }] }, OPTS);
      return c.ok ? c.snapshot.clusters[0]?.pool.pipelinePlaintext : c.problems;
    };
    expect(pool({})).toBe('loopback');
    expect(pool({}, { pipeline_plaintext: false })).toBe('off');
    expect(pool({ protocol: 'http2' })).toBe('loopback');
    expect(pool({}, { pipeline_depth: 1 })).toBe('loopback');
  });

  it('refuses endpoints together with discovery, and accepts discovery alone without a warning', () => {
    const both = minimal();
    both['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:1' }], discovery: { dns: { name: 'api.local', port: 80 } } }];
    expect(refusals(both)).toEqual(['clusters[0]: give endpoints or discovery, not both']);
    const alone = minimal();
    alone['clusters'] = [{ name: 'api', discovery: { dns: { name: 'api.local', port: 80 } } }];
    const r = compileConfig(alone, OPTS);
    expect(r.ok && r.snapshot.clusters[0]?.endpoints).toEqual([]);
    expect(r.ok && r.warnings).toEqual([]);
  });
});

describe('JSON input and syntax errors', () => {
  it('gives line numbers for JSON input', () => {
    const json = `{
  "listeners": [
    {
      "name": "out",
      "address": "[::1]:15001",
      "routes": [
        { "match": { "path_prefix": "/" }, "cluster": "ap" }
      ]
    }
  ],
  "clusters": [
    { "name": "api", "endpoints": [ { "address": "[::1]:8080", "weight": "2" } ] }
  ]
}`;
    expect(problems(parseConfigText(json, OPTS, 'sidecar.json'))).toEqual([
      { path: 'listeners[0].routes[0].cluster', message: 'unknown cluster "ap" (did you mean "api"?)', line: 7 },
      { path: 'clusters[0].endpoints[0].weight', message: 'expected a number, got "2"', line: 12 },
    ]);
  });

  it('reports a YAML syntax error with its line', () => {
    const text = 'listeners:\n  - name: a\n    address: 127.0.0.1: 1\n';
    expect(problems(parseConfigText(text, OPTS))).toEqual([
      { path: '', message: 'syntax error: Nested mappings are not allowed in compact mappings', line: 3 },
    ]);
  });

  it('reports a JSON syntax error with its line', () => {
    const text = '{\n  "listeners": [\n    {"name": "a"]\n}\n';
    const ps = problems(parseConfigText(text, OPTS));
    expect(ps[0]?.message).toMatch(/^syntax error: /);
    expect(ps[0]?.line).toBe(3);
  });

  it('refuses duplicate keys', () => {
    const ps = problems(parseConfigText('node: {}\nnode: {}\n', OPTS));
    expect(ps).toEqual([{ path: '', message: 'syntax error: Map keys must be unique', line: 2 }]);
  });

  it('formats problems one per line, without a path when there is none', () => {
    expect(
      formatProblems([
        { path: 'listeners[0].routes[2].cluster', message: 'unknown cluster "ap"', line: 14 },
        { path: '', message: 'cannot read config file "x": ENOENT', line: null },
        { path: 'a', message: 'b', line: null },
      ]),
    ).toBe('listeners[0].routes[2].cluster: unknown cluster "ap" (line 14)\ncannot read config file "x": ENOENT\na: b');
  });
});

describe('YAML features', () => {
  it('supports anchors and merge keys', () => {
    const text = `clusters:
  - &base {name: a, lb: random, endpoints: [{address: 127.0.0.1:1}]}
  - <<: *base
    name: b
`;
    const r = parseConfigText(text, OPTS);
    expect(r.ok && r.snapshot.clusters.map((c) => [c.name, c.lb])).toEqual([
      ['a', 'random'],
      ['b', 'random'],
    ]);
  });

  it('refuses non-plain values and cyclic aliases', () => {
    expect(listed(parseConfigText('node: {identity: !!binary aGVsbG8=}\n', OPTS))).toEqual([
      'node.identity: unsupported value (a Buffer); use plain strings, numbers, lists and mappings',
    ]);
    expect(listed(parseConfigText('listeners: &l [*l]\n', OPTS))).toEqual(['listeners[0]: refers to itself (a cyclic alias)']);
  });
});
