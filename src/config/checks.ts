// Cross-field checks that a per-field schema cannot make: unknown clusters, duplicate names and
// addresses, exactly-one-of rules, test hooks. They read the raw input defensively (it may be
// partly invalid) so a config's every problem is reported in one pass, next to schema problems.
import { formatHostPort, parseHostPort, type HostPort } from './address.js';
import type { ConfigPath, RawProblem } from './paths.js';
import { didYouMean } from './suggest.js';

export interface CheckOptions {
  readonly enableTestHooks: boolean;
}

type Obj = Readonly<Record<string, unknown>>;

/** Every cross-field problem of a raw config object. */
export function crossCheck(raw: unknown, opts: CheckOptions): RawProblem[] {
  const out: RawProblem[] = [];
  if (!isObj(raw)) return out;
  const clusters = list(raw['clusters']);
  const clusterNames = new Set<string>();
  checkUniqueNames(clusters, 'clusters', 'cluster', out, clusterNames);
  clusters.forEach((c, i) => {
    if (isObj(c)) checkCluster(c, ['clusters', i], out);
  });
  const listeners = list(raw['listeners']);
  // The embedded CA issues our leaf for node.identity.
  const tlsSection = raw['tls'];
  if (isObj(tlsSection) && tlsSection['ca'] !== undefined && !(isObj(raw['node']) && typeof raw['node']['identity'] === 'string')) {
    out.push({ path: ['tls', 'ca'], message: "needs node.identity: the SPIFFE ID to issue this sidecar's certificate for" });
  }
  if (isObj(tlsSection) && tlsSection['signer'] !== undefined && !(isObj(raw['node']) && typeof raw['node']['identity'] === 'string')) {
    out.push({ path: ['tls', 'signer'], message: 'needs node.identity: the SPIFFE ID to ask the signer for' });
  }
  // Federation is for other trust domains: our own one's roots come from our own source.
  if (isObj(tlsSection) && isObj(raw['node']) && typeof raw['node']['identity'] === 'string') {
    const ownTd = /^spiffe:\/\/([^/]*)/.exec(raw['node']['identity'])?.[1];
    list(tlsSection['federation']).forEach((f, i) => {
      if (isObj(f) && f['trust_domain'] === ownTd) {
        out.push({
          path: ['tls', 'federation', i, 'trust_domain'],
          message: `"${ownTd}" is this sidecar's own trust domain (node.identity): its roots come from the trust bundle, CA or signer, not from federation`,
        });
      }
    });
  }
  // A registration goes to the etcd cluster the top-level discovery names.
  if (isObj(raw['node']) && raw['node']['service'] !== undefined && raw['discovery'] === undefined) {
    out.push({ path: ['node', 'service'], message: 'needs the top-level discovery: {etcd: {endpoints}} (the etcd cluster to register in)' });
  }
  // TLS on a listener or cluster needs this sidecar's certificate (top-level `tls`).
  if (raw['tls'] === undefined) {
    const needs = (o: unknown): boolean => isObj(o) && isObj(o['tls']) && o['tls']['mode'] !== 'disabled';
    listeners.forEach((l, i) => {
      if (needs(l)) out.push({ path: ['listeners', i, 'tls'], message: "needs the top-level tls section (this sidecar's certificate and trust bundle)" });
    });
    clusters.forEach((c, i) => {
      if (needs(c)) out.push({ path: ['clusters', i, 'tls'], message: "needs the top-level tls section (this sidecar's certificate and trust bundle)" });
    });
  }
  listeners.forEach((l, i) => {
    if (isObj(l) && l['engine'] === 'uws' && isObj(l['tls']) && l['tls']['mode'] !== 'disabled') {
      out.push({
        path: ['listeners', i, 'engine'],
        message: 'uws cannot serve TLS listeners (this uWS build cannot require or read client certificates): use strict (the default) or node',
      });
    }
    if (isObj(l) && l['engine'] === 'uws' && (l['protocol'] === 'http2' || l['protocol'] === 'auto')) {
      out.push({
        path: ['listeners', i, 'protocol'],
        message: `engine uws serves HTTP/1.1 only: protocol ${String(l['protocol'])} needs engine strict (the default) or node`,
      });
    }
    // `mode` defaults to mtls, so `tls: {}` counts as mtls.
    if (isObj(l) && l['authorization'] !== undefined && !(isObj(l['tls']) && (l['tls']['mode'] ?? 'mtls') === 'mtls')) {
      out.push({ path: ['listeners', i, 'authorization'], message: 'authorization decides by peer identity: it needs tls: {mode: mtls} on this listener' });
    }
  });
  checkUniqueNames(listeners, 'listeners', 'listener', out, new Set());
  checkBindAddresses(raw, listeners, out);
  checkServiceAddresses(clusters, out);
  listeners.forEach((l, i) => {
    if (isObj(l)) checkOriginalDestination(l, ['listeners', i], out);
  });
  listeners.forEach((l, i) => {
    if (!isObj(l)) return;
    if (l['protocol'] === 'tcp') checkTcpListener(l, ['listeners', i], clusterNames, out);
    else checkHttpListener(l, ['listeners', i], out);
    if (l['tcp_fallback'] !== undefined) checkTcpFallback(l, ['listeners', i], clusterNames, out);
    const routes = list(l['routes']);
    checkUniqueNames(routes, ['listeners', i, 'routes'], 'route', out, new Set());
    routes.forEach((r, j) => {
      if (isObj(r)) checkRoute(r, ['listeners', i, 'routes', j], clusterNames, opts, out);
    });
  });
  return out;
}

