// A `protocol: tcp` listener inside one worker (issue 15): each accepted connection — plaintext,
// or mTLS with the peer's SPIFFE ID verified and authorized by `from` rules — goes to an endpoint
// of the listener's cluster (its LB, its circuit breaker counting connections, connect failures
// reported to outlier detection), over plaintext or, for a `tls` cluster, mTLS. Once connected the
// two sockets are spliced (splice.ts).
//
// The original destination port crosses the mesh in the TLS handshake: a client sidecar offers the
// ALPN protocol `outrigger-tcp/<port>` (the port its client connected to); a server sidecar's tcp
// listener selects it, records the port in its stats and access log, and still forwards to its own
// configured cluster. A client that offers ALPN without such a protocol is refused in the handshake.
//
// Protocol detection (`tcp_fallback` on a `protocol: auto` listener, detect.ts) hands a socket it
// has classified as opaque TCP to `accept()`. With `original_destination` (original_dst.ts) the
// listener's `clusterFor` hook picks the cluster per connection: the service's, the local app's.

import net from 'node:net';
import tls from 'node:tls';
import type { ListenerSpec } from '../config/types.js';
import { listenReusePort } from '../net/reuseport.js';
import { inboundPeer, IdentityMismatchError, listenerTlsOptions, type ServerTlsParams } from '../tls/contexts.js';
import type { TlsMaterial } from '../tls/material.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import { dialEndpoint } from '../upstream/dial.js';
import type { Ticker, Timed, TimerEntry } from '../upstream/ticker.js';
import { TryOutcome } from './exchange.js';
import { Splice, type SpliceBytes, type SpliceEnd } from './splice.js';

/** The ALPN protocol that carries the original destination port between sidecars. */
const ALPN_PREFIX = 'outrigger-tcp/';
export const ALPN_PORT = /^outrigger-tcp\/(\d{1,5})$/;

/** How a connection ended: as its splice ended, or why it never reached an endpoint. */
export type TcpEnd =
  | SpliceEnd
  | 'unauthorized'
  | 'overflow'
  | 'no_endpoint'
  | 'connect_failed'
  | 'connect_timeout'
  | 'identity_mismatch'
  | 'no_certificate'
  /** outbound_policy: registry_only refused the original destination. */
  | 'destination_not_allowed';

/** One finished connection, for the access log. */
export interface TcpRecord {
  readonly cluster: string;
  /** The endpoint it went to; null when refused before one was picked. */
  readonly upstream: string | null;
  /** The client's address:port. */
  readonly client: string;
  /** The mTLS peer's SPIFFE ID; null on plaintext. */
  readonly peer: string | null;
  /** The original destination port: the one this listener was reached on, or the one a client sidecar named in ALPN. */
  readonly destinationPort: number;
  /** Wall-clock start, ms since the epoch. */
  readonly startMs: number;
  readonly durationMs: number;
  readonly bytesFromClient: number;
  readonly bytesFromUpstream: number;
  readonly end: TcpEnd;
}

/** Counters of one tcp listener for one cluster on one worker (/stats and /metrics). */
export class TcpCounters implements SpliceBytes {
  /** Connections that reached an endpoint, by original destination port. */
  readonly openedByPort = new Map<number, number>();
  closed = 0;
  bytesFromClient = 0;
  bytesFromUpstream = 0;
  /** Sum of the durations of closed connections, seconds. */
  durationSeconds = 0;
  /** Connections closed without reaching an endpoint, by reason. */
  readonly refused = new Map<TcpEnd, number>();

  /** A connection reached its upstream (addressed to `port`). */
  opened(port: number): void {
    this.openedByPort.set(port, (this.openedByPort.get(port) ?? 0) + 1);
  }

  /** A spliced connection ended after `durationMs`. */
  closedAfter(durationMs: number): void {
    this.closed++;
    this.durationSeconds += durationMs / 1000;
  }

  /** A connection closed before it reached an upstream, for `why`. */
  refusedFor(why: TcpEnd): void {
    this.refused.set(why, (this.refused.get(why) ?? 0) + 1);
  }
}

