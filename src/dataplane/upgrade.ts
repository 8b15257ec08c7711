// HTTP/1.1 Upgrade (WebSocket) through the sidecar, as Envoy's upgrade_configs do it: the upgrade
// request was routed, authorized and admitted like any request; here it goes to the picked
// endpoint over a dedicated connection (never pooled; mTLS when the cluster has `tls`), and once
// the upstream answers 101 the two sockets become an opaque tunnel (splice.ts, shared with raw
// TCP): bytes piped both ways unchanged, with backpressure, half-close, resets and an idle
// timeout. Any other answer reaches the client as the upstream sent it, and the client connection
// then closes. On the uws engine the client side is not a socket but uws_websocket.ts's adapter,
// which re-encodes those bytes as uWS WebSocket messages.
// Touches only the two sockets it is given, the endpoint's in-flight count and the cluster's
// admission (released when the tunnel ends).

import net from 'node:net';
import { ProxyError } from '../errors.js';
import { IdentityMismatchError } from '../tls/contexts.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import { dialEndpoint, NETWORK_ERRORS } from '../upstream/dial.js';
import { noCertificate } from '../upstream/endpoint_pool_base.js';
import type { Ticker, Timed, TimerEntry } from '../upstream/ticker.js';
import { TryOutcome } from './exchange.js';
import { ChunkedDecoder, type ChunkSink } from './h1/chunked.js';
import { httpDate } from './h1/downstream.js';
import { localReply, localReplyBytes } from './local_reply.js';
import type { RequestHead } from './request_head.js';
import { Splice, type SpliceSocket } from './splice.js';
import type { WsCounters } from './uws_websocket.js';

/** The Upgrade header's value when one of its protocols is `websocket` (RFC 6455 §4.1), else null. */
export function webSocketUpgrade(headers: readonly string[]): string | null {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'upgrade') continue;
    const value = headers[i + 1]!;
    for (const p of value.split(',')) if (p.trim().toLowerCase().split('/')[0] === 'websocket') return value;
  }
  return null;
}

/** Whether the Connection header lists `upgrade` (RFC 9110 §7.8: an Upgrade header counts only then). */
export function connectionUpgrade(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'connection') continue;
    for (const t of headers[i + 1]!.split(',')) if (t.trim().toLowerCase() === 'upgrade') return true;
  }
  return false;
}

/**
 * The upstream head of an upgrade request: the ordinary upstream head (buildUpstreamHead drops
 * Connection and Upgrade as hop-by-hop) with the two put back, since this hop upgrades too.
 */
export function upgradeHead(head: string, upgrade: string): string {
  return `${head.slice(0, -2)}connection: upgrade\r\nupgrade: ${upgrade}\r\n\r\n`;
}

/** Upgraded connections of one listener on one worker: the open tunnels and the counters /stats and /metrics read. */
export class Upgrades implements WsCounters {
  readonly open = new Set<Tunnel>();
  /** Tunnels opened (upstream answered 101) and closed since this listener started. */
  opened = 0;
  closed = 0;
  bytesFromClient = 0;
  bytesFromUpstream = 0;
  /** uws engine: clients closed with 1013 because the upstream did not read what they sent (uws_websocket.ts). */
  clientOverflows = 0;

  /** Closes every tunnel now (the worker is closing, or the drain grace period is over). */
  closeAll(): void {
    for (const t of this.open) t.destroy();
  }
}

/** What a tunnel reports to its listener. */
export interface TunnelOwner {
  readonly ticker: Ticker;
  readonly upgrades: Upgrades;
  /** How the endpoint answered the upgrade (passive outlier detection, as a try of an exchange). */
  upgradeOutcome(cluster: Cluster, endpoint: Endpoint, outcome: TryOutcome): void;
  /** The upgrade failed before the upstream answered (the client got a local reply with `err`). */
  upgradeFailed(err: ProxyError, req: UpgradeRequest): void;
  /**
   * The tunnel (or the attempt) is over: both sockets are closed and the admission released.
   * `record` is what the access log writes when the upstream answered (a failure before its
   * answer was reported by upgradeFailed, as a local reply); null otherwise.
   */
  upgradeEnded(record: UpgradeRecord | null): void;
}

