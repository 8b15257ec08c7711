// Listener admission: everything between a checked request head and the first try, whatever the
// engine or protocol that read it — route match, test hooks, rate limits (listener, then route),
// cluster choice (plain or weighted split), the circuit breaker, fault injection and the first
// endpoint pick. It either admits (the cluster counts the request active until the exchange
// releases it) or throws the ProxyError the client gets.

import type { RouteSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import type { Rng } from '../lb/types.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import type { Ticker } from '../upstream/ticker.js';
import { headerLookup, type RequestHead } from './request_head.js';
import type { Router } from './router.js';
import type { TokenBucket } from './token_bucket.js';

/** Per-route data resolved against the worker's clusters for one config version. */
export interface RouteTarget {
  /** The single cluster of a plain route; null for a split (picked per request). */
  readonly cluster: Cluster | null;
  readonly rateLimit: TokenBucket | null;
}

/** What admission needs from the worker. */
export interface AdmissionContext {
  readonly ticker: Ticker;
  readonly rng: Rng;
  cluster(name: string): Cluster | undefined;
  /** A route marked test_crash was hit (test hook). */
  onTestCrash(route: string): void;
  /** A route marked test_stall was hit (test hook): block the event loop. */
  onTestStall(route: string): void;
}

/** An admitted request: where its exchange goes. */
export interface Admitted {
  readonly route: RouteSpec;
  readonly routeIndex: number;
  /** Has admitted the request (Cluster.admit): the exchange releases it. */
  readonly cluster: Cluster;
  readonly endpoint: Endpoint;
  /** Fault-injection delay before the first try (ms; 0 = none). */
  readonly delayMs: number;
}

/** One listener's routing state for one config version (swapped whole on reload). */
export interface ListenerRouting {
  readonly name: string;
  readonly router: Router;
  readonly targets: readonly RouteTarget[];
  readonly rateLimit: TokenBucket | null;
}

export class Admission {
  /** Route index of the request last seen (for the stats of a refusal), -1 before a route matched. */
  routeIndex = -1;

  constructor(private readonly ctx: AdmissionContext) {}

  admit(l: ListenerRouting, head: RequestHead): Admitted {
    this.routeIndex = -1;
    const route = l.router.match(head.method, head.host, head.matchPath, headerLookup(head));
    if (route === null) throw new ProxyError('no_route', `no route on listener ${l.name} for ${head.method} ${head.host}${head.path}`);
    this.routeIndex = route.index;
    const spec = route.spec;
    if (spec.testCrash) this.ctx.onTestCrash(spec.name);
    if (spec.testStall) this.ctx.onTestStall(spec.name);
    if (spec.testThrow) throw new TypeError(`test_throw hook on route ${spec.name}`);
    const target = l.targets[route.index];
    const now = this.ctx.ticker.fresh();
    if (l.rateLimit !== null && !l.rateLimit.take(now)) throw new ProxyError('rate_limited', `listener ${l.name} is over its rate limit`);
    if (target?.rateLimit != null && !target.rateLimit.take(now)) throw new ProxyError('rate_limited', `route ${spec.name} is over its rate limit`);
    const cluster = target?.cluster ?? this.ctx.cluster(route.pickCluster(this.ctx.rng));
    if (cluster === undefined || cluster === null) throw new ProxyError('no_healthy_endpoint', `route ${spec.name}: cluster is not available`);
    if (!cluster.admit(now)) throw new ProxyError('overflow', `cluster ${cluster.spec.name} is at its circuit breaker limit of active requests`);
    try {
      let delayMs = 0;
      const fault = spec.fault;
      if (fault !== null) {
        if (fault.abortPercent > 0 && this.ctx.rng.next() * 100 < fault.abortPercent) {
          throw new ProxyError('fault_injected', `fault injected by route ${spec.name}`, fault.abortStatus);
        }
        if (fault.delayPercent > 0 && this.ctx.rng.next() * 100 < fault.delayPercent) delayMs = fault.delayMs;
      }
      const endpoint = cluster.lb.pick(null);
      if (endpoint === null) throw new ProxyError('no_healthy_endpoint', `cluster ${cluster.spec.name} has no endpoint`);
      return { route: spec, routeIndex: route.index, cluster, endpoint, delayMs };
    } catch (e) {
      cluster.release(); // admitted, but no exchange will carry it
      throw e;
    }
  }
}