/** What a tcp listener needs from the listener that owns it. */
export interface TcpListenerHooks {
  readonly ticker: Ticker;
  /**
   * The cluster a connection goes to: the listener's `name` unless its original destination
   * decides (`port`: the original destination port, null when the connection was not
   * redirected); undefined when there is none, null when its destination is refused.
   */
  clusterFor(client: net.Socket, name: string, port: number | null): Cluster | undefined | null;
  tlsMaterial(): TlsMaterial | null;
  onTryOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void;
  /** Whether the authorization rules let this peer in (true when there are none). */
  authorize(identity: string | null): boolean;
  accepted(): void;
  handshakeFailed(): void;
  /** A connection was admitted (it counts in flight until `ended`). */
  started(): void;
  ended(record: TcpRecord): void;
}

export class TcpListener {
  readonly server: net.Server;
  private spec: ListenerSpec;
  /** Connections connecting or spliced. */
  readonly open = new Set<TcpConnection>();
  /** By cluster name (a reload may point the listener at another cluster). */
  counters = new Map<string, TcpCounters>();

  constructor(
    spec: ListenerSpec,
    private readonly hooks: TcpListenerHooks,
    tlsParams: ServerTlsParams,
  ) {
    this.spec = spec;
    this.server = spec.tls === null ? this.plainServer() : this.tlsServer(spec, tlsParams);
    this.server.maxConnections = spec.maxConnections ?? Infinity;
  }

  private plainServer(): net.Server {
    // noDelay: a proxy must not add Nagle's wait to small request/response exchanges (redis, SQL).
    return net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (s) => {
      this.hooks.accepted();
      this.accept(s, null, null);
    });
  }

  private tlsServer(spec: ListenerSpec, params: ServerTlsParams): tls.Server {
    const mtls = spec.tls === 'mtls';
    const server = tls.createServer({
      ...listenerTlsOptions(spec.name, this.hooks.tlsMaterial(), params, spec.timeouts.handshakeMs),
      allowHalfOpen: true,
      noDelay: true,
      // Only our own protocol: the offered destination port (a client without ALPN is served too).
      ALPNCallback: ({ protocols }) => protocols.find((p) => ALPN_PORT.test(p)),
    });
    server.on('connection', () => this.hooks.accepted());
    server.on('tlsClientError', () => this.hooks.handshakeFailed());
    server.on('secureConnection', (s: tls.TLSSocket) => {
      s.pause();
      // Resumed or not: a verified client certificate, valid now, whose root vouches for its trust domain.
      const peer = mtls ? inboundPeer(s, this.hooks.tlsMaterial()) : null;
      if (peer !== null && !peer.ok) {
        this.hooks.handshakeFailed();
        s.destroy();
        return;
      }
      const offered = typeof s.alpnProtocol === 'string' ? ALPN_PORT.exec(s.alpnProtocol) : null;
      this.accept(s, peer?.identity ?? null, offered !== null ? Number(offered[1]) : null);
    });
    return server;
  }

  /**
   * Binds host:port on an SO_REUSEPORT socket (every worker binds it; the kernel spreads
   * connections); `inherit`: the listening fd of the listener this one replaces (reuseport.ts).
   */
  listen(inherit: number | null = null): Promise<number> {
    return listenReusePort(this.server, this.spec, inherit);
  }

  /** A new config version on the same socket: new connections use its cluster and idle timeout; open ones carry on. */
  configure(spec: ListenerSpec): void {
    this.spec = spec;
    this.server.maxConnections = spec.maxConnections ?? Infinity;
  }

  /**
   * This listener replaces `previous` (a reload re-bound it): both count into the same counters,
   * so the connections the old socket still carries count where /stats reads this listener's.
   */
  shareCounters(previous: TcpListener): void {
    this.counters = previous.counters;
  }

  setSecureContext(options: tls.SecureContextOptions): void {
    if (this.server instanceof tls.Server) this.server.setSecureContext(options);
  }

  countersOf(cluster: string): TcpCounters {
    let c = this.counters.get(cluster);
    if (c === undefined) {
      c = new TcpCounters();
      this.counters.set(cluster, c);
    }
    return c;
  }

  /**
   * A connection to forward (its identity checked on mTLS): authorized, admitted by the cluster's
   * circuit breaker, given an endpoint by its LB, then connected. A refusal closes it at once.
   * `originalPort`: the port the client addressed (a peer sidecar's ALPN, or the original
   * destination), null when not known (then the port this listener was reached on is recorded).
   */
  accept(client: net.Socket, peer: string | null, originalPort: number | null): void {
    const tcp = this.spec.tcp!;
    const destinationPort = originalPort ?? client.localPort ?? 0;
    let name = tcp.cluster;
    const refuse = (why: TcpEnd, cluster: Cluster | null = null): void => {
      this.countersOf(name).refusedFor(why);
      client.on('error', noop);
      client.destroy();
      cluster?.release();
      this.hooks.ended(refusedRecord(name, client, peer, destinationPort, why));
    };
    client.pause();
    this.hooks.started();
    if (this.spec.authorization !== null && !this.hooks.authorize(peer)) return refuse('unauthorized');
    const cluster = this.hooks.clusterFor(client, tcp.cluster, originalPort);
    if (cluster === null) return refuse('destination_not_allowed');
    if (cluster === undefined) return refuse('no_endpoint');
    name = cluster.spec.name;
    if (!cluster.admit(this.hooks.ticker.fresh())) return refuse('overflow');
    const endpoint = cluster.lb.pick(null);
    if (endpoint === null) return refuse('no_endpoint', cluster);
    const conn = new TcpConnection(client, peer, destinationPort, cluster, endpoint, tcp.idleTimeoutMs, this);
    this.open.add(conn);
  }

  /** TcpConnection's report: it is over (both sockets closed). */
  connectionEnded(conn: TcpConnection, record: TcpRecord): void {
    this.open.delete(conn);
    const c = this.countersOf(record.cluster);
    // Bytes were counted as they passed (splice.ts).
    if (conn.spliced) c.closedAfter(record.durationMs);
    else c.refusedFor(record.end);
    this.hooks.ended(record);
  }

  get ticker(): Ticker {
    return this.hooks.ticker;
  }

  reportOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void {
    this.hooks.onTryOutcome(cluster, endpoint, outcome);
  }

  stopAccepting(): void {
    this.server.close();
  }

  /** Closes every connection now (the drain grace period is over, or the worker is closing). */
  closeAll(): void {
    this.server.close();
    for (const c of this.open) c.destroy();
  }
}

