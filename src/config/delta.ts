// The typed difference between the config a worker runs and the next one, compiled once on the
// main thread (structural equality, never JSON text) and posted to the worker, which applies it
// without comparing specs itself: listeners, routes, clusters and endpoints added, changed or
// removed, and which listeners are placed on that worker (placement.ts). A cluster whose only
// change is its endpoints (discovery) travels as its endpoint changes alone, so that a change of
// one endpoint in a large service costs the size of the change. Pure, plain data.

import { sameValue } from './equal.js';
import { listenersOf } from './placement.js';
import type { ClusterSpec, EndpointSpec, ListenerSpec, NodeSpec, RouteSpec, Snapshot, TracingSpec } from './types.js';

/** Added (new specs), changed, and removed (names) items of one kind. */
export interface Changes<Spec, Change> {
  readonly added: readonly Spec[];
  readonly changed: readonly Change[];
  readonly removed: readonly string[];
}

export interface RouteChanges {
  /** Route names, in config order. */
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  /** Routes present before and after now come in another order (first match wins). */
  readonly reordered: boolean;
}

export interface ListenerChange {
  readonly spec: ListenerSpec;
  /** Address, TLS mode, engine, protocol or the presence of tcp_fallback changed: a new socket is bound first, then the old one closed. */
  readonly rebind: boolean;
  /** host:port changed (a subset of rebind). */
  readonly moved: boolean;
  readonly routes: RouteChanges;
  /** Routes (by name) whose rate limit is new or different: their token buckets start afresh. */
  readonly routeRateLimits: readonly string[];
  /** The listener's own rate limit changed: its token bucket starts afresh. */
  readonly rateLimit: boolean;
  /** The authorization rules changed: a new authorizer (and its counters). */
  readonly authorization: boolean;
  /** access_log path or format changed (or it was turned on or off). */
  readonly accessLog: boolean;
}

export interface EndpointChanges {
  readonly added: readonly EndpointSpec[];
  /** Same address, another weight. */
  readonly changed: readonly EndpointSpec[];
  /** Addresses; their pools drain. */
  readonly removed: readonly string[];
}

export interface ClusterChange {
  readonly name: string;
  /**
   * The whole spec after the change when its settings or TLS changed; null when only its
   * endpoints did: the worker keeps its settings and applies `endpoints`.
   */
  readonly spec: ClusterSpec | null;
  readonly endpoints: EndpointChanges;
  /** The upstream TLS settings changed: new connections use the new ones. */
  readonly tls: boolean;
  /** lb, pool, circuit breaker, retry budget, health check or outlier settings changed. */
  readonly settings: boolean;
}

export interface ConfigDelta {
  /** The version this delta starts from; null = from nothing (a worker's first config). */
  readonly fromVersion: number | null;
  readonly version: number;
  /** The worker whose placement the listener changes follow; null = every listener (summaries). */
  readonly worker: number | null;
  /** The node settings after this delta when they changed (always set from nothing), else null. */
  readonly node: NodeSpec | null;
  /** The tracing settings after this delta when they changed (always set from nothing), else undefined; null = tracing off. */
  readonly tracing: TracingSpec | null | undefined;
  readonly listeners: Changes<ListenerSpec, ListenerChange>;
  readonly clusters: Changes<ClusterSpec, ClusterChange>;
}

/**
 * What changes from `prev` (null: nothing runs yet) to `next`, for `worker` (listener changes
 * cover only the listeners placed on it) or for the whole config (`worker` null).
 */
export function compileDelta(prev: Snapshot | null, next: Snapshot, worker: number | null): ConfigDelta {
  const placed = (s: Snapshot): readonly ListenerSpec[] => (worker === null ? s.listeners : listenersOf(s.listeners, s.node.workers, worker));
  return Object.freeze({
    fromVersion: prev === null ? null : prev.version,
    version: next.version,
    worker,
    node: prev !== null && sameValue(prev.node, next.node) ? null : next.node,
    tracing: prev !== null && sameValue(prev.tracing, next.tracing) ? undefined : next.tracing,
    listeners: changes(prev === null ? [] : placed(prev), placed(next), listenerChange),
    clusters: changes(prev?.clusters ?? [], next.clusters, clusterChange),
  });
}