/** A tcp listener forwards bytes to one cluster: nothing HTTP applies to it. */
function checkTcpListener(l: Obj, at: ConfigPath, clusters: ReadonlySet<string>, out: RawProblem[]): void {
  if (l['routes'] !== undefined) out.push({ path: [...at, 'routes'], message: 'a tcp listener has no routes: every connection goes to its cluster' });
  if (l['engine'] !== undefined) {
    out.push({ path: [...at, 'engine'], message: 'a tcp listener has no HTTP engine (its connections are forwarded as bytes by node:net/tls): remove engine' });
  }
  const cluster = l['cluster'];
  if (cluster === undefined) out.push({ path: [...at, 'cluster'], message: 'required on a tcp listener: the cluster every connection goes to' });
  else if (typeof cluster === 'string' && !clusters.has(cluster)) {
    out.push({ path: [...at, 'cluster'], message: `unknown cluster "${cluster}"${didYouMean(cluster, clusters)}` });
  }
  // What only HTTP reads would be accepted and do nothing on a tcp listener: refused, so a
  // config never says something that does not happen.
  for (const field of ['rate_limit', 'x_forwarded_for', 'max_request_headers_bytes', 'headers_with_underscores', 'http2']) {
    if (l[field] !== undefined) out.push({ path: [...at, field], message: `a tcp listener forwards bytes, not HTTP requests: ${field} does not apply` });
  }
  const timeouts = l['timeouts'];
  if (isObj(timeouts)) {
    for (const field of ['headers_ms', 'body_idle_ms', 'keepalive_idle_ms']) {
      if (timeouts[field] !== undefined) {
        out.push({
          path: [...at, 'timeouts', field],
          message: `a tcp listener has no HTTP requests: ${field} does not apply (tcp.idle_timeout_ms closes an idle connection; timeouts.handshake_ms applies to tls)`,
        });
      }
    }
  }
  // Only the peer's identity is known on a TCP connection: rules on HTTP fields could never match.
  list(l['authorization']).forEach((r, k) => {
    if (!isObj(r)) return;
    for (const field of ['paths', 'methods', 'grpc']) {
      if (r[field] !== undefined)
        out.push({ path: [...at, 'authorization', k, field], message: `a tcp listener authorizes by peer identity only: ${field} does not apply (use from)` });
    }
  });
}

/**
 * `cluster` and `tcp` belong to tcp listeners; an HTTP listener needs routes — except an outbound
 * one that routes by original destination: a service address's requests fall back to its cluster,
 * any other address is passed through or refused, so routes there are optional refinements.
 */
function checkHttpListener(l: Obj, at: ConfigPath, out: RawProblem[]): void {
  const byDestination = l['original_destination'] === true && l['tls'] === undefined;
  if (l['routes'] === undefined && !byDestination)
    out.push({ path: [...at, 'routes'], message: 'required (at least one route), unless protocol is tcp or the listener routes by original_destination' });
  for (const field of ['cluster', 'tcp']) {
    if (l[field] !== undefined) out.push({ path: [...at, field], message: `only for protocol: tcp listeners (an HTTP listener names clusters in its routes)` });
  }
}

/**
 * Detection with a TCP fallback needs a listener that reads the first bytes itself: `protocol:
 * auto` on the strict or node engine. A tls listener accepts only TLS (a plaintext byte fails the
 * handshake, unmeshed clients are not let past mTLS), so it has no first bytes to wait for.
 */