/** An answered upgrade, when it ends: one access log line (the request, the answer's status, its bytes both ways). */
export interface UpgradeRecord {
  readonly req: UpgradeRequest;
  readonly cluster: string;
  readonly upstream: string;
  /** The upstream's answer: 101, or the status it relayed instead. */
  readonly status: number;
  /** From the start of the upgrade to the close of both sockets, ms. */
  readonly durationMs: number;
  readonly bytesFromClient: number;
  readonly bytesFromUpstream: number;
}

/** One upgrade request, ready to go upstream. */
export interface UpgradeRequest {
  readonly head: RequestHead;
  readonly routeIndex: number;
  /** The upstream head (upgradeHead()): latin1 text, as the strict and node engines decoded it. */
  readonly upstreamHead: string;
  /** `routes[].websocket.idle_timeout_ms`; 0 = never. */
  readonly idleTimeoutMs: number;
  /** node.error_detail: full. */
  readonly detail: boolean;
}

const enum St {
  Connecting,
  /** The request went out; waiting for the upstream's response head. */
  AwaitingHead,
  /** 101: bytes flow both ways. */
  Open,
  /** Any other answer: relayed to the client as it comes, then the client connection closes. */
  Relaying,
  Closed,
}

/** A response head larger than this is refused (502), as the pooled connections' parser does. */
const MAX_RESPONSE_HEAD = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})/;

export class Tunnel implements Timed, ChunkSink {
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  private st = St.Connecting;
  /** After the 101: the two sockets as one byte stream. */
  private splice: Splice | null = null;
  private readonly upstream: net.Socket;
  /** Response bytes read while waiting for the end of the head. */
  private headBuf: Buffer | null = null;
  /** Time of the last byte either way (idle timeout), on the ticker's clock. */
  private lastActive = 0;
  /** Relaying a non-101 answer: body bytes still to come (-1: until the upstream closes), or its chunked decoder. */
  private relayLeft = -1;
  private relayChunks: ChunkedDecoder | null = null;
  private clientClosed = false;
  private upstreamClosed = false;
  /** The client sent FIN before the 101: passed on once the tunnel opens. */
  private clientEndedEarly = false;
  /** The upstream answered 101 (counted in `opened`, so also in `closed` when it ends). */
  private wasOpen = false;
  /** The upstream's answer (0: none yet, or the upgrade failed before it); for the access log. */
  private answered = 0;
  /** Bytes of this tunnel each way, and when it started (ticker clock), for the access log. */
  private bytesFromClient = 0;
  private bytesFromUpstream = 0;
  private readonly startMs: number;

  /**
   * Starts the upgrade: connects to `endpoint` and sends `req.head`. `early`: bytes the client sent
   * after the request head, held until the upstream's 101. The client socket is paused until then.
   * `client` is the accepted socket (strict, node engines) or the uws engine's WebSocket adapter.
   */
  constructor(
    private readonly client: SpliceSocket,
    private early: Buffer | null,
    private readonly req: UpgradeRequest,
    private readonly cluster: Cluster,
    private readonly endpoint: Endpoint,
    private readonly owner: TunnelOwner,
  ) {
    this.startMs = owner.ticker.fresh();
    client.pause();
    client.setTimeout(0);
    client.on('data', this.fromClient);
    client.on('end', this.clientEnded);
    client.on('close', this.clientClose);
    client.on('error', noop); // 'close' follows
    client.on('drain', this.clientDrained);
    this.upstream = this.connect();
    owner.upgrades.open.add(this);
    endpoint.tryStarted();
    const timeout = cluster.spec.pool.connectTimeoutMs;
    if (timeout > 0) this.arm(owner.ticker.fresh() + timeout);
  }

