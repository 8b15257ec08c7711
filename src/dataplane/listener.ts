// One configured listener inside one worker: its server (a uWS app on the `uws` engine, the
// cheapest path; node:http or node:https on the `node` engine, node_server.ts: Node's strict
// llhttp, always used for TLS because uWS here cannot require or read client certificates; the
// strict engine in h1/, HTTP/2 in h2/), its router (swapped atomically between requests on
// reload), and admission: the per-request entry point that turns a request into an Exchange — or
// into a local reply.

import http from 'node:http';
import https from 'node:https';
import type { Server as NetServer, Socket } from 'node:net';
import type tls from 'node:tls';
import type { TLSSocket } from 'node:tls';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t } from 'uWebSockets.js';
import type { ListenerSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import { PIPELINE_ALPN } from '../net/alpn.js';
import { listeningFd, listenReusePort } from '../net/reuseport.js';
import type { Rng } from '../lb/types.js';
import { inboundPeer, listenerTlsOptions, serverTlsOptions, type ServerTlsParams } from '../tls/contexts.js';
import type { TlsMaterial } from '../tls/material.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import type { Ticker } from '../upstream/ticker.js';
import type { Tracer } from '../tracing/tracer.js';
import { Admission, type ListenerRouting, type RouteTarget } from './admission.js';
import { Authorizer } from './authz.js';
import type { StrictDownstream } from './h1/downstream.js';
import type { ParsedHead } from './h1/parse.js';
import { StrictServer, type StrictH2, type StrictTls } from './h1/server.js';
import type { H2Downstream } from './h2/downstream.js';
import { readH2RequestHead } from './h2/request_head.js';
import { LazyH2, loadH2 } from './h2/lazy.js';
import type { H2Conn } from './h2/server.js';
import { alpnDetected, DetectCounters, Detector, selectAlpn, selectAlpnPipelined } from './detect.js';
import type { Downstream } from './downstream.js';
import { Exchange, type ExchangeObserver, type TryOutcome } from './exchange.js';
import { localReply } from './local_reply.js';
import type { NodeEngineHost } from './node_server.js';
import {
  BodyFraming,
  buildUpstreamHead,
  readRequestHead,
  readStrictRequestHead,
  refusalRequestId,
  uwsHeadersRead,
  type RequestHead,
  type UnderscorePolicy,
} from './request_head.js';
import { buildRouter, type Router } from './router.js';
import { TokenBucket } from './token_bucket.js';
import {
  DestinationCounters,
  inboundPort,
  LocalApps,
  OriginalDstFront,
  outboundRouting,
  refusedDestination,
  type Destination,
  type FrontTargets,
  type RoutedSocket,
} from './original_dst.js';
import { TcpListener, type TcpCounters, type TcpListenerHooks, type TcpRecord } from './tcp_proxy.js';
import type { SpliceSocket } from './splice.js';
import { connectionUpgrade, Tunnel, upgradeHead, Upgrades, webSocketUpgrade, type TunnelOwner, type UpgradeRecord, type UpgradeRequest } from './upgrade.js';

type UwsEngine = typeof import('./uws_engine.js');
type NodeEngineModule = typeof import('./node_server.js');
/** The uws and node engines' modules, once a listener of this thread uses them (uws_engine.ts, node_server.ts). */
let uwsEngine: UwsEngine | null = null;
let nodeEngine: NodeEngineModule | null = null;

/**
 * Loads what `spec` needs beyond the strict engine (once per thread); awaited before its listener
 * is built. A worker whose listeners are all strict loads neither uWS, nor node:http's server,
 * nor (until an HTTP/2 client comes, h2/lazy.ts) node:http2.
 */
export async function loadEngine(spec: ListenerSpec): Promise<void> {
  if (spec.engine === 'uws') uwsEngine ??= await import('./uws_engine.js');
  if (spec.engine === 'node') nodeEngine ??= await import('./node_server.js');
  if (spec.protocol === 'http2') await loadH2();
}

function uws(): UwsEngine {
  if (uwsEngine === null) throw new Error('the uws engine is used before loadEngine() loaded it');
  return uwsEngine;
}

const NON_ASCII = /[\x80-\xff]/;

/** What a listener needs from its worker. */
export interface ListenerContext {
  readonly ticker: Ticker;
  readonly rng: Rng;
  cluster(name: string): Cluster | undefined;
  /** This sidecar's current certificate material (TLS listeners), or null. */
  tlsMaterial(): TlsMaterial | null;
  /** Seed for TLS session ticket keys, shared by every thread. */
  readonly ticketKeySeed: Buffer;
  /** The worker's tracing settings; null = tracing off. */
  readonly tracer: Tracer | null;
  /** An exchange on this listener finished (stats). */
  onExchangeDone(listener: ListenerRuntime, ex: Exchange): void;
  /** One try of an exchange ended (passive outlier detection). */
  onTryOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void;
  /**
   * A request was refused or answered locally (no exchange was created). `requestId` is the one
   * the reply carries (the head's, or refusalRequestId()'s when no head was checked whole).
   */
  onLocalReply(listener: ListenerRuntime, routeIndex: number, err: ProxyError, head: RequestHead | null, requestId: string): void;
  /** A route marked test_crash was hit (test hook). */
  onTestCrash(route: string): void;
  /** A route marked test_stall was hit (test hook): block the event loop. */
  onTestStall(route: string): void;
  /** An upgraded connection (or its attempt) on this listener ended (a drain may be waiting for it). */
  onUpgradeEnded(listener: ListenerRuntime, record: UpgradeRecord | null): void;
  /** A connection on a tcp listener ended (access log; a drain may be waiting for it). */
  onTcpEnded(listener: ListenerRuntime, record: TcpRecord): void;
  /** In-flight work that leaves no record of its own ended (a connection protocol detection was reading): a drain may be waiting for it. */
  onInflightEnded(listener: ListenerRuntime): void;
  /** outbound_policy: registry_only refused a connection's original destination (logged once per connection). */
  onDestinationRefused(listener: ListenerRuntime, destination: Destination, client: string): void;
}

export class ListenerRuntime implements ExchangeObserver, ListenerRouting, TunnelOwner {
  spec: ListenerSpec;
  // Routing state for the current config version (ListenerRouting, read by admission).
  router: Router;
  targets: RouteTarget[];
  rateLimit: TokenBucket | null;
  private readonly admission: Admission;
  private authorizer: Authorizer | null;
  private readonly app: TemplatedApp | null = null;
  private socket: us_listen_socket | null = null;
  private readonly server: http.Server | null = null;
  /** The `strict` engine's server (src/dataplane/h1/), or null. */
  private readonly h1: StrictServer | null = null;
  /** HTTP/2 on this listener (`protocol: auto | http2`, strict and node engines), or null. */
  readonly h2: LazyH2 | null = null;
  /** Exchanges started on this listener and not yet finished, upgraded, tcp and passthrough connections still open, connections still being read by protocol detection. */
  inflight = 0;
  /** Upgraded (WebSocket) connections: the open tunnels and their counters. */
  readonly upgrades = new Upgrades();
  /** A `protocol: tcp` listener's connections (tcp_proxy.ts): no HTTP server at all then. Or the `tcp_fallback` of a detecting listener. */
  readonly tcp: TcpListener | null = null;
  /** `tcp_fallback`: connections by detected protocol (detect.ts), or null. */
  readonly detected: DetectCounters | null = null;
  /** `tcp_fallback` on plaintext: the front socket that classifies each connection, or null. */
  private readonly detector: Detector | null = null;
  /** `original_destination` on a plaintext listener: the front socket that reads each connection's original destination, or null. */
  private readonly front: OriginalDstFront | null = null;
  /** `original_destination`: connections by where their original destination sent them, or null. */
  readonly destinations: DestinationCounters | null = null;
  /** `original_destination` on a tls listener: the local app's clusters by port, or null. */
  private readonly localApps: LocalApps | null = null;
  /** Routings of requests by original destination (service cluster name, or inbound port), for the current config version. */
  private readonly routings = new Map<string | number, ListenerRouting>();
  port = 0;
  /** TLS handshakes refused (no, expired or untrusted client certificate). */
  handshakeFailures = 0;
  /** The listener's underscore-header policy and how many such headers it dropped. */
  readonly underscores: UnderscorePolicy;
  /** Connections accepted by this worker (node engine; uWS has no accept hook: null). */
  connectionsAccepted: number | null = null;

  constructor(
    spec: ListenerSpec,
    private readonly ctx: ListenerContext,
  ) {
    this.spec = spec;
    this.underscores = { action: spec.headersWithUnderscores, dropped: 0 };
    this.admission = new Admission(ctx);
    this.router = buildRouter(spec.routes);
    this.targets = this.resolveTargets();
    this.rateLimit = spec.rateLimit === null ? null : new TokenBucket(spec.rateLimit, ctx.ticker.fresh());
    this.authorizer = spec.authorization === null ? null : new Authorizer(spec.authorization);
    if (spec.originalDestination !== null) {
      this.destinations = new DestinationCounters();
      if (spec.tls !== null) this.localApps = new LocalApps(ctx.ticker, ctx.rng, ctx);
      else this.front = new OriginalDstFront(spec, this.destinations, ctx.ticker, this.frontTargets());
    }
    if (spec.tcp !== null) {
      this.connectionsAccepted = 0;
      this.tcp = new TcpListener(spec, this.tcpHooks(), this.tlsParams());
      return;
    }
    if (spec.tcpFallback !== null) {
      this.detected = new DetectCounters();
      this.tcp = new TcpListener(fallbackSpec(spec), this.tcpHooks(), this.tlsParams());
    }
    if (spec.engine !== 'uws' && spec.protocol !== 'http1') {
      this.h2 = new LazyH2(spec, {
        request: (down, raw, endStream, conn) => this.handleH2(down, raw, endStream, conn),
        // A stream still sending its trailers after its exchange ended: a drain waits for it.
        finishing: (delta) => {
          this.inflight += delta;
          if (delta < 0) this.ctx.onInflightEnded(this);
        },
      });
    }
    if (spec.engine === 'uws') {
      const { uWS, webSocketBehavior, DEFAULT_WS_MAX_MESSAGE_BYTES } = uws();
      this.app = uWS.App();
      this.app.any('/*', (res, req) => this.handleUws(res, req));
      // uWS cannot hand a raw socket over: a WebSocket upgrade (a GET with a Sec-WebSocket-Key
      // reaches this handler) is terminated in uWS and its messages re-encoded (uws_websocket.ts).
      this.app.ws(
        '/*',
        webSocketBehavior(DEFAULT_WS_MAX_MESSAGE_BYTES, (res, req, context) => this.handleUwsUpgrade(res, req, context)),
      );
    } else if (spec.engine === 'strict') {
      this.h1 = this.createStrictServer(spec);
    } else {
      this.connectionsAccepted = 0;
      if (nodeEngine === null) throw new Error('the node engine is used before loadEngine() loaded it');
      this.server = new nodeEngine.NodeEngine(this.nodeEngineHost()).server;
    }
    if (spec.tcpFallback !== null && spec.tls === null) {
      const tcp = this.tcp!;
      this.detector = new Detector(spec, this.detected!, {
        http: (s) => this.takeHttp(s),
        opaque: (s) => tcp.accept(s, null, null),
        started: () => {
          this.inflight++;
        },
        ended: () => {
          this.inflight--;
          this.ctx.onInflightEnded(this);
        },
      });
    }
  }

  /** Where the original-destination front hands connections: this listener's own accept path. */
  private frontTargets(): FrontTargets {
    return {
      serve: (s) => {
        if (this.tcp !== null && this.spec.tcp !== null) {
          this.connectionsAccepted!++;
          if (s.destination?.kind === 'refused') s.destroy();
          else this.tcp.accept(s, null, s.destination?.port ?? null);
        } else if (this.detector !== null) this.detector.take(s);
        else this.takeHttp(s);
      },
      refused: (s, d) => this.ctx.onDestinationRefused(this, d, `${s.remoteAddress}:${s.remotePort}`),
      passthroughStarted: () => {
        this.inflight++;
      },
      // As a tcp connection's end: the access log line, and a drain may be waiting for it.
      passthroughEnded: (record) => {
        this.inflight--;
        this.ctx.onTcpEnded(this, record);
      },
    };
  }

  /** Counters of the passthrough streams (`allow_any`) of an outbound original_destination listener, or null. */
  get passthrough(): TcpCounters | null {
    return this.front?.passthrough ?? null;
  }

  /**
   * The routing of a request on `socket`: the listener's own, unless its original destination
   * decides — a service's routes (outboundRouting), the local app at the original port (inbound),
   * or a refusal (registry_only). Read per request, computed once per connection and version.
   */
  private routingFor(socket: RoutedSocket | null): ListenerRouting {
    if (this.spec.originalDestination === null || socket === null) return this;
    if (this.localApps !== null) {
      const port = inboundPort(socket);
      return port === null ? this : this.cachedRouting(port, () => this.localApps!.routing(this, this.spec.routes, (n) => this.ctx.cluster(n), port));
    }
    const d = socket.destination;
    if (d === undefined) return this;
    if (d.kind === 'refused') throw refusedDestination(this.spec.name, d);
    const cluster = this.ctx.cluster(d.cluster!);
    if (cluster === undefined) return this;
    return this.cachedRouting(d.cluster!, () => outboundRouting(this, this.spec.routes, cluster));
  }

  private cachedRouting(key: string | number, make: () => ListenerRouting): ListenerRouting {
    let r = this.routings.get(key);
    if (r === undefined) {
      r = make();
      this.routings.set(key, r);
    }
    return r;
  }

  /** The cluster of a tcp connection (tcp_proxy.ts's clusterFor): see routingFor. */
  private tcpCluster(socket: RoutedSocket, name: string, port: number | null): Cluster | undefined | null {
    const own = this.ctx.cluster(name);
    if (this.spec.originalDestination === null) return own;
    if (this.localApps !== null) {
      const local = inboundPort(socket, port);
      return local === null || own === undefined ? own : this.localApps.cluster(own.spec, local);
    }
    const d = socket.destination;
    if (d === undefined) return own;
    return d.kind === 'refused' ? null : this.ctx.cluster(d.cluster!);
  }

  /** A detected HTTP connection, its first bytes put back, to the HTTP server (which tells HTTP/2 by the preface). */
  private takeHttp(socket: Socket): void {
    const server = this.server ?? this.h1!.server;
    server.emit('connection', socket);
    socket.resume();
  }

  /**
   * After the peer check of a TLS listener with `tcp_fallback`: counts what ALPN made the
   * connection; true when it is a client sidecar's opaque TCP (`outrigger-tcp/<port>`), which
   * then goes to the fallback cluster (authorized by `from`, as on a tcp listener).
   */
  private claimedByAlpn(socket: TLSSocket, peer: string | null): boolean {
    if (this.detected === null) return false;
    const d = alpnDetected(socket.alpnProtocol);
    this.detected.count(d.protocol);
    if (d.protocol !== 'opaque') return false;
    this.tcp!.accept(socket, peer, d.port);
    return true;
  }

  /** What the node engine (node_server.ts) takes from this listener. */
  private nodeEngineHost(): NodeEngineHost {
    return {
      spec: () => this.spec,
      underscores: this.underscores,
      h2: this.h2,
      tlsOptions: () => this.tlsServerOptions(),
      tlsMaterial: () => this.ctx.tlsMaterial(),
      claimedByAlpn: (socket, peer) => this.claimedByAlpn(socket, peer),
      handshakeFailed: () => {
        this.handshakeFailures++;
      },
      connectionAccepted: () => {
        this.connectionsAccepted!++;
      },
      routingFor: (socket) => this.routingFor(socket),
      authorizedUpstreamHead: (head, peer, client) => this.authorizedUpstreamHead(head, peer, client),
      proxy: (down, head, upstreamHead, routing) => this.proxy(down, head, upstreamHead, routing),
      tunnel: (routing, head, upstreamHead, take) => this.tunnel(routing, head, upstreamHead, take),
      refusal: (e) => this.refusal(e),
      onLocalReply: (err, head, id) => this.ctx.onLocalReply(this, this.lastRouteIndex, err, head, id),
      onUnparsedReply: (err, id) => this.ctx.onLocalReply(this, -1, err, null, id),
    };
  }

  /** The TLS server options of the node and strict engines: certificates, ALPN offer, handshake timeout. */
  private tlsServerOptions(): tls.TlsOptions {
    const spec = this.spec;
    return { ...listenerTlsOptions(spec.name, this.ctx.tlsMaterial(), this.tlsParams(), spec.timeouts.handshakeMs), ...alpn(spec) };
  }

  /** The `strict` engine: our own HTTP/1.1 server on net/tls sockets, with the node engine's TLS peer check. */
  private createStrictServer(spec: ListenerSpec): StrictServer {
    let tlsSetup: StrictTls | null = null;
    if (spec.tls !== null) {
      const mtls = spec.tls === 'mtls';
      tlsSetup = {
        options: this.tlsServerOptions(),
        // Before any byte is read: a verified client certificate, valid now, whose root vouches for its trust domain.
        peer: (s) => {
          if (!mtls) return null;
          const p = inboundPeer(s, this.ctx.tlsMaterial());
          return p.ok ? p.identity : false;
        },
        failed: () => {
          this.handshakeFailures++;
        },
        claimed: (s, peer) => this.claimedByAlpn(s, peer),
      };
    }
    this.connectionsAccepted = 0;
    const h2 = this.h2;
    const h2Hook: StrictH2 | null = h2 === null ? null : { only: spec.protocol === 'http2', handoff: (s, peer) => h2.handoff(s, peer) };
    return new StrictServer(
      spec,
      this.ctx.ticker,
      {
        request: (down, req) => this.handleStrict(down, req),
        refused: (err, requestId) => this.ctx.onLocalReply(this, -1, err, null, requestId),
        accepted: () => {
          this.connectionsAccepted!++;
        },
      },
      tlsSetup,
      h2Hook,
    );
  }

  /**
   * Binds host:port. Every worker binds every listener with SO_REUSEPORT, so the kernel spreads
   * connections across workers: uWS sets it itself; node servers listen on a socket the reuseport
   * addon made (Node 20's net cannot set it). The supervisor has checked that no other process
   * holds the port, and resolved port 0 to one port for all workers. Resolves to the bound port.
   *
   * `replacing`: this worker's listener of the same name and address that a reload replaces with
   * this one (another engine, protocol or TLS setting). When both listen through node's net, this
   * one takes over the old one's socket (a duplicate fd) rather than binding a new one: the
   * connections waiting in its accept queue are then accepted here after the old listener stops,
   * where closing the old socket would reset them. uWS binds its own sockets, so a uws listener
   * on either side binds anew.
   */
  listen(replacing: ListenerRuntime | null = null): Promise<number> {
    const inherit = replacing?.listeningFd() ?? null;
    if (this.front !== null) return this.front.listen(inherit).then((port) => (this.port = port));
    if (this.detector !== null) return this.detector.listen(inherit).then((port) => (this.port = port));
    if (this.tcp !== null && this.spec.tcp !== null) return this.tcp.listen(inherit).then((port) => (this.port = port));
    const server: NetServer | null = this.server ?? this.h1?.server ?? null;
    if (server !== null) return listenReusePort(server, this.spec, inherit).then((port) => (this.port = port));
    return new Promise((resolve, reject) => {
      this.app!.listen(this.spec.host, this.spec.port, (socket) => {
        if (socket === false) {
          reject(new Error(`listener ${this.spec.name}: cannot listen on ${this.spec.host}:${this.spec.port}`));
          return;
        }
        this.socket = socket;
        this.port = uws().uWS.us_socket_local_port(socket);
        resolve(this.port);
      });
    });
  }

  /** The fd of the socket this listener accepts on, while it does (null for uws listeners: uWS keeps its sockets). */
  listeningFd(): number | null {
    const server = this.front?.server ?? this.detector?.server ?? (this.spec.tcp !== null ? this.tcp?.server : null) ?? this.server ?? this.h1?.server ?? null;
    return server === null ? null : listeningFd(server);
  }

  /**
   * A new config version for this listener on the same socket, as the main thread's delta
   * describes it (config/delta.ts): the router is rebuilt only when routes changed, token buckets
   * and the authorizer only when their settings did.
   */
  update(change: import('../config/delta.js').ListenerChange): void {
    const spec = change.spec;
    const r = change.routes;
    // Route buckets carry over by route name unless the delta says that route's limit is new or changed.
    const keep = new Map<string, TokenBucket>();
    this.spec.routes.forEach((route, i) => {
      const bucket = this.targets[i]?.rateLimit ?? null;
      if (bucket !== null && !change.routeRateLimits.includes(route.name)) keep.set(route.name, bucket);
    });
    this.spec = spec;
    this.underscores.action = spec.headersWithUnderscores;
    if (r.reordered || r.added.length > 0 || r.changed.length > 0 || r.removed.length > 0) this.router = buildRouter(spec.routes);
    this.targets = this.resolveTargets(keep);
    this.forgetRoutings();
    this.front?.configure(spec);
    const server = this.server;
    if (server !== null) {
      // Timeouts and limits apply to the running server (handshake_ms: to new servers only).
      server.keepAliveTimeout = spec.timeouts.keepaliveIdleMs;
      server.headersTimeout = spec.timeouts.headersMs;
      server.timeout = spec.timeouts.bodyIdleMs;
      server.maxConnections = spec.maxConnections ?? Infinity;
    }
    this.h1?.configure(spec);
    this.h2?.configure(spec);
    this.tcp?.configure(spec.tcpFallback !== null ? fallbackSpec(spec) : spec);
    this.detector?.configure(spec);
    if (change.rateLimit) this.rateLimit = spec.rateLimit === null ? null : new TokenBucket(spec.rateLimit, this.ctx.ticker.fresh());
    if (change.authorization) this.authorizer = spec.authorization === null ? null : new Authorizer(spec.authorization);
  }

  /** New certificate material: new handshakes use it at once; open connections carry on. */
  setMaterial(material: TlsMaterial): void {
    // requestCert/rejectUnauthorized are server options and stay as set at creation.
    if (this.spec.tls === null) return;
    const { requestCert: _rc, rejectUnauthorized: _ru, ...ctxOptions } = serverTlsOptions(material, this.tlsParams());
    (this.server as https.Server | null)?.setSecureContext(ctxOptions);
    this.h1?.setSecureContext(ctxOptions);
    this.tcp?.setSecureContext(ctxOptions);
  }

  /** Session tickets and ids are bound to this listener's name and mode (tls/contexts.ts). */
  private tlsParams(): ServerTlsParams {
    return { ticketKeySeed: this.ctx.ticketKeySeed, listener: this.spec.name, mode: this.spec.tls === 'tls' ? 'tls' : 'mtls' };
  }

  /** Authorization decisions so far: allowed per rule, denied. */
  get authzCounts(): { allowed: readonly number[]; denied: number } | null {
    return this.authorizer === null ? null : { allowed: this.authorizer.allowed, denied: this.authorizer.denied };
  }

  /** Clusters were reconciled: re-resolve route targets. */
  refreshTargets(): void {
    this.targets = this.resolveTargets();
    this.forgetRoutings();
  }

  /** Routings by original destination are rebuilt on next use; the local app's connections drain where their route cluster changed. */
  private forgetRoutings(): void {
    this.routings.clear();
    this.localApps?.keepCurrent((name) => this.ctx.cluster(name)?.spec);
  }

  /**
   * Closes the listen socket and every client connection now. A worker thread must do this
   * before it exits: Node aborts the whole process when a thread ends with uWS sockets open.
   * (`close()` exists in this uWS build at run time but is missing from its type definitions.)
   */
  closeAll(): void {
    this.socket = null;
    if (this.app !== null) (this.app as TemplatedApp & { close(): void }).close();
    if (this.server !== null) {
      this.server.close();
      this.server.closeAllConnections();
    }
    this.h1?.closeAll();
    this.h2?.closeAll();
    this.upgrades.closeAll();
    this.detector?.closeAll();
    this.tcp?.closeAll();
    this.front?.closeAll();
    this.localApps?.close();
  }

  /** Stops accepting connections; requests on open connections are still served. */
  stopAccepting(): void {
    if (this.socket !== null) {
      uws().uWS.us_listen_socket_close(this.socket);
      this.socket = null;
    }
    if (this.server !== null) {
      this.server.close();
      this.server.closeIdleConnections();
    }
    this.h1?.stopAccepting();
    this.h2?.stopAccepting();
    this.detector?.stopAccepting();
    this.tcp?.stopAccepting();
    this.front?.stopAccepting();
  }

  /** What this listener's tcp connections report and ask (in flight until they end, like exchanges). */
  private tcpHooks(): TcpListenerHooks {
    const ctx = this.ctx;
    return {
      ticker: ctx.ticker,
      clusterFor: (socket, name, port) => this.tcpCluster(socket, name, port),
      tlsMaterial: () => ctx.tlsMaterial(),
      onTryOutcome: (c, e, outcome) => ctx.onTryOutcome(c, e, outcome),
      // Only `from` applies to TCP (checks.ts refuses paths, methods and grpc on a tcp listener).
      authorize: (identity) => this.authorizer === null || this.authorizer.check(identity, '', '') >= 0,
      accepted: () => {
        this.connectionsAccepted!++;
      },
      handshakeFailed: () => {
        this.handshakeFailures++;
      },
      started: () => {
        this.inflight++;
      },
      ended: (record) => {
        this.inflight--;
        ctx.onTcpEnded(this, record);
      },
    };
  }

  /**
   * Route targets for the current spec. `keep`: token buckets that survive a reload, by route
   * name (update()); without it the routes are the same ones and every bucket is kept by index.
   */
  private resolveTargets(keep: ReadonlyMap<string, TokenBucket> | null = null): RouteTarget[] {
    const now = this.ctx.ticker.fresh();
    const old = this.targets as RouteTarget[] | undefined;
    return this.spec.routes.map((r, i) => {
      const prev = keep === null ? (old?.[i]?.rateLimit ?? null) : (keep.get(r.name) ?? null);
      const rateLimit = r.rateLimit === null ? null : (prev ?? new TokenBucket(r.rateLimit, now));
      return {
        cluster: r.action.kind === 'cluster' ? (this.ctx.cluster(r.action.cluster) ?? null) : null,
        rateLimit,
      };
    });
  }

  private handleUws(res: HttpResponse, req: HttpRequest): void {
    let head: RequestHead | null = null;
    try {
      head = readRequestHead(req, this.spec.maxRequestHeadersBytes, this.underscores);
      this.proxy(new (uws().UwsDownstream)(res, this.spec.errorDetail), head, this.uwsUpstreamHead(res, head), this);
    } catch (e) {
      this.refuseUws(res, e, head);
    }
  }

  /**
   * A request uWS routed to its WebSocket handler (a GET with a Sec-WebSocket-Key): checked as in
   * handleUws, then, when it asks for a WebSocket, admitted and tunnelled like the other engines'
   * upgrades, with uws_websocket.ts's adapter as the client side. Anything else is served as a plain request.
   */
  private handleUwsUpgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t): void {
    let head: RequestHead | null = null;
    try {
      head = readRequestHead(req, this.spec.maxRequestHeadersBytes, this.underscores);
      const text = this.uwsUpstreamHead(res, head);
      // Read now: the request is gone when this handler returns.
      const key = req.getHeader('sec-websocket-key');
      const adapter = (): { socket: SpliceSocket; early: null } => ({
        socket: new (uws().UwsWebSocketClient)(res, key, context, uws().DEFAULT_WS_MAX_MESSAGE_BYTES, this.upgrades),
        early: null,
      });
      if (connectionUpgrade(head.headers) && this.tunnel(this, head, uws().withoutExtensions(text), adapter)) return;
      this.proxy(new (uws().UwsDownstream)(res, this.spec.errorDetail), head, text, this);
    } catch (e) {
      this.refuseUws(res, e, head);
    }
  }

  /** A uws request's upstream head (x-forwarded-for when the listener appends it), its trace started. */
  private uwsUpstreamHead(res: HttpResponse, head: RequestHead): string {
    // The client's address costs a getpeername() syscall per request here: only when asked for.
    const client = this.spec.xForwardedFor === 'append' ? uws().remoteAddressText(res) : null;
    if (client !== null) head.client = client;
    this.startTrace(head);
    return buildUpstreamHead(head, client, 'http');
  }

  /** A uws request refused before it was proxied: the local reply for what its handling threw. */
  private refuseUws(res: HttpResponse, e: unknown, head: RequestHead | null): void {
    const err = this.refusal(e);
    const id = head !== null ? head.requestId : refusalRequestId(uwsHeadersRead());
    if (err.status === 400 || err.status === 431) {
      // A framing problem: nothing after it on this connection may be parsed or forwarded. uWS
      // would parse the bytes that follow in the same read as new requests if we answered
      // here; with the answer pending it closes a connection that sends more, so the answer
      // leaves on the next turn, and then closes the connection.
      const reply = new DeferredRefusal(res, err, id, this.spec.errorDetail);
      res.onAborted(() => reply.abort());
      setImmediate(() => reply.send());
    } else {
      res.onAborted(noop);
      res.cork(() => uws().writeLocalReply(res, err, id, this.spec.errorDetail));
    }
    this.ctx.onLocalReply(this, this.lastRouteIndex, err, head, id);
  }

  /** A head parsed by the strict engine (src/dataplane/h1/): checked, then proxied as on the node engine. */
  private handleStrict(down: StrictDownstream, req: ParsedHead): void {
    const conn = down.conn;
    let head: RequestHead | null = null;
    try {
      head = readStrictRequestHead(req.method, req.target, req.minor, req.headers, req.headerBytes, this.spec.maxRequestHeadersBytes, this.underscores);
      conn.expectBody(head.framing, head.contentLength);
      // As node:http: an HTTP/1.1 expectation other than 100-continue gets 417.
      if (req.expectOther && req.minor === 1) throw new ProxyError('expectation_failed', `unsupported expectation: only 100-continue`);
      const text = this.authorizedUpstreamHead(head, conn.peer, conn.remote);
      const routing = this.routingFor(conn.socket);
      if (req.upgrade && req.connectionUpgrade && this.tunnel(routing, head, text, () => ({ socket: conn.socket, early: conn.detach() }))) return;
      // Header bytes were decoded as latin1: written back as latin1, obs-text reaches the app byte for byte.
      this.proxy(down, head, req.nonAscii ? Buffer.from(text, 'latin1') : text, routing);
    } catch (e) {
      const err = this.refusal(e);
      const id = head !== null ? head.requestId : refusalRequestId(req.headers);
      down.reply(err, id);
      this.ctx.onLocalReply(this, this.lastRouteIndex, err, head, id);
    }
  }

  /** An HTTP/2 request stream (h2/): its head checked like every engine's, then proxied to the same HTTP/1.1 upstreams. */
  private handleH2(down: H2Downstream, raw: readonly string[], endStream: boolean, conn: H2Conn): void {
    let head: RequestHead | null = null;
    try {
      const h2 = readH2RequestHead(raw, endStream, this.spec.maxRequestHeadersBytes, this.underscores);
      head = h2.head;
      head.protocol = 'HTTP/2';
      const text = this.authorizedUpstreamHead(head, conn.peer, conn.remote);
      // As on the HTTP/1 engines: 100-continue is answered at once (Expect is not forwarded).
      if (h2.expectContinue) down.continue();
      // Header values are latin1 (node:http2 decodes them so): written back as latin1, obs-text reaches the app byte for byte.
      this.proxy(down, head, NON_ASCII.test(text) ? Buffer.from(text, 'latin1') : text, this.routingFor(conn.session.socket));
    } catch (e) {
      const err = this.refusal(e);
      const id = head !== null ? head.requestId : refusalRequestId(raw);
      down.reply(err, id);
      this.ctx.onLocalReply(this, this.lastRouteIndex, err, head, id);
    }
  }

  /**
   * A WebSocket upgrade, its head checked and authorized: admitted like any request (route, rate
   * limits, circuit breaker, endpoint), then tunnelled (upgrade.ts) on the socket `take()` hands
   * over (on the uws engine, an adapter that re-encodes messages). False when the request asks
   * for another protocol, or has a body (served as plain HTTP). Throws what admission throws, and
   * `upgrade_refused` on a route with `upgrades: []`.
   */
  private tunnel(routing: ListenerRouting, head: RequestHead, upstreamHead: string, take: () => { socket: SpliceSocket; early: Buffer | null }): boolean {
    // A body before the switch is not tunnelled (it would have to reach the app before its 101): served as plain HTTP.
    const upgrade = head.framing === BodyFraming.None ? webSocketUpgrade(head.headers) : null;
    if (upgrade === null) return false;
    const a = this.admission.admit(routing, head);
    const ws = a.route.websocket;
    if (ws === null) {
      a.cluster.release();
      throw new ProxyError('upgrade_refused', `route ${a.route.name} does not allow WebSocket upgrades (upgrades: [])`);
    }
    const { socket, early } = take();
    const req: UpgradeRequest = {
      head,
      routeIndex: a.routeIndex,
      upstreamHead: upgradeHead(upstreamHead, upgrade),
      idleTimeoutMs: ws.idleTimeoutMs,
      detail: this.spec.errorDetail,
    };
    this.inflight++;
    new Tunnel(socket, early, req, a.cluster, a.endpoint, this);
    return true;
  }

  get ticker(): Ticker {
    return this.ctx.ticker;
  }

  upgradeOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void {
    this.ctx.onTryOutcome(cluster, endpoint, outcome);
  }

  upgradeFailed(err: ProxyError, req: UpgradeRequest): void {
    this.ctx.onLocalReply(this, req.routeIndex, err, req.head, req.head.requestId);
  }

  upgradeEnded(record: UpgradeRecord | null): void {
    this.inflight--;
    this.ctx.onUpgradeEnded(this, record);
  }

  /**
   * The node, strict and HTTP/2 paths after their own head checks: the peer (mTLS listeners) and
   * client on the head, authorization, then the upstream head with x-forwarded-* and our
   * x-forwarded-client-cert. Throws `unauthorized`.
   */
  private authorizedUpstreamHead(head: RequestHead, connPeer: string | null, client: string): string {
    const tls = this.spec.tls !== null;
    const peer = tls ? connPeer : null;
    head.peer = peer;
    head.client = client;
    this.startTrace(head);
    if (this.authorizer !== null && this.authorizer.check(peer, head.matchPath, head.method) < 0) {
      throw new ProxyError('unauthorized', `${peer ?? 'a peer without an identity'} may not ${head.method} ${head.path} on listener ${this.spec.name}`);
    }
    const ours = tls ? (this.ctx.tlsMaterial()?.identity ?? '') : '';
    const xfcc = peer === null ? null : `By=${ours};URI=${peer}`;
    return buildUpstreamHead(head, this.spec.xForwardedFor === 'append' ? client : null, tls ? 'https' : 'http', xfcc);
  }

  /** Tracing on: the request's trace (its sampling decision and the trace headers that go upstream). */
  private startTrace(head: RequestHead): void {
    const tracer = this.ctx.tracer;
    if (tracer !== null) head.trace = tracer.begin(head.headers);
  }

  /** The listener's name (ListenerRouting). */
  get name(): string {
    return this.spec.name;
  }

  /** Route index of the request being handled (for stats of refusals), -1 before routing. */
  private get lastRouteIndex(): number {
    return this.admission.routeIndex;
  }

  /** The local reply for what a request's handling threw: a ProxyError as it is, anything else a 500 internal_error (logged by the worker with the request id). */
  private refusal(e: unknown): ProxyError {
    return e instanceof ProxyError ? e : ProxyError.internal(e);
  }

  /** Routing, limits, fault injection, endpoint choice: everything before the first upstream byte. */
  private proxy(down: Downstream, head: RequestHead, upstreamHead: string | Buffer, routing: ListenerRouting): void {
    const a = this.admission.admit(routing, head);
    this.inflight++;
    Exchange.start({
      down,
      head,
      upstreamHead,
      cluster: a.cluster,
      endpoint: a.endpoint,
      route: a.route,
      routeIndex: a.routeIndex,
      ctx: this.ctx,
      observer: this,
      delayMs: a.delayMs,
    });
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

/** The spec the TCP proxy of a detecting listener forwards by: its fallback as `tcp`, and no TLS of its own (the listener's server terminates it). */
function fallbackSpec(spec: ListenerSpec): ListenerSpec {
  return { ...spec, tls: null, tcp: spec.tcpFallback };
}

/**
 * ALPN protocols a TLS listener offers: h2 and http/1.1 on `auto` (and a client sidecar's
 * outrigger-tcp/<port> with `tcp_fallback`), h2 on `http2`, none on `http1` (as before HTTP/2).
 * A strict-engine mTLS listener that serves HTTP/1 puts a client sidecar's PIPELINE_ALPN first
 * (src/net/alpn.ts; on `http1` with http/1.1 as the alternative).
 */
function alpn(spec: ListenerSpec): Pick<tls.TlsOptions, 'ALPNProtocols' | 'ALPNCallback'> {
  const pipelined = spec.engine === 'strict' && spec.tls === 'mtls';
  if (spec.tcpFallback !== null) return { ALPNCallback: pipelined ? selectAlpnPipelined : selectAlpn };
  if (spec.protocol === 'auto') return { ALPNProtocols: pipelined ? [PIPELINE_ALPN, 'h2', 'http/1.1'] : ['h2', 'http/1.1'] };
  if (spec.protocol === 'http2') return { ALPNProtocols: ['h2'] };
  return pipelined ? { ALPNProtocols: [PIPELINE_ALPN, 'http/1.1'] } : {};
}

/** A 400/431 on the uWS engine, answered on the next turn (see handleUws), unless the client went away first. */
class DeferredRefusal {
  private aborted = false;
  constructor(
    private readonly res: HttpResponse,
    private readonly err: ProxyError,
    private readonly requestId: string | null,
    private readonly detail: boolean,
  ) {}
  abort(): void {
    this.aborted = true;
  }
  /** Writes the reply and closes the connection (whatever the status: nothing after it may be parsed). */
  send(): void {
    if (this.aborted) return;
    const r = localReply(this.err, this.requestId, this.detail);
    const res = this.res;
    res.cork(() => {
      res.writeStatus(`${r.status} ${r.reason}`);
      for (const [name, value] of r.headers) res.writeHeader(name, value);
      res.end(r.body, true);
    });
  }
}