function checkTcpFallback(l: Obj, at: ConfigPath, clusters: ReadonlySet<string>, out: RawProblem[]): void {
  const given = l['protocol'];
  const protocol = typeof given === 'string' ? given : l['engine'] === 'uws' ? 'http1' : 'auto';
  if (protocol !== 'auto') {
    out.push({ path: [...at, 'tcp_fallback'], message: `protocol detection needs protocol: auto (this listener is ${protocol})` });
  }
  const fallback = l['tcp_fallback'];
  if (!isObj(fallback)) return;
  const cluster = fallback['cluster'];
  if (typeof cluster === 'string' && !clusters.has(cluster)) {
    out.push({ path: [...at, 'tcp_fallback', 'cluster'], message: `unknown cluster "${cluster}"${didYouMean(cluster, clusters)}` });
  }
  const tls = l['tls'];
  for (const field of ['detect_timeout_ms', 'opaque_ports']) {
    if (fallback[field] !== undefined && isObj(tls) && tls['mode'] !== 'disabled') {
      out.push({
        path: [...at, 'tcp_fallback', field],
        message: 'a tls listener accepts only TLS (ALPN outrigger-tcp/<port> selects the fallback): there are no plaintext first bytes to wait for',
      });
    }
  }
}

function checkRoute(r: Obj, at: ConfigPath, clusters: ReadonlySet<string>, opts: CheckOptions, out: RawProblem[]): void {
  const hasCluster = r['cluster'] !== undefined;
  const hasSplit = r['split'] !== undefined;
  if (hasCluster === hasSplit) {
    out.push({ path: at, message: hasCluster ? 'give cluster or split, not both' : 'needs a cluster or a split' });
  }
  const cluster = r['cluster'];
  if (typeof cluster === 'string' && !clusters.has(cluster)) {
    out.push({ path: [...at, 'cluster'], message: `unknown cluster "${cluster}"${didYouMean(cluster, clusters)}` });
  }
  const split = list(r['split']);
  const seen = new Set<string>();
  let total = 0;
  let allWeights = split.length > 0;
  split.forEach((s, k) => {
    if (!isObj(s)) return;
    const c = s['cluster'];
    if (typeof c === 'string') {
      if (!clusters.has(c)) {
        out.push({ path: [...at, 'split', k, 'cluster'], message: `unknown cluster "${c}"${didYouMean(c, clusters)}` });
      } else if (seen.has(c)) {
        out.push({ path: [...at, 'split', k, 'cluster'], message: `cluster "${c}" appears twice in this split` });
      }
      seen.add(c);
    }
    const w = s['weight'];
    if (typeof w === 'number' && Number.isInteger(w) && w >= 0) total += w;
    else allWeights = false;
  });
  if (allWeights && total === 0) out.push({ path: [...at, 'split'], message: 'weights must add up to more than 0' });

  const match = r['match'];
  if (isObj(match)) {
    const given = ['path', 'path_prefix', 'path_regex'].filter((k) => match[k] !== undefined);
    if (given.length > 1) {
      out.push({ path: [...at, 'match'], message: `give at most one of path, path_prefix, path_regex (got ${given.join(', ')})` });
    }
    if (match['grpc'] !== undefined && given.length > 0) {
      out.push({
        path: [...at, 'match', 'grpc'],
        message: `grpc matches the path /<service>/<method> itself: give it without ${given.join(', ')}`,
      });
    }
    const headers = match['headers'];
    if (isObj(headers)) {
      const lower = new Map<string, string>();
      for (const name of Object.keys(headers)) {
        const prev = lower.get(name.toLowerCase());
        if (prev !== undefined) {
          out.push({ path: [...at, 'match', 'headers', name], message: `header "${name}" is already matched as "${prev}" (names are case-insensitive)` });
        } else lower.set(name.toLowerCase(), name);
      }
    }
  }
  for (const hook of ['test_crash', 'test_stall', 'test_throw']) {
    if (r[hook] === true && !opts.enableTestHooks) {
      out.push({ path: [...at, hook], message: 'test hooks are disabled (set OUTRIGGER_ENABLE_TEST_HOOKS=1)' });
    }
  }
}

