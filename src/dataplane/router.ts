// Request routing for one listener: compiled once per config version from its RouteSpecs, then
// asked per request for the first route (config order) that accepts it. Matchers are pre-built
// (regexes compiled once, empty stages skipped) and routes are bucketed by host so that a request
// only checks the routes that can match its Host. Touches no I/O; per worker.

import { compileLinearRegex } from '../config/regex.js';
import type { HeaderMatchSpec, RouteSpec } from '../config/types.js';
import type { Rng } from '../lb/types.js';

/** Header value by lower-cased name (several lines of one header joined by the caller), or undefined when absent. */
export type HeaderLookup = (lowerCaseName: string) => string | undefined;

export interface CompiledRoute {
  readonly spec: RouteSpec;
  /** Position in the listener's route list. */
  readonly index: number;
  /** The cluster of a plain route, or a weighted choice among a split's clusters using `rng`. */
  pickCluster(rng: Rng): string;
}

export interface Router {
  /**
   * First route (config order) whose match accepts the request, or null.
   * @param method request method as sent (HTTP methods are case-sensitive; from uWS use
   *   `getCaseSensitiveMethod()`, not `getMethod()`, which lower-cases)
   * @param host Host header value as received (may carry `:port`, any case, `[v6]:port`)
   * @param path request target path without the query string, not normalised
   */
  match(method: string, host: string, path: string, header: HeaderLookup): CompiledRoute | null;
  /** Every compiled route, in config order (route `index` is its position here). */
  readonly routes: readonly CompiledRoute[];
}

// ---------------------------------------------------------------------------------------------
// Per-route matcher

const PATH_ANY = 0;
const PATH_EXACT = 1;
const PATH_PREFIX = 2;
const PATH_REGEX = 3;

const HEADER_EXACT = 0;
const HEADER_REGEX = 1;
const HEADER_PRESENT = 2;
const HEADER_ABSENT = 3;

class HeaderMatcher {
  readonly name: string;
  readonly kind: number;
  readonly exact: string;
  readonly regex: RegExp | null;

  constructor(spec: HeaderMatchSpec, routeName: string) {
    this.name = spec.name.toLowerCase();
    this.exact = '';
    this.regex = null;
    if (spec.exact !== null) {
      this.kind = HEADER_EXACT;
      this.exact = spec.exact;
    } else if (spec.regex !== null) {
      this.kind = HEADER_REGEX;
      this.regex = compileRegex(spec.regex, `route ${routeName}: header ${spec.name} regex`);
    } else {
      this.kind = spec.present === false ? HEADER_ABSENT : HEADER_PRESENT;
    }
  }

  matches(header: HeaderLookup): boolean {
    const value = header(this.name);
    switch (this.kind) {
      case HEADER_EXACT:
        return value === this.exact;
      case HEADER_REGEX:
        return value !== undefined && (this.regex as RegExp).test(value);
      case HEADER_PRESENT:
        return value !== undefined;
      default:
        return value === undefined;
    }
  }
}

class CompiledRouteImpl implements CompiledRoute {
  readonly spec: RouteSpec;
  readonly index: number;
  /** Normalised host pattern: exact host, `.suffix` for a wildcard, or null for any host. */
  readonly hostExact: string | null;
  readonly hostSuffix: string | null;
  readonly pathKind: number;
  readonly pathValue: string;
  readonly pathRegex: RegExp | null;
  readonly methods: readonly string[] | null;
  readonly headers: readonly HeaderMatcher[] | null;
  /** Plain route: its cluster. Split: null. */
  private readonly cluster: string | null;
  /** Split: cluster names and cumulative weights, zero-weight entries dropped. */
  private readonly splitClusters: readonly string[];
  private readonly splitCumulative: Float64Array;
  private readonly splitTotal: number;