/** What a stream's record says of where it went; the stream itself adds its timing, bytes and end. */
export type StreamRoute = Pick<TcpRecord, 'cluster' | 'upstream' | 'client' | 'peer' | 'destinationPort'>;

/**
 * One proxied TCP stream, whoever opened it (a tcp listener's connection to an endpoint, an
 * original_destination passthrough): connecting, then spliced, then ended once with its record.
 * The subclass dials `upstream` and decides what a failure before the splice means.
 */
export abstract class SplicedStream {
  protected abstract readonly upstream: net.Socket;
  protected splice: Splice | null = null;
  private readonly startMs = Date.now();
  protected readonly startMono: number;
  private done = false;

  constructor(
    protected readonly client: net.Socket,
    protected readonly ticker: Ticker,
    private readonly route: StreamRoute,
  ) {
    this.startMono = ticker.fresh();
  }

  get spliced(): boolean {
    return this.splice !== null;
  }

  /** The stream has ended (its record was handed over). */
  protected get isDone(): boolean {
    return this.done;
  }

  /** Both sockets are up: counted as opened, then bytes flow until either side ends the splice. */
  protected startSplice(idleMs: number, counters: TcpCounters): void {
    counters.opened(this.route.destinationPort);
    this.splice = new Splice(this.client, this.upstream, this.ticker, idleMs, counters, (sp) =>
      this.finish(sp.ending, sp.bytesFromClient, sp.bytesFromUpstream),
    );
  }

  /** Before the splice: both sockets close and the stream ends as `why`. */
  protected closeUnspliced(why: TcpEnd): void {
    this.upstream.destroy();
    this.client.destroy();
    this.finish(why, 0, 0);
  }

  /** Before the splice, the stream could not be made (or the client left). */
  protected abstract fail(why: TcpEnd): void;

  /** The stream is over (both sockets closed); called once. */
  protected abstract ended(record: TcpRecord): void;