function checkCluster(c: Obj, at: ConfigPath, out: RawProblem[]): void {
  const endpoints = c['endpoints'];
  const hasEndpoints = Array.isArray(endpoints) && endpoints.length > 0;
  const hasDiscovery = c['discovery'] !== undefined;
  if (hasEndpoints && hasDiscovery) out.push({ path: at, message: 'give endpoints or discovery, not both' });
  else if (!hasEndpoints && !hasDiscovery) {
    out.push({ path: Array.isArray(endpoints) ? [...at, 'endpoints'] : at, message: 'needs at least one endpoint (or discovery)' });
  }
  const seen = new Map<string, number>();
  list(endpoints).forEach((e, k) => {
    if (!isObj(e) || typeof e['address'] !== 'string') return;
    const hp = parseHostPort(e['address'], false);
    if (!hp.ok) return;
    const key = formatHostPort(hp.value);
    const prev = seen.get(key);
    if (prev !== undefined) {
      out.push({ path: [...at, 'endpoints', k, 'address'], message: `duplicate endpoint ${key} (also endpoints[${prev}])` });
    } else seen.set(key, k);
  });
  if (isObj(c['discovery'])) checkDiscovery(c['discovery'], [...at, 'discovery'], out);
  checkGrpcHealthCheck(c, at, out);
  const shorthand = c['connect_timeout_ms'];
  const pool = c['pool'];
  const inPool = isObj(pool) ? pool['connect_timeout_ms'] : undefined;
  if (typeof shorthand === 'number' && typeof inPool === 'number' && shorthand !== inPool) {
    out.push({ path: [...at, 'connect_timeout_ms'], message: `conflicts with pool.connect_timeout_ms (${shorthand} vs ${inPool}); give one` });
  }
  if (isObj(pool) && pool['pipeline_plaintext'] === true) checkPipelinePlaintext(c, pool, [...at, 'pool', 'pipeline_plaintext'], out);
}

/**
 * Pipelining to a plaintext app is HTTP/1.1 without tls (over mTLS to a sidecar it is negotiated
 * already) and needs more than one request in flight.
 */
function checkPipelinePlaintext(c: Obj, pool: Obj, at: ConfigPath, out: RawProblem[]): void {
  if (c['protocol'] === 'http2') out.push({ path: at, message: 'pipelines HTTP/1.1: not for protocol: http2 (which multiplexes already)' });
  else if (c['tls'] !== undefined) {
    out.push({ path: at, message: 'for clusters without tls: over mTLS an outrigger sidecar selects pipelining itself (pool.pipeline_depth)' });
  }
  if (pool['pipeline_depth'] === 1) out.push({ path: at, message: 'needs pool.pipeline_depth above 1 (1 = one request per connection)' });
}

/**
 * `original_destination` reads SO_ORIGINAL_DST from the accepted socket's fd before any byte is
 * read, and hands the connection to HTTP/1 or TCP: uWS never shows its sockets' fds, and an
 * http2-only listener would take a passthrough connection's bytes for a bad preface.
 * `outbound_policy` decides for addresses no cluster owns: outbound listeners only.
 */
/** Exactly one source; a DNS A/AAAA lookup needs the endpoints' port, an SRV record brings its own. */
function checkDiscovery(d: Obj, at: ConfigPath, out: RawProblem[]): void {
  const dns = d['dns'];
  if ((dns === undefined) === (d['etcd'] === undefined)) {
    out.push({ path: at, message: 'give exactly one of dns or etcd' });
    return;
  }
  if (!isObj(dns)) return;
  const type = typeof dns['type'] === 'string' ? dns['type'] : 'A';
  if (type === 'SRV' && dns['port'] !== undefined) out.push({ path: [...at, 'dns', 'port'], message: 'SRV records carry their own port: leave port out' });
  if (type !== 'SRV' && dns['port'] === undefined) out.push({ path: [...at, 'dns'], message: `type ${type} needs port (the endpoints' port)` });
}

function checkOriginalDestination(l: Obj, at: ConfigPath, out: RawProblem[]): void {
  const on = l['original_destination'] === true;
  if (on && l['engine'] === 'uws') {
    out.push({
      path: [...at, 'original_destination'],
      message: 'engine uws cannot read the original destination (uWS hides the socket fd that SO_ORIGINAL_DST is read from): use strict (the default) or node',
    });
  }
  if (on && l['protocol'] === 'http2') {
    out.push({
      path: [...at, 'original_destination'],
      message: 'needs protocol tcp, auto or http1 (an intercepted connection may be any TCP, not only HTTP/2)',
    });
  }
  if (l['outbound_policy'] === undefined) return;
  if (!on)
    out.push({ path: [...at, 'outbound_policy'], message: 'only with original_destination: true (it decides for original destinations no cluster owns)' });
  else if (isObj(l['tls']) && l['tls']['mode'] !== 'disabled') {
    out.push({
      path: [...at, 'outbound_policy'],
      message:
        'a tls listener with original_destination is inbound (each connection goes to the local app at its original port): outbound_policy does not apply',
    });
  }
}