  constructor(spec: RouteSpec, index: number) {
    this.spec = spec;
    this.index = index;
    const m = spec.match;

    const host = m.host === null ? null : normalisePatternHost(m.host);
    const wildcard = host !== null && host.startsWith('*.');
    this.hostExact = host !== null && !wildcard ? host : null;
    this.hostSuffix = host !== null && wildcard ? host.slice(1) : null;

    this.pathValue = '';
    this.pathRegex = null;
    if (m.path !== null) {
      this.pathKind = PATH_EXACT;
      this.pathValue = m.path;
    } else if (m.pathPrefix !== null && m.pathPrefix !== '') {
      this.pathKind = PATH_PREFIX;
      this.pathValue = m.pathPrefix;
    } else if (m.pathRegex !== null) {
      this.pathKind = PATH_REGEX;
      this.pathRegex = compileRegex(m.pathRegex, `route ${spec.name}: path_regex`);
    } else {
      this.pathKind = PATH_ANY;
    }
    this.methods = m.methods === null || m.methods.length === 0 ? null : m.methods.slice();
    this.headers =
      m.headers.length === 0 ? null : m.headers.map((h) => new HeaderMatcher(h, spec.name));

    const action = spec.action;
    if (action.kind === 'cluster') {
      this.cluster = action.cluster;
      this.splitClusters = [];
      this.splitCumulative = new Float64Array(0);
      this.splitTotal = 0;
    } else {
      const names: string[] = [];
      const weights: number[] = [];
      for (const s of action.split) {
        if (Number.isFinite(s.weight) && s.weight > 0) {
          names.push(s.cluster);
          weights.push(s.weight);
        }
      }
      if (names.length === 0) {
        // Every weight is zero: config validation refuses this; fall back to the first cluster.
        const first = action.split[0];
        if (first === undefined) throw new Error(`route ${spec.name}: split has no clusters`);
        names.push(first.cluster);
        weights.push(1);
      }
      this.cluster = names.length === 1 ? (names[0] as string) : null;
      this.splitClusters = names;
      this.splitCumulative = new Float64Array(weights.length);
      let acc = 0;
      for (let i = 0; i < weights.length; i++) {
        acc += weights[i] as number;
        this.splitCumulative[i] = acc;
      }
      this.splitTotal = acc;
    }
  }

  /** Everything but the host (the host index has already vouched for it). */
  matchesRest(method: string, path: string, header: HeaderLookup): boolean {
    switch (this.pathKind) {
      case PATH_EXACT:
        if (path !== this.pathValue) return false;
        break;
      case PATH_PREFIX:
        if (!path.startsWith(this.pathValue)) return false;
        break;
      case PATH_REGEX:
        if (!(this.pathRegex as RegExp).test(path)) return false;
        break;
      default:
        break;
    }
    const methods = this.methods;
    if (methods !== null && !includes(methods, method)) return false;
    const headers = this.headers;
    if (headers !== null) {
      for (let i = 0; i < headers.length; i++) {
        if (!(headers[i] as HeaderMatcher).matches(header)) return false;
      }
    }
    return true;
  }

  /** Whether a normalised request host satisfies this route's host pattern. */
  matchesHost(host: string): boolean {
    if (this.hostExact !== null) return host === this.hostExact;
    if (this.hostSuffix !== null) return host.length > this.hostSuffix.length && host.endsWith(this.hostSuffix);
    return true;
  }

  pickCluster(rng: Rng): string {
    if (this.cluster !== null) return this.cluster;
    const r = rng.next() * this.splitTotal;
    const cumulative = this.splitCumulative;
    const last = cumulative.length - 1;
    for (let i = 0; i < last; i++) {
      if (r < (cumulative[i] as number)) return this.splitClusters[i] as string;
    }
    return this.splitClusters[last] as string;
  }
}

function includes(list: readonly string[], value: string): boolean {
  for (let i = 0; i < list.length; i++) if (list[i] === value) return true;
  return false;
}

