// Routing by original destination (`original_destination: true`, issue 16): where an intercepted
// connection was addressed before iptables REDIRECTed it here, read once per connection with
// SO_ORIGINAL_DST (net/reuseport.ts's addon), decides where it goes — Envoy's ORIGINAL_DST listener
// filter with Istio's PassthroughCluster and BlackHoleCluster.
//
// Outbound (plaintext listener): a front socket accepts every connection and reads its
// destination before any byte. Not redirected (null): the listener behaves as without the option.
// A service address (`clusters[].addresses`): the listener serves it, its requests routed to the
// owning cluster (outboundRouting) and its opaque bytes forwarded to it (tcp_proxy.ts). Any other
// address: `allow_any` splices it straight to that address (no HTTP parsing; the sidecar's own
// connections are excluded from the redirect by uid, so this is no loop), `registry_only` refuses
// it (HTTP requests get 403 destination_not_allowed, opaque TCP is closed). A passthrough stream
// is a tcp connection like a tcp listener's (PassthroughStream): in flight for a drain, counted
// under cluster `passthrough` (/stats tcp, outrigger_tcp_*), one access log line when it ends.
//
// Inbound (tls listener): after the handshake, the connection goes to the local app at
// 127.0.0.1:<original port> (for a tcp hop dialled to the listener itself, the port the peer
// sidecar named in ALPN `outrigger-tcp/<port>`). LocalApps holds one cluster per (route cluster, port), made on first use from the
// route's cluster (pool, timeouts, circuit breaker) with that one endpoint — Envoy's ORIGINAL_DST
// cluster; its pool closes idle connections as any pool does.

import net from 'node:net';
import type { ClusterSpec, ListenerSpec, OriginalDestinationSpec, RouteSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import type { Rng } from '../lb/types.js';
import { originalDestination } from '../net/reuseport.js';
import { Cluster, type TlsProvider } from '../upstream/cluster.js';
import type { Ticker } from '../upstream/ticker.js';
import type { ListenerRouting, RouteTarget } from './admission.js';
import { buildRouter, forwardingRoute, type CompiledRoute, type HeaderLookup, type Router } from './router.js';
import { FrontServer } from './front_server.js';
import { SplicedStream, TcpCounters, type TcpEnd, type TcpRecord } from './tcp_proxy.js';

/** Where an intercepted connection went: a service's cluster, straight through, or nowhere. */
export type DestinationKind = 'cluster' | 'passthrough' | 'refused';

/** What the front found for one outbound connection; `cluster` is set for kind 'cluster'. */
export interface Destination {
  readonly kind: DestinationKind;
  /** `ip:port` as addressed (IPv6 bracketed). */
  readonly address: string;
  readonly port: number;
  readonly cluster: string | null;
}

/** A socket the front or the inbound lookup has read the original destination of. */
export interface RoutedSocket extends net.Socket {
  /** Outbound: where it was addressed (undefined: not redirected). */
  destination?: Destination;
  /** Inbound: the local app port (null: not redirected; undefined: not read yet). */
  appPort?: number | null;
}

/** Connections of one listener on one worker by where their original destination sent them (/stats, /metrics). */
export class DestinationCounters {
  readonly byKind = new Map<DestinationKind, number>();

  count(kind: DestinationKind): void {
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1);
  }
}

/** Where an outbound connection addressed to `ip:port` goes under the listener's policy. */
export function outboundDestination(spec: OriginalDestinationSpec, ip: string, port: number): Destination {
  const address = ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
  const cluster = Object.hasOwn(spec.services, address) ? spec.services[address]! : null;
  if (cluster !== null) return { kind: 'cluster', address, port, cluster };
  return { kind: spec.outboundPolicy === 'allow_any' ? 'passthrough' : 'refused', address, port, cluster: null };
}

/** The front's hand-offs (the listener's): counts and logs are the front's, serving is theirs. */
export interface FrontTargets {
  /** Served by the listener: not redirected (destination undefined), to a service, or to be refused there. */
  serve(socket: RoutedSocket): void;
  /** A connection was refused (registry_only): logged once with its destination. */
  refused(socket: net.Socket, destination: Destination): void;
  /** A passthrough stream started: it counts in flight (a drain waits for it) until `passthroughEnded`. */
  passthroughStarted(): void;
  /** A passthrough stream is over (both sockets closed): its access log line. */
  passthroughEnded(record: TcpRecord): void;
}

/** The cluster name passthrough streams count and log under (Istio's PassthroughCluster). */
export const PASSTHROUGH = 'passthrough';

/** The listening socket of an outbound original_destination listener. */
export class OriginalDstFront extends FrontServer<PassthroughStream> {
  // `held`: passthrough streams connecting or spliced.
  /** Passthrough streams of this worker: opened by destination port, closed, bytes, durations, connect failures. */
  readonly passthrough = new TcpCounters();