/** True when applying the delta would change nothing. */
export function isEmptyDelta(d: ConfigDelta): boolean {
  return d.node === null && d.tracing === undefined && isEmpty(d.listeners) && isEmpty(d.clusters);
}

/** Whether a listener change needs a new router. */
export function routesChanged(r: RouteChanges): boolean {
  return r.reordered || r.added.length > 0 || r.changed.length > 0 || r.removed.length > 0;
}

function listenerChange(p: ListenerSpec, n: ListenerSpec): ListenerChange | null {
  if (sameValue(p, n)) return null;
  const moved = p.host !== n.host || p.port !== n.port;
  const routes = changes(p.routes, n.routes, (a, b) => (sameValue(a, b) ? null : b));
  const before = new Map(p.routes.map((r) => [r.name, r]));
  return {
    spec: n,
    rebind:
      moved ||
      p.tls !== n.tls ||
      !sameValue(p.engine, n.engine) ||
      p.protocol !== n.protocol ||
      (p.tcpFallback === null) !== (n.tcpFallback === null) ||
      // original_destination puts a front socket before the listener's server (dataplane/original_dst.ts).
      (p.originalDestination === null) !== (n.originalDestination === null),
    moved,
    routes: {
      added: routes.added.map((r) => r.name),
      changed: routes.changed.map((r) => r.name),
      removed: routes.removed,
      reordered: reordered(p.routes, n.routes),
    },
    routeRateLimits: n.routes.filter((r) => r.rateLimit !== null && !sameValue(before.get(r.name)?.rateLimit ?? null, r.rateLimit)).map((r) => r.name),
    rateLimit: !sameValue(p.rateLimit, n.rateLimit),
    authorization: !sameValue(p.authorization, n.authorization),
    accessLog: !sameValue(p.accessLog, n.accessLog),
  };
}

function clusterChange(p: ClusterSpec, n: ClusterSpec): ClusterChange | null {
  if (p === n) return null;
  // The discovery manager hands over the same array while a cluster's set is unchanged.
  const endpoints = p.endpoints === n.endpoints ? NO_ENDPOINT_CHANGES : changes(p.endpoints, n.endpoints, endpointChange, (e) => e.address);
  const tls = !sameValue(p.tls, n.tls);
  // Settings: everything but the endpoints and TLS, which have their own entries.
  const settings = !sameValue({ ...p, endpoints: null, tls: null }, { ...n, endpoints: null, tls: null });
  if (!tls && !settings && isEmpty(endpoints)) return null;
  return { name: n.name, spec: tls || settings ? n : null, endpoints, tls, settings };
}

const NO_ENDPOINT_CHANGES: EndpointChanges = Object.freeze({ added: [], changed: [], removed: [] });

/** The same address (host and port follow from it) with another weight; null when the same. */
function endpointChange(p: EndpointSpec, n: EndpointSpec): EndpointSpec | null {
  return p === n || p.weight === n.weight ? null : n;
}

function isEmpty(c: Changes<unknown, unknown>): boolean {
  return c.added.length === 0 && c.changed.length === 0 && c.removed.length === 0;
}

/** Items matched by key (name, or address): added, changed (per `change`, null = same), removed. */
function changes<Spec extends { readonly name: string } | EndpointSpec, Change>(
  prev: readonly Spec[],
  next: readonly Spec[],
  change: (p: Spec, n: Spec) => Change | null,
  key: (s: Spec) => string = (s) => (s as { readonly name: string }).name,
): Changes<Spec, Change> {
  // What is left of `before` once `next` is matched is what was removed (keys are unique).
  const before = new Map(prev.map((s) => [key(s), s]));
  const added: Spec[] = [];
  const changed: Change[] = [];
  for (const n of next) {
    const k = key(n);
    const p = before.get(k);
    if (p === undefined) added.push(n);
    else {
      before.delete(k);
      const c = change(p, n);
      if (c !== null) changed.push(c);
    }
  }
  return { added, changed, removed: [...before.keys()] };
}

function reordered(prev: readonly RouteSpec[], next: readonly RouteSpec[]): boolean {
  const after = new Set(next.map((r) => r.name));
  const before = new Set(prev.map((r) => r.name));
  const a = prev.map((r) => r.name).filter((n) => after.has(n));
  const b = next.map((r) => r.name).filter((n) => before.has(n));
  return a.some((name, i) => b[i] !== name);
}
