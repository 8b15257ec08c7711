// Request routing for one listener: compiled once per config version from its RouteSpecs, then
// asked per request for the first route (config order) that accepts it. Matchers are pre-built
// (regexes compiled once, empty stages skipped); routes are grouped by host pattern and each group
// indexed by path (route_tree.ts), so a request checks only the routes its Host and path can
// match, whatever the route count. A `match.grpc` route is an exact path or a prefix like any
// other, plus a gRPC content-type condition among its header matchers. Touches no I/O; per worker.

import { compileLinearRegex } from '../config/regex.js';
import type { HeaderMatchSpec, RouteActionSpec, RouteMatchSpec, RouteSpec } from '../config/types.js';
import { isGrpcCallContentType } from '../grpc/wire.js';
import type { Rng } from '../lb/types.js';
import { regexLiteralPrefix } from './regex_prefix.js';
import { Candidates, type RouteCandidate, type RouteGroup, RouteGroupBuilder } from './route_tree.js';

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
/** content-type `application/grpc` or `application/grpc+<format>` (a `match.grpc` route). */
const HEADER_GRPC = 4;

class HeaderMatcher {
  private constructor(
    readonly name: string,
    readonly kind: number,
    readonly exact: string,
    readonly regex: RegExp | null,
  ) {}

  static of(spec: HeaderMatchSpec, routeName: string): HeaderMatcher {
    const name = spec.name.toLowerCase();
    if (spec.exact !== null) return new HeaderMatcher(name, HEADER_EXACT, spec.exact, null);
    if (spec.regex !== null) return new HeaderMatcher(name, HEADER_REGEX, '', compileRegex(spec.regex, `route ${routeName}: header ${spec.name} regex`));
    return new HeaderMatcher(name, spec.present === false ? HEADER_ABSENT : HEADER_PRESENT, '', null);
  }

  /** The condition `match.grpc` adds to its path: the request is a gRPC call. */
  static grpcContentType(): HeaderMatcher {
    return new HeaderMatcher('content-type', HEADER_GRPC, '', null);
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
      case HEADER_GRPC:
        return value !== undefined && isGrpcCallContentType(value);
      default:
        return value === undefined;
    }
  }
}

