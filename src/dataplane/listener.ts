// One configured listener inside one worker: its uWS app and listen socket, its router (swapped
// atomically between requests on reload), and the per-request entry point that turns a uWS
// request into an Exchange — or into a local reply when the request is refused.

import uWS from 'uWebSockets.js';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { ListenerSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import type { Rng } from '../lb/types.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import type { Ticker } from '../upstream/ticker.js';
import { Exchange, type ExchangeObserver, type TryOutcome } from './exchange.js';
import { writeLocalReply } from './local_reply.js';
import { buildUpstreamHead, headerLookup, readRequestHead } from './request_head.js';
import { buildRouter, type Router } from './router.js';
import { TokenBucket } from './token_bucket.js';
import { UwsDownstream } from './uws_downstream.js';

/** Per-route data resolved against the worker's clusters for one config version. */
interface RouteTarget {
  /** The single cluster of a plain route; null for a split (picked per request). */
  readonly cluster: Cluster | null;
  readonly rateLimit: TokenBucket | null;
}

/** What a listener needs from its worker. */
export interface ListenerContext {
  readonly ticker: Ticker;
  readonly rng: Rng;
  cluster(name: string): Cluster | undefined;
  /** An exchange on this listener finished (stats). */
  onExchangeDone(listener: ListenerRuntime, ex: Exchange): void;
  /** One try of an exchange ended (passive outlier detection). */
  onTryOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void;
  /** A request was refused or answered locally (no exchange was created). */
  onLocalReply(listener: ListenerRuntime, routeIndex: number, err: ProxyError): void;
  /** A route marked test_crash was hit (test hook). */
  onTestCrash(route: string): void;
}

export class ListenerRuntime implements ExchangeObserver {
  spec: ListenerSpec;
  private router: Router;
  private targets: RouteTarget[];
  private rateLimit: TokenBucket | null;
  private readonly app: TemplatedApp;
  private socket: us_listen_socket | null = null;
  /** Exchanges started on this listener and not yet finished. */
  inflight = 0;
  port = 0;

  constructor(
    spec: ListenerSpec,
    private readonly ctx: ListenerContext,
  ) {
    this.spec = spec;
    this.router = buildRouter(spec.routes);
    this.targets = this.resolveTargets();
    this.rateLimit = spec.rateLimit === null ? null : new TokenBucket(spec.rateLimit, ctx.ticker.fresh());
    this.app = uWS.App();
    this.app.any('/*', (res, req) => this.handle(res, req));
  }

  /** Binds host:port (SO_REUSEPORT, shared with the other workers). Resolves to the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(this.spec.host, this.spec.port, (socket) => {
        if (socket === false) {
          reject(new Error(`listener ${this.spec.name}: cannot listen on ${this.spec.host}:${this.spec.port}`));
          return;
        }
        this.socket = socket;
        this.port = uWS.us_socket_local_port(socket as never);
        resolve(this.port);
      });
    });
  }

  /** A new config version for this listener (same address): new router, same socket. */
  update(spec: ListenerSpec): void {
    const router = buildRouter(spec.routes);
    const rateChanged = JSON.stringify(spec.rateLimit) !== JSON.stringify(this.spec.rateLimit);
    this.spec = spec;
    this.router = router;
    this.targets = this.resolveTargets();
    if (rateChanged) this.rateLimit = spec.rateLimit === null ? null : new TokenBucket(spec.rateLimit, this.ctx.ticker.fresh());
  }

  /** Clusters were reconciled: re-resolve route targets. */
  refreshTargets(): void {
    this.targets = this.resolveTargets();
  }

  /**
   * Closes the listen socket and every client connection now. A worker thread must do this
   * before it exits: Node aborts the whole process when a thread ends with uWS sockets open.
   * (`close()` exists in this uWS build at run time but is missing from its type definitions.)
   */
  closeAll(): void {
    this.socket = null;
    (this.app as TemplatedApp & { close(): void }).close();
  }

  /** Stops accepting connections; requests on open connections are still served. */
  stopAccepting(): void {
    if (this.socket !== null) {
      uWS.us_listen_socket_close(this.socket);
      this.socket = null;
    }
  }

  private resolveTargets(): RouteTarget[] {
    const now = this.ctx.ticker.fresh();
    const old = this.targets as RouteTarget[] | undefined;
    return this.spec.routes.map((r, i) => {
      // Keep a route's bucket across reloads while its limit is unchanged.
      const prev = old?.[i]?.rateLimit ?? null;
      const rateLimit = r.rateLimit === null ? null : prev !== null && prev.sameSpec(r.rateLimit) ? prev : new TokenBucket(r.rateLimit, now);
      return {
        cluster: r.action.kind === 'cluster' ? (this.ctx.cluster(r.action.cluster) ?? null) : null,
        rateLimit,
      };
    });
  }

  private handle(res: HttpResponse, req: HttpRequest): void {
    let routeIndex = -1;
    try {
      const head = readRequestHead(req, this.spec.maxRequestHeadersBytes);
      const route = this.router.match(head.method, head.host, head.path, headerLookup(head));
      if (route === null) {
        throw new ProxyError('no_route', `no route on listener ${this.spec.name} for ${head.method} ${head.host}${head.path}`);
      }
      routeIndex = route.index;
      const spec = route.spec;
      if (spec.testCrash) this.ctx.onTestCrash(spec.name);
      const target = this.targets[route.index];
      if (this.rateLimit !== null && !this.rateLimit.take(Date.now())) {
        throw new ProxyError('rate_limited', `listener ${this.spec.name} is over its rate limit`);
      }
      if (target?.rateLimit != null && !target.rateLimit.take(Date.now())) {
        throw new ProxyError('rate_limited', `route ${spec.name} is over its rate limit`);
      }
      const cluster = target?.cluster ?? this.ctx.cluster(route.pickCluster(this.ctx.rng));
      if (cluster === undefined || cluster === null) {
        throw new ProxyError('no_healthy_endpoint', `route ${spec.name}: cluster is not available`);
      }
      if (cluster.active >= cluster.spec.maxRequests) {
        cluster.overflowTotal++;
        throw new ProxyError('overflow', `cluster ${cluster.spec.name} is at its circuit breaker limit of active requests`);
      }
      let delayMs = 0;
      const fault = spec.fault;
      if (fault !== null) {
        if (fault.abortPercent > 0 && this.ctx.rng.next() * 100 < fault.abortPercent) {
          throw new ProxyError('fault_injected', `fault injected by route ${spec.name}`, fault.abortStatus);
        }
        if (fault.delayPercent > 0 && this.ctx.rng.next() * 100 < fault.delayPercent) delayMs = fault.delayMs;
      }
      const endpoint = cluster.lb.pick(null);
      if (endpoint === null) {
        throw new ProxyError('no_healthy_endpoint', `cluster ${cluster.spec.name} has no endpoint`);
      }
      const client = Buffer.from(res.getRemoteAddressAsText()).toString('latin1');
      const upstreamHead = buildUpstreamHead(head, client, 'http');
      this.inflight++;
      new Exchange(new UwsDownstream(res), head, upstreamHead, cluster, endpoint, spec, route.index, this.ctx, this, delayMs);
    } catch (e) {
      const err = e instanceof ProxyError ? e : new ProxyError('bad_request', 'request could not be processed');
      if (!(e instanceof ProxyError)) console.error(e);
      res.onAborted(noop);
      res.cork(() => writeLocalReply(res, err, null));
      this.ctx.onLocalReply(this, routeIndex, err);
    }
  }

  onExchangeDone(ex: Exchange): void {
    this.inflight--;
    this.ctx.onExchangeDone(this, ex);
  }

  onTryOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void {
    this.ctx.onTryOutcome(cluster, endpoint, outcome);
  }
}

function noop(): void {}