/** A service address belongs to one cluster: two owners would make routing by destination ambiguous. */
function checkServiceAddresses(clusters: readonly unknown[], out: RawProblem[]): void {
  const owner = new Map<string, { cluster: string; at: string }>();
  clusters.forEach((c, i) => {
    if (!isObj(c)) return;
    const name = typeof c['name'] === 'string' ? c['name'] : `clusters[${i}]`;
    list(c['addresses']).forEach((a, k) => {
      if (typeof a !== 'string') return;
      const hp = parseHostPort(a, false);
      if (!hp.ok) return;
      const key = formatHostPort(hp.value);
      const prev = owner.get(key);
      if (prev === undefined) owner.set(key, { cluster: name, at: `clusters[${i}].addresses[${k}]` });
      else {
        const whose = prev.cluster === name ? `already listed at ${prev.at}` : `owned by cluster "${prev.cluster}" (${prev.at}) and by cluster "${name}"`;
        out.push({ path: ['clusters', i, 'addresses', k], message: `service address ${key} is ${whose}: an address belongs to one cluster` });
      }
    });
  });
}

/** A gRPC health check is an HTTP/2 call with its own path. */
function checkGrpcHealthCheck(c: Obj, at: ConfigPath, out: RawProblem[]): void {
  const hc = c['health_check'];
  if (isObj(hc) && hc['tcp'] !== undefined) {
    for (const field of ['path', 'grpc']) {
      if (hc[field] !== undefined) out.push({ path: [...at, 'health_check', field], message: 'give tcp (a connect) or an HTTP check, not both' });
    }
  }
  if (!isObj(hc) || hc['grpc'] === undefined) return;
  if (c['protocol'] !== 'http2') {
    out.push({ path: [...at, 'health_check', 'grpc'], message: 'the gRPC health check speaks HTTP/2: it needs protocol: http2 on this cluster' });
  }
  if (hc['path'] !== undefined) {
    out.push({ path: [...at, 'health_check', 'path'], message: 'give path (an HTTP GET check) or grpc (grpc.health.v1.Health/Check), not both' });
  }
}

function checkUniqueNames(items: readonly unknown[], at: string | ConfigPath, what: string, out: RawProblem[], names: Set<string>): void {
  const base: ConfigPath = typeof at === 'string' ? [at] : at;
  const first = new Map<string, number>();
  items.forEach((item, i) => {
    if (!isObj(item) || typeof item['name'] !== 'string') return;
    const name = item['name'];
    names.add(name);
    const prev = first.get(name);
    if (prev !== undefined) {
      out.push({ path: [...base, i, 'name'], message: `duplicate ${what} name "${name}" (also ${lastSeg(base)}[${prev}])` });
    } else first.set(name, i);
  });
}

interface Bound {
  readonly who: string;
  readonly hp: HostPort;
}

/** Two listeners (or a listener and the admin server) on one port, counting wildcard overlap. */
function checkBindAddresses(raw: Obj, listeners: readonly unknown[], out: RawProblem[]): void {
  const bound: Bound[] = [];
  const admin = raw['admin'];
  const adminAddress = isObj(admin) && admin['address'] !== undefined ? admin['address'] : '127.0.0.1:15000';
  if (typeof adminAddress === 'string') {
    const hp = parseHostPort(adminAddress, true);
    if (hp.ok && hp.value.port !== 0) bound.push({ who: 'the admin server', hp: hp.value });
  }
  listeners.forEach((l, i) => {
    if (!isObj(l) || typeof l['address'] !== 'string') return;
    const hp = parseHostPort(l['address'], true);
    if (!hp.ok || hp.value.port === 0) return;
    const clash = bound.find((b) => overlaps(b.hp, hp.value));
    const who = typeof l['name'] === 'string' ? `listener "${l['name']}"` : `listeners[${i}]`;
    if (clash !== undefined) {
      out.push({ path: ['listeners', i, 'address'], message: `${formatHostPort(hp.value)} overlaps ${clash.who} (${formatHostPort(clash.hp)})` });
    }
    bound.push({ who, hp: hp.value });
  });
}

function overlaps(a: HostPort, b: HostPort): boolean {
  if (a.port !== b.port) return false;
  if (a.host === b.host || a.host === '::' || b.host === '::') return true;
  const v4 = (h: string): boolean => !h.includes(':');
  return (a.host === '0.0.0.0' && v4(b.host)) || (b.host === '0.0.0.0' && v4(a.host));
}

function lastSeg(path: ConfigPath): string {
  const s = path[path.length - 1];
  return s === undefined ? '' : String(s);
}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function list(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : [];
}