  private finish(end: TcpEnd, bytesFromClient: number, bytesFromUpstream: number): void {
    if (this.done) return;
    this.done = true;
    const durationMs = Math.round((this.ticker.fresh() - this.startMono) * 1000) / 1000;
    this.ended({ ...this.route, startMs: this.startMs, durationMs, bytesFromClient, bytesFromUpstream, end });
  }

  /** Closes both sides now (the drain grace period is over, or the worker is closing). */
  destroy(): void {
    if (this.splice !== null) this.splice.destroy();
    else this.fail('closed_by_proxy');
  }
}

/** One accepted connection: connecting to its endpoint, then spliced. */
class TcpConnection extends SplicedStream implements Timed {
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  protected readonly upstream: net.Socket;
  private failure: TcpEnd | null = null;

  constructor(
    client: net.Socket,
    peer: string | null,
    destinationPort: number,
    private readonly cluster: Cluster,
    private readonly endpoint: Endpoint,
    private readonly idleTimeoutMs: number,
    private readonly owner: TcpListener,
  ) {
    super(client, owner.ticker, { cluster: cluster.spec.name, upstream: endpoint.address, client: addressOf(client), peer, destinationPort });
    endpoint.tryStarted();
    client.on('error', noop);
    client.once('close', this.clientGone);
    this.upstream = this.connect(destinationPort);
    const timeout = cluster.spec.pool.connectTimeoutMs;
    if (timeout > 0) {
      this.deadline = this.startMono + timeout;
      owner.ticker.add(this);
    }
  }

  private connect(destinationPort: number): net.Socket {
    const dialed = dialEndpoint(this.endpoint.pool, () => this.connected(), [`${ALPN_PREFIX}${destinationPort}`]);
    if (dialed === null) process.nextTick(() => this.fail('no_certificate')); // mTLS without a certificate yet: nothing goes out in plaintext
    const s = dialed ?? new net.Socket();
    s.on('error', this.connectError);
    s.once('close', this.upstreamGone);
    return s;
  }

  private readonly connectError = (err: Error): void => {
    this.fail(err instanceof IdentityMismatchError ? 'identity_mismatch' : 'connect_failed');
  };

  private readonly clientGone = (): void => {
    // The client left before the upstream connection was made: no stream.
    if (this.splice === null) this.fail('closed');
  };

  private readonly upstreamGone = (): void => {
    if (this.splice === null) this.fail('connect_failed');
  };

  private connected(): void {
    if (this.failure !== null) return;
    this.owner.ticker.delete(this);
    this.deadline = 0;
    this.owner.reportOutcome(this.cluster, this.endpoint, TryOutcome.Success);
    this.endpoint.reached();
    this.upstream.off('error', this.connectError);
    this.upstream.off('close', this.upstreamGone);
    this.client.off('close', this.clientGone);
    this.startSplice(this.idleTimeoutMs, this.owner.countersOf(this.cluster.spec.name));
  }

  protected fail(why: TcpEnd): void {
    if (this.failure !== null || this.splice !== null) return;
    this.failure = why;
    this.owner.ticker.delete(this);
    if (why !== 'closed' && why !== 'no_certificate') this.owner.reportOutcome(this.cluster, this.endpoint, TryOutcome.Gateway);
    // As for HTTP (cluster.ts, Endpoint): out of this worker's balancing until a probe reaches it.
    if (why === 'connect_failed' || why === 'connect_timeout') this.endpoint.connectFailed();
    this.closeUnspliced(why);
  }

  protected ended(record: TcpRecord): void {
    this.endpoint.tryEnded();
    this.cluster.release();
    this.owner.connectionEnded(this, record);
  }

  /** The connect timeout. */
  onDeadline(): void {
    this.deadline = 0;
    this.fail('connect_timeout');
  }
}

function refusedRecord(cluster: string, client: net.Socket, peer: string | null, destinationPort: number, end: TcpEnd): TcpRecord {
  return {
    cluster,
    upstream: null,
    client: addressOf(client),
    peer,
    destinationPort,
    startMs: Date.now(),
    durationMs: 0,
    bytesFromClient: 0,
    bytesFromUpstream: 0,
    end,
  };
}

function addressOf(s: net.Socket): string {
  return s.remoteFamily === 'IPv6' ? `[${s.remoteAddress}]:${s.remotePort}` : `${s.remoteAddress}:${s.remotePort}`;
}

function noop(): void {}