  constructor(
    spec: ListenerSpec,
    readonly counters: DestinationCounters,
    private readonly ticker: Ticker,
    private readonly targets: FrontTargets,
  ) {
    // pauseOnConnect: nothing is read before the destination is known; allowHalfOpen: a spliced stream's half-close is passed on.
    super(spec, { allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
  }

  protected accept(socket: RoutedSocket): void {
    let dst: { address: string; port: number } | null;
    try {
      dst = originalDestinationOf(socket);
    } catch {
      // The socket is gone already (reset before it was read): nothing to route.
      socket.destroy();
      return;
    }
    if (dst !== null) {
      const d = outboundDestination(this.spec.originalDestination!, dst.address, dst.port);
      this.counters.count(d.kind);
      if (d.kind === 'passthrough') return this.passThrough(socket, d);
      socket.destination = d;
      if (d.kind === 'refused') this.targets.refused(socket, d);
    }
    this.targets.serve(socket);
  }

  /** allow_any: the bytes go to the address the app dialled, unchanged (Istio's PassthroughCluster). */
  private passThrough(client: net.Socket, d: Destination): void {
    const idleMs = this.spec.tcp?.idleTimeoutMs ?? this.spec.tcpFallback?.idleTimeoutMs ?? PASSTHROUGH_IDLE_MS;
    this.targets.passthroughStarted();
    const stream = new PassthroughStream(client, d, this.ticker, idleMs, this.passthrough, (record) => {
      this.held.delete(stream);
      this.targets.passthroughEnded(record);
    });
    this.held.add(stream);
  }
}

/** One passthrough stream: connecting to the original destination, then spliced; counted and recorded as a tcp connection. */
class PassthroughStream extends SplicedStream {
  protected readonly upstream: net.Socket;

  constructor(
    client: net.Socket,
    destination: Destination,
    ticker: Ticker,
    idleMs: number,
    private readonly counters: TcpCounters,
    private readonly onEnd: (record: TcpRecord) => void,
  ) {
    const clientAddress = `${client.remoteAddress}:${client.remotePort}`;
    super(client, ticker, { cluster: PASSTHROUGH, upstream: destination.address, client: clientAddress, peer: null, destinationPort: destination.port });
    const a = destination.address;
    const host = a.startsWith('[') ? a.slice(1, a.lastIndexOf(']')) : a.slice(0, a.lastIndexOf(':'));
    this.upstream = net.connect({ host, port: destination.port, allowHalfOpen: true, noDelay: true });
    client.on('error', noop);
    this.upstream.once('error', this.connectFailed);
    client.once('close', this.clientGone);
    this.upstream.once('connect', () => this.connected(idleMs));
  }

  private readonly connectFailed = (): void => this.fail('connect_failed');
  /** The client left before the destination answered: no stream. */
  private readonly clientGone = (): void => this.fail('closed');

  private connected(idleMs: number): void {
    this.upstream.off('error', this.connectFailed);
    this.client.off('close', this.clientGone);
    this.startSplice(idleMs, this.counters);
  }

  protected fail(why: TcpEnd): void {
    if (this.splice !== null || this.isDone) return;
    this.counters.refusedFor(why);
    this.closeUnspliced(why);
  }

  protected ended(record: TcpRecord): void {
    if (this.splice !== null) this.counters.closedAfter(record.durationMs);
    this.onEnd(record);
  }
}

/** A passthrough stream idle this long is closed, when the listener has no tcp idle timeout of its own (1 h, as tcp listeners). */
const PASSTHROUGH_IDLE_MS = 3_600_000;

/**
 * The routing an HTTP request on a connection addressed to service cluster `cluster` uses: the
 * listener's routes that send to that cluster alone (`cluster: <it>`), in order — Host, path,
 * headers, retries and timeouts apply within the service — then a catch-all to the cluster
 * itself. Routes to other clusters (or splits) are left out: the app dialled this service, so a
 * Host that matches another service's route must not move the request there (Istio routes an
 * intercepted connection by its destination service's virtual host the same way).
 */
export function outboundRouting(base: ListenerRouting, routes: readonly RouteSpec[], cluster: Cluster): ListenerRouting {
  const kept: CompiledRoute[] = [];
  const own = routes.filter((r) => r.action.kind === 'cluster' && r.action.cluster === cluster.spec.name);
  const filtered = buildRouter([...own, catchAll(base.name, cluster.spec.name)]);
  // The filtered router's routes carry their index in the listener's list (stats, access log); the catch-all's is past the end.
  const index = own.map((r) => routes.indexOf(r)).concat(routes.length);
  for (const r of filtered.routes) kept.push({ spec: r.spec, index: index[r.index]!, pickCluster: () => cluster.spec.name });
  const router: Router = {
    routes: kept,
    match: (method: string, host: string, path: string, header: HeaderLookup) => {
      const r = filtered.match(method, host, path, header);
      return r === null ? null : kept[r.index]!;
    },
  };
  const targets: RouteTarget[] = [...base.targets];
  targets[routes.length] = { cluster, rateLimit: null };
  return { name: base.name, router, targets, rateLimit: base.rateLimit };
}

/** The route a request to a service takes when none of the listener's routes to it matches: the cluster, with route defaults. */
function catchAll(listener: string, cluster: string): RouteSpec {
  const anyRequest = { host: null, path: null, pathPrefix: null, pathRegex: null, grpc: false, methods: null, headers: [] };
  return forwardingRoute(`${listener}/original_destination/${cluster}`, anyRequest, { kind: 'cluster', cluster }, 15_000);
}

/** registry_only refused this connection's destination: every request on it gets 403. */
export function refusedDestination(listener: string, d: Destination): ProxyError {
  return new ProxyError('destination_not_allowed', `listener ${listener}: ${d.address} is not a service address (outbound_policy: registry_only)`);
}

/**
 * Inbound: the local app port of a connection — its original destination's port (read once),
 * else `alpnPort`, the port a peer sidecar's tcp hop named (a connection dialled to the listener
 * itself); null when neither says. The original destination wins: it is the endpoint's own port,
 * where ALPN carries the port the client dialled (a service port may differ from its endpoints').
 */
export function inboundPort(socket: RoutedSocket, alpnPort: number | null = null): number | null {
  if (socket.appPort === undefined) {
    try {
      socket.appPort = originalDestinationOf(socket)?.port ?? null;
    } catch {
      socket.appPort = null; // the socket is gone: its request fails upstream of here anyway
    }
  }
  return socket.appPort ?? alpnPort;
}

/** SO_ORIGINAL_DST of a socket (a TLS socket's fd is its TCP socket's); null when not redirected. Throws when the fd is gone. */
function originalDestinationOf(socket: net.Socket): { address: string; port: number } | null {
  const fd = (socket as net.Socket & { _handle?: { fd?: number } })._handle?.fd ?? -1;
  return fd >= 0 ? originalDestination(fd) : null;
}

/**
 * Inbound: the local app's clusters, one per (route cluster, port), made on first use. Each keeps
 * the route cluster's spec it was made from: a reload that changes that cluster (or removes it)
 * drains its twins, any other reload keeps them and their pooled connections.
 */
export class LocalApps {
  private readonly byKey = new Map<string, { readonly template: ClusterSpec; readonly cluster: Cluster }>();

  constructor(
    private readonly ticker: Ticker,
    private readonly rng: Rng,
    private readonly tls: TlsProvider,
  ) {}

  /** The cluster that sends what `template` would send to 127.0.0.1:`port` instead of its endpoints. */
  cluster(template: ClusterSpec, port: number): Cluster {
    const key = `${template.name}\n${port}`;
    const app = this.byKey.get(key);
    if (app !== undefined && app.template === template) return app.cluster;
    app?.cluster.drain();
    const address = `127.0.0.1:${port}`;
    const spec: ClusterSpec = { ...template, endpoints: [{ address, host: '127.0.0.1', port, weight: 1 }], tls: null, healthCheck: null, outlier: null };
    const cluster = new Cluster(spec, this.ticker, this.rng, this.tls);
    this.byKey.set(key, { template, cluster });
    return cluster;
  }

  /** The routing of an inbound request to `port`: the listener's routes, each sending to its cluster's local-app twin. */
  routing(base: ListenerRouting, routes: readonly RouteSpec[], clusterOf: (name: string) => Cluster | undefined, port: number): ListenerRouting {
    const targets = routes.map((r, i): RouteTarget => {
      const name = r.action.kind === 'cluster' ? r.action.cluster : (r.action.split[0]?.cluster ?? '');
      const template = clusterOf(name);
      return { cluster: template === undefined ? null : this.cluster(template.spec, port), rateLimit: base.targets[i]?.rateLimit ?? null };
    });
    return { name: base.name, router: base.router, targets, rateLimit: base.rateLimit };
  }

  /**
   * A new config version: twins of route clusters whose spec changed or that are gone drain (new
   * ones are made from the new settings on next use); the others keep their connections.
   */
  keepCurrent(specOf: (name: string) => ClusterSpec | undefined): void {
    for (const [key, app] of this.byKey) {
      if (specOf(app.template.name) === app.template) continue;
      app.cluster.drain();
      this.byKey.delete(key);
    }
  }

  close(): void {
    for (const app of this.byKey.values()) app.cluster.close();
    this.byKey.clear();
  }
}

function noop(): void {}