  private connect(): net.Socket {
    const dialed = dialEndpoint(this.endpoint.pool, () => this.connected());
    if (dialed === null) process.nextTick(() => this.fail(noCertificate())); // mTLS without a certificate yet: nothing goes out in plaintext
    const s = dialed ?? new net.Socket();
    s.on('data', this.fromUpstream);
    s.on('end', this.upstreamEnded);
    s.on('close', this.upstreamClose);
    s.on('error', this.upstreamError);
    s.on('drain', this.upstreamDrained);
    return s;
  }

  private get at(): string {
    return `cluster ${this.cluster.spec.name} endpoint ${this.endpoint.address}`;
  }

  private connected(): void {
    if (this.st !== St.Connecting) return;
    this.st = St.AwaitingHead;
    this.upstream.write(this.req.upstreamHead, 'latin1');
    // Until the head arrives the route's idle timeout bounds the wait (the connect timeout did so far).
    this.touch();
  }

  // ---- upstream → client ------------------------------------------------------------------------

  // The socket listeners until the 101 (then splice.ts takes both sockets over): named, to be removed.
  private readonly fromUpstream = (d: Buffer): void => {
    this.touch();
    this.bytesFromUpstream += d.length; // every byte the upstream sent: its answer's head too
    switch (this.st) {
      case St.AwaitingHead:
        this.readHead(d);
        return;
      case St.Relaying:
        this.relay(d);
        return;
    }
  };

  private readonly upstreamDrained = (): void => {
    this.client.resume();
  };

  private readonly clientDrained = (): void => {
    this.upstream.resume();
  };

  private readHead(d: Buffer): void {
    const b = this.headBuf === null ? d : Buffer.concat([this.headBuf, d]);
    const end = b.indexOf(CRLFCRLF);
    if (end < 0) {
      if (b.length > MAX_RESPONSE_HEAD)
        this.fail(new ProxyError('upstream_protocol_error', `${this.at}: response head larger than ${MAX_RESPONSE_HEAD} bytes`));
      else this.headBuf = b;
      return;
    }
    this.headBuf = null;
    const headText = b.toString('latin1', 0, end + 4);
    const m = STATUS_LINE.exec(headText);
    if (m === null) {
      this.fail(new ProxyError('upstream_protocol_error', `${this.at}: malformed response to an upgrade request`));
      return;
    }
    const status = Number(m[1]);
    this.endpoint.reached();
    this.owner.upgradeOutcome(this.cluster, this.endpoint, outcomeOf(status));
    this.answered = status;
    if (status === 101) this.open(b);
    else this.startRelay(headText, b, end + 4, status);
  }

  /** The upstream switched protocols: its head (and whatever followed it) goes to the client, then both directions flow. */
  private open(received: Buffer): void {
    this.st = St.Open;
    this.wasOpen = true;
    const up = this.owner.upgrades;
    up.opened++;
    // The client gets exactly the bytes of the upstream's 101 and of what followed it.
    up.bytesFromUpstream += received.length;
    this.client.write(received);
    // From here the two sockets are one byte stream (splice.ts: backpressure, half-close, resets, idle timeout).
    this.owner.ticker.delete(this);
    this.deadline = 0;
    this.detach();
    const early = this.early;
    this.early = null;
    if (early !== null && early.length > 0) {
      up.bytesFromClient += early.length;
      this.bytesFromClient += early.length;
      this.upstream.write(early);
    }
    this.splice = new Splice(this.client, this.upstream, this.owner.ticker, this.req.idleTimeoutMs, up, (sp) => this.spliceEnded(sp));
    // A FIN the client sent before the 101 is passed on now.
    if (this.clientEndedEarly) this.upstream.end();
  }