class CompiledRouteImpl implements CompiledRoute, RouteCandidate {
  readonly spec: RouteSpec;
  readonly index: number;
  /** Normalised host pattern: exact host, `.suffix` for a wildcard, or null for any host. */
  readonly hostExact: string | null;
  readonly hostSuffix: string | null;
  readonly pathKind: number;
  /** The exact path, the prefix, or the literal text every path the regex matches starts with. */
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
      this.pathValue = regexLiteralPrefix(m.pathRegex);
    } else {
      this.pathKind = PATH_ANY;
    }
    this.methods = m.methods === null || m.methods.length === 0 ? null : m.methods.slice();
    const headers = m.headers.map((h) => HeaderMatcher.of(h, spec.name));
    if (m.grpc) headers.push(HeaderMatcher.grpcContentType());
    this.headers = headers.length === 0 ? null : headers;

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
    return this.matchesConditions(method, header);
  }

  /** Method and header matchers only. */
  matchesConditions(method: string, header: HeaderLookup): boolean {
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

/**
 * Routes grouped by host pattern (one group per exact host, per wildcard suffix, and one for any
 * host), each group indexed by path (route_tree.ts). Every route is in exactly one group. A
 * request gathers, from the groups its host can match (its exact host, each of its wildcard
 * suffixes, any host), the route lists its path can match, and checks them merged in config
 * order: the first route that accepts the request wins, as in a linear scan.
 */
class IndexedRouter implements Router {
  readonly routes: readonly CompiledRoute[];
  private readonly byHost: ReadonlyMap<string, RouteGroup<CompiledRouteImpl>>;
  /** Wildcard suffix (`.example.com`, from `*.example.com`) → its routes. */
  private readonly bySuffix: ReadonlyMap<string, RouteGroup<CompiledRouteImpl>>;
  private readonly anyHost: RouteGroup<CompiledRouteImpl> | null;
  private readonly hasSuffixes: boolean;
  /** Some route names a host: the request's host is normalised and looked up (else only anyHost is searched). */
  private readonly byHostName: boolean;
  /** Scratch of match() (which runs to completion: a header lookup must not route again). */
  private readonly candidates = new Candidates<CompiledRouteImpl>();

  constructor(compiled: readonly CompiledRouteImpl[]) {
    this.routes = compiled;
    const byHost = new Map<string, RouteGroupBuilder<CompiledRouteImpl>>();
    const bySuffix = new Map<string, RouteGroupBuilder<CompiledRouteImpl>>();
    let anyHost: RouteGroupBuilder<CompiledRouteImpl> | null = null;
    for (const route of compiled) {
      let group: RouteGroupBuilder<CompiledRouteImpl>;
      if (route.hostExact !== null) group = builderFor(byHost, route.hostExact);
      else if (route.hostSuffix !== null) group = builderFor(bySuffix, route.hostSuffix);
      else group = anyHost ??= new RouteGroupBuilder();
      if (route.pathKind === PATH_EXACT) group.addExact(route.pathValue, route);
      else if (route.pathKind === PATH_PREFIX) group.addPrefix(route.pathValue, route);
      else if (route.pathKind === PATH_ANY) group.addPrefix('', route);
      else group.addRegex(route.pathValue, route);
    }
    this.byHost = buildAll(byHost);
    this.bySuffix = buildAll(bySuffix);
    this.anyHost = anyHost === null ? null : anyHost.build();
    this.hasSuffixes = bySuffix.size > 0;
    this.byHostName = byHost.size > 0 || this.hasSuffixes;
  }

  match(method: string, host: string, path: string, header: HeaderLookup): CompiledRoute | null {
    const candidates = this.candidates;
    candidates.reset();
    if (this.byHostName) this.collectByHost(normaliseRequestHost(host), path, candidates);
    this.anyHost?.collect(path, candidates);
    return candidates.first(method, path, header);
  }

  /** The routes of the request's exact host `h` (normalised) and of each wildcard suffix it has. */
  private collectByHost(h: string, path: string, candidates: Candidates<CompiledRouteImpl>): void {
    this.byHost.get(h)?.collect(path, candidates);
    if (!this.hasSuffixes) return;
    // Every suffix of the host that starts at a dot other than its first character.
    for (let dot = h.indexOf('.', 1); dot > 0; dot = h.indexOf('.', dot + 1)) {
      this.bySuffix.get(h.slice(dot))?.collect(path, candidates);
    }
  }
}

function builderFor(map: Map<string, RouteGroupBuilder<CompiledRouteImpl>>, key: string): RouteGroupBuilder<CompiledRouteImpl> {
  let builder = map.get(key);
  if (builder === undefined) {
    builder = new RouteGroupBuilder();
    map.set(key, builder);
  }
  return builder;
}

function buildAll(builders: ReadonlyMap<string, RouteGroupBuilder<CompiledRouteImpl>>): ReadonlyMap<string, RouteGroup<CompiledRouteImpl>> {
  const groups = new Map<string, RouteGroup<CompiledRouteImpl>>();
  for (const [key, builder] of builders) groups.set(key, builder.build());
  return groups;
}

/** The reference: every route in config order, checked in full. What the index must agree with. */
class LinearRouter implements Router {
  readonly routes: readonly CompiledRoute[];
  private readonly compiled: readonly CompiledRouteImpl[];

  constructor(compiled: readonly CompiledRouteImpl[]) {
    this.routes = compiled;
    this.compiled = compiled;
  }

  match(method: string, host: string, path: string, header: HeaderLookup): CompiledRoute | null {
    const h = normaliseRequestHost(host);
    const compiled = this.compiled;
    for (let i = 0; i < compiled.length; i++) {
      const route = compiled[i] as CompiledRouteImpl;
      if (route.matchesHost(h) && route.matchesRest(method, path, header)) return route;
    }
    return null;
  }
}

function compileRoutes(routes: readonly RouteSpec[]): CompiledRouteImpl[] {
  return routes.map((spec, index) => {
    const route = new CompiledRouteImpl(spec, index);
    Object.freeze(route);
    return route;
  });
}

/** Compiles a listener's routes. Throws (naming the route) when a regex does not compile. */
export function buildRouter(routes: readonly RouteSpec[]): Router {
  const router = new IndexedRouter(compileRoutes(routes));
  Object.freeze(router);
  return router;
}

/** The same routes matched by a plain scan in config order: the reference for tests and benchmarks. */
export function buildLinearRouter(routes: readonly RouteSpec[]): Router {
  const router = new LinearRouter(compileRoutes(routes));
  Object.freeze(router);
  return router;
}

/**
 * A route that only forwards (no retries, fault, rate limit or test hooks; the config's default
 * WebSocket idle timeout): what the proxy builds for itself rather than compiles from a config.
 */
export function forwardingRoute(name: string, match: RouteMatchSpec, action: RouteActionSpec, timeoutMs: number): RouteSpec {
  return {
    name,
    match,
    action,
    timeoutMs,
    testCrash: false,
    testStall: false,
    testThrow: false,
    maxStreamDurationMs: 0,
    retries: null,
    fault: null,
    rateLimit: null,
    websocket: { idleTimeoutMs: 3_600_000 },
  };
}