function compileRegex(source: string, what: string): RegExp {
  try {
    return compileLinearRegex(source);
  } catch (err) {
    throw new Error(`${what} ${JSON.stringify(source)} does not compile: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Host normalisation

/** Config host pattern → the form requests are normalised to (lower case, IPv6 without brackets, `*` = any). */
function normalisePatternHost(host: string): string | null {
  const h = host.toLowerCase();
  if (h === '' || h === '*') return null;
  if (h.charCodeAt(0) === 0x5b /* [ */ && h.charCodeAt(h.length - 1) === 0x5d /* ] */) return h.slice(1, -1);
  return h;
}

/**
 * Host header value → lower-case host without port; `[::1]:80` → `::1`. A bare IPv6 literal
 * (several colons, no brackets) is kept whole. Allocates only when there is a port or upper case.
 */
export function normaliseRequestHost(value: string): string {
  let host = value;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    const close = host.indexOf(']');
    if (close > 0) host = host.slice(1, close);
  } else {
    const colon = host.indexOf(':');
    if (colon >= 0 && host.indexOf(':', colon + 1) < 0) host = host.slice(0, colon);
  }
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return host.toLowerCase();
  }
  return host;
}

// ---------------------------------------------------------------------------------------------
// Index

/** Below this many exact-path routes in one bucket, a linear scan beats a path map. */
const PATH_INDEX_MIN = 8;

/**
 * The routes that can match one set of hosts, in config order. Optionally indexed by exact path:
 * `byPath.get(path)` = routes with that exact path merged (in config order) with every route whose
 * path is not exact; `rest` = the routes whose path is not exact (for any other path).
 */
class Bucket {
  readonly all: readonly CompiledRouteImpl[];
  readonly byPath: ReadonlyMap<string, readonly CompiledRouteImpl[]> | null;
  readonly rest: readonly CompiledRouteImpl[];

  constructor(routes: readonly CompiledRouteImpl[]) {
    this.all = routes;
    let exactPaths = 0;
    for (const r of routes) if (r.pathKind === PATH_EXACT) exactPaths++;
    if (exactPaths < PATH_INDEX_MIN) {
      this.byPath = null;
      this.rest = routes;
      return;
    }
    const rest = routes.filter((r) => r.pathKind !== PATH_EXACT);
    const byPath = new Map<string, CompiledRouteImpl[]>();
    for (const r of routes) {
      if (r.pathKind === PATH_EXACT && !byPath.has(r.pathValue)) {
        byPath.set(r.pathValue, routes.filter((x) => x.pathKind !== PATH_EXACT || x.pathValue === r.pathValue));
      }
    }
    this.byPath = byPath;
    this.rest = rest;
  }

  candidates(path: string): readonly CompiledRouteImpl[] {
    const byPath = this.byPath;
    if (byPath === null) return this.all;
    return byPath.get(path) ?? this.rest;
  }
}

class IndexedRouter implements Router {
  readonly routes: readonly CompiledRoute[];
  /** Exact host → routes with that host, wildcards matching it and any-host routes. */
  private readonly byHost: ReadonlyMap<string, Bucket>;
  /** Wildcard suffix (`.example.com`) → wildcard routes whose suffix ends it, and any-host routes. */
  private readonly bySuffix: ReadonlyMap<string, Bucket>;
  /** Any-host routes only (a host no exact or wildcard route names). */
  private readonly anyHost: Bucket;
  private readonly hasSuffixes: boolean;

  constructor(compiled: readonly CompiledRouteImpl[]) {
    this.routes = compiled;
    const anyHost = compiled.filter((r) => r.hostExact === null && r.hostSuffix === null);
    const wildcards = compiled.filter((r) => r.hostSuffix !== null);

    const byHost = new Map<string, Bucket>();
    for (const r of compiled) {
      const host = r.hostExact;
      if (host === null || byHost.has(host)) continue;
      byHost.set(host, new Bucket(compiled.filter((x) => x.matchesHost(host))));
    }

    // A host whose longest matching wildcard suffix is S matches exactly the wildcards whose
    // suffix ends S (they are all suffixes of the host, hence of S), plus the any-host routes.
    const bySuffix = new Map<string, Bucket>();
    for (const r of wildcards) {
      const suffix = r.hostSuffix as string;
      if (bySuffix.has(suffix)) continue;
      bySuffix.set(
        suffix,
        new Bucket(compiled.filter((x) => x.hostExact === null && (x.hostSuffix === null || suffix.endsWith(x.hostSuffix)))),
      );
    }

    this.byHost = byHost;
    this.bySuffix = bySuffix;
    this.anyHost = new Bucket(anyHost);
    this.hasSuffixes = bySuffix.size > 0;
  }

  match(method: string, host: string, path: string, header: HeaderLookup): CompiledRoute | null {
    const candidates = this.bucketFor(normaliseRequestHost(host)).candidates(path);
    for (let i = 0; i < candidates.length; i++) {
      const route = candidates[i] as CompiledRouteImpl;
      if (route.matchesRest(method, path, header)) return route;
    }
    return null;
  }

  private bucketFor(host: string): Bucket {
    const exact = this.byHost.get(host);
    if (exact !== undefined) return exact;
    if (this.hasSuffixes) {
      // Longest suffix first: the leftmost dot that is not the first character.
      for (let dot = host.indexOf('.', 1); dot > 0; dot = host.indexOf('.', dot + 1)) {
        const bucket = this.bySuffix.get(host.slice(dot));
        if (bucket !== undefined) return bucket;
      }
    }
    return this.anyHost;
  }
}

/** Compiles a listener's routes. Throws (naming the route) when a regex does not compile. */
export function buildRouter(routes: readonly RouteSpec[]): Router {
  const compiled = routes.map((spec, index) => {
    const route = new CompiledRouteImpl(spec, index);
    Object.freeze(route);
    return route;
  });
  const router = new IndexedRouter(compiled);
  Object.freeze(router);
  return router;
}