  /** Removes the listeners of the upgrade phase from both sockets (the splice adds its own). */
  private detach(): void {
    const { client, upstream } = this;
    client.off('data', this.fromClient).off('end', this.clientEnded).off('close', this.clientClose).off('drain', this.clientDrained);
    upstream
      .off('data', this.fromUpstream)
      .off('end', this.upstreamEnded)
      .off('close', this.upstreamClose)
      .off('error', this.upstreamError)
      .off('drain', this.upstreamDrained);
  }

  /** The splice is over: both sockets are closed. */
  private spliceEnded(sp: Splice): void {
    this.bytesFromClient += sp.bytesFromClient;
    this.bytesFromUpstream += sp.bytesFromUpstream;
    this.clientClosed = true;
    this.upstreamClosed = true;
    this.maybeEnded();
  }

  /**
   * Not 101: the answer is relayed as it is (head and body) and the client connection closes
   * after it — at its Content-Length, at the end of its chunked body, or when the upstream closes.
   */
  private startRelay(headText: string, received: Buffer, bodyAt: number, status: number): void {
    this.st = St.Relaying;
    this.early = null;
    const length = /\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n/i.exec(headText);
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) this.relayLeft = 0;
    else if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(headText)) this.relayChunks = new ChunkedDecoder(MAX_RESPONSE_HEAD);
    else if (length !== null) this.relayLeft = Number(length[1]);
    this.client.write(received.subarray(0, bodyAt));
    if (bodyAt < received.length) this.relay(received.subarray(bodyAt));
    else if (this.relayLeft === 0) this.relayDone();
  }

  private relay(d: Buffer): void {
    if (this.relayChunks !== null) {
      const dec = this.relayChunks;
      const p = dec.decode(d, 0, d.length, this, never);
      this.client.write(p === d.length ? d : d.subarray(0, p));
      if (dec.done || dec.failed) this.relayDone();
      return;
    }
    if (this.relayLeft < 0) {
      if (!this.client.write(d)) this.upstream.pause();
      return;
    }
    const n = Math.min(this.relayLeft, d.length);
    this.relayLeft -= n;
    this.client.write(n === d.length ? d : d.subarray(0, n));
    if (this.relayLeft === 0) this.relayDone();
  }

  /** ChunkSink: a relayed chunked body's data (already written with its framing). */
  chunkData(_data: Buffer): void {}

  private relayDone(): void {
    this.st = St.Closed;
    this.upstream.destroy();
    this.client.end();
    this.client.destroySoon();
  }

  private readonly upstreamEnded = (): void => {
    if (this.st === St.Relaying) this.relayDone();
    else if (this.st !== St.Closed) this.fail(new ProxyError('upstream_reset', `${this.at} closed the connection before answering the upgrade`));
  };

  private readonly upstreamError = (err: NodeJS.ErrnoException): void => {
    if (this.st === St.Relaying || this.st === St.Closed) return; // 'close' follows
    const code = err.code ?? 'ERR';
    if (err instanceof IdentityMismatchError) this.fail(new ProxyError('upstream_identity_mismatch', `${this.at}: ${err.detail}`));
    else if (this.st === St.Connecting) this.connectFailed(`connect to ${this.at} failed: ${code}`, NETWORK_ERRORS.has(code));
    else this.fail(new ProxyError('upstream_reset', `${this.at} failed before answering the upgrade: ${code}`));
  };

  private readonly upstreamClose = (): void => {
    this.upstreamClosed = true;
    if (this.st === St.Relaying) this.relayDone();
    else if (this.st < St.Open) this.fail(new ProxyError('upstream_reset', `${this.at} closed the connection before answering the upgrade`));
    this.maybeEnded();
  };

  // ---- client → upstream ------------------------------------------------------------------------

  private readonly fromClient = (d: Buffer): void => {
    // Before the 101 the socket is paused: only what was read with the head can land here.
    this.early = this.early === null ? d : Buffer.concat([this.early, d]);
  };

  private readonly clientEnded = (): void => {
    this.clientEndedEarly = true;
  };

  private readonly clientClose = (): void => {
    this.clientClosed = true;
    if (this.st < St.Open) this.st = St.Closed; // the client gave up: no tunnel
    if (!this.upstreamClosed) this.upstream.destroy();
    this.maybeEnded();
  };

  // ---- ending -----------------------------------------------------------------------------------

  /**
   * The connect failed. Refused or timed out (`unreachable`, not a TLS refusal): the endpoint leaves
   * this worker's balancing until a probe reaches it, as for an exchange's try (cluster.ts, Endpoint).
   */
  private connectFailed(why: string, unreachable: boolean): void {
    if (unreachable) this.endpoint.connectFailed();
    this.fail(new ProxyError('upstream_connect_failed', why));
  }

  /** Before the 101: the client gets a local reply for `err` and the connection closes. */
  private fail(err: ProxyError): void {
    if (this.st >= St.Open) return;
    const reachedUpstream = this.st !== St.Closed; // Closed here: the client had gone before the answer
    this.st = St.Closed;
    this.upstream.destroy();
    if (reachedUpstream) this.owner.upgradeOutcome(this.cluster, this.endpoint, TryOutcome.Gateway);
    this.owner.upgradeFailed(err, this.req);
    if (!this.clientClosed && this.client.writable) {
      const id = this.req.head.requestId;
      this.client.end(localReplyBytes(localReply(err, id, this.req.detail), httpDate(), true), 'latin1');
      this.client.destroySoon();
    } else {
      this.client.destroy();
    }
  }

  /** Both sockets closed: the tunnel is over. */
  private maybeEnded(): void {
    if (!this.clientClosed || !this.upstreamClosed || !this.owner.upgrades.open.delete(this)) return;
    this.st = St.Closed;
    this.owner.ticker.delete(this);
    this.endpoint.tryEnded();
    this.cluster.release();
    if (this.wasOpen) this.owner.upgrades.closed++;
    this.owner.upgradeEnded(
      this.answered === 0
        ? null
        : {
            req: this.req,
            cluster: this.cluster.spec.name,
            upstream: this.endpoint.address,
            status: this.answered,
            durationMs: this.owner.ticker.fresh() - this.startMs,
            bytesFromClient: this.bytesFromClient,
            bytesFromUpstream: this.bytesFromUpstream,
          },
    );
  }

  /** Closes both sockets now (idle timeout, drain grace period over, worker closing). */
  destroy(): void {
    if (this.splice !== null) {
      this.splice.destroy();
      return;
    }
    if (this.st < St.Open) this.st = St.Closed;
    this.client.destroy();
    this.upstream.destroy();
  }

  // ---- idle timeout -------------------------------------------------------------------------------

  private touch(): void {
    const idle = this.req.idleTimeoutMs;
    if (idle === 0) {
      if (this.deadline !== 0) this.arm(0);
      return;
    }
    this.lastActive = this.owner.ticker.now;
    if (this.deadline === 0 || this.st === St.AwaitingHead) this.arm(this.lastActive + idle);
  }

  private arm(deadline: number): void {
    this.deadline = deadline;
    this.owner.ticker.add(this);
  }

  onDeadline(now: number): void {
    if (this.st === St.Connecting) {
      this.connectFailed(`connect to ${this.at} timed out`, true);
      return;
    }
    const due = this.lastActive + this.req.idleTimeoutMs;
    if (now < due) {
      this.arm(due); // activity since it was armed: the timer moves, no work per byte
      return;
    }
    this.deadline = 0;
    if (this.st === St.AwaitingHead) this.fail(new ProxyError('timeout', `${this.at} did not answer the upgrade in time`));
    else this.destroy();
  }
}

/** The outcome of an answered upgrade, by its status, as an exchange's try would report it. */
function outcomeOf(status: number): TryOutcome {
  if (status === 502 || status === 503 || status === 504) return TryOutcome.Gateway;
  return status >= 500 ? TryOutcome.Error5xx : TryOutcome.Success;
}

function never(): boolean {
  return false;
}

function noop(): void {}
