// The `strict` listener engine's server: a net.Server (plaintext) or tls.Server (`tls:`
// listeners) whose connections run our own HTTP/1.1 request loop (connection.ts) instead of
// node:http. Per listener, per worker; listened on the worker's SO_REUSEPORT fd like the node
// engine. TLS: the peer check runs on 'secureConnection' before any byte is read, as on the node
// engine (a refused peer is counted and dropped); handshake_ms is node:tls's handshakeTimeout.
// A connection whose client sidecar chose ALPN PIPELINE_ALPN (offered on mTLS listeners only,
// listener.ts) is served pipelined.

import net from 'node:net';
import tls from 'node:tls';
import type { ListenerSpec } from '../../config/types.js';
import type { ProxyError } from '../../errors.js';
import { PIPELINE_ALPN } from '../../net/alpn.js';
import { takeOverReads } from '../../net/user_buffer.js';
import type { Ticker } from '../../upstream/ticker.js';
import { H1Connection, READ_BUFFER, Reads, type H1Host, type H1Settings } from './connection.js';
import type { StrictDownstream } from './downstream.js';
import type { ParsedHead } from './parse.js';
import { sniffPreface } from '../h2/preface.js';

/** The listener's side: where requests go, and its counters. */
export interface StrictHandlers {
  request(down: StrictDownstream, head: ParsedHead): void;
  refused(err: ProxyError, requestId: string): void;
  accepted(): void;
}

/**
 * HTTP/2 beside HTTP/1.1 on the same listener (`protocol: auto | http2`): which connections go to
 * the listener's HTTP/2 server (h2/server.ts), after the same accept, limits and TLS peer check.
 */
export interface StrictH2 {
  /** `http2`: every connection; `auto`: plaintext ones that start with the preface, TLS ones that chose ALPN h2. */
  readonly only: boolean;
  handoff(socket: net.Socket, peer: string | null): void;
}

/** TLS termination for the strict engine. */
export interface StrictTls {
  readonly options: tls.TlsOptions;
  /** After the handshake: the peer's identity (null without client certificates), or false to refuse the connection. */
  peer(socket: tls.TLSSocket): string | null | false;
  /** A handshake or peer check failed. */
  failed(): void;
  /** After the peer check: true when another protocol took the connection (detect.ts: ALPN outrigger-tcp/<port>). */
  claimed?(socket: tls.TLSSocket, peer: string | null): boolean;
}

export function strictSettings(spec: ListenerSpec): H1Settings {
  return {
    maxHeadBytes: spec.maxRequestHeadersBytes,
    headersMs: spec.timeouts.headersMs,
    bodyIdleMs: spec.timeouts.bodyIdleMs,
    keepaliveIdleMs: spec.timeouts.keepaliveIdleMs,
    detail: spec.errorDetail,
  };
}

export class StrictServer implements H1Host {
  readonly server: net.Server;
  readonly settings: H1Settings;
  private readonly conns = new Set<H1Connection>();
  private stopping = false;
  private shut = false;

  constructor(
    spec: ListenerSpec,
    readonly ticker: Ticker,
    private readonly handlers: StrictHandlers,
    tlsSetup: StrictTls | null,
    h2: StrictH2 | null = null,
  ) {
    this.settings = strictSettings(spec);
    if (tlsSetup === null) {
      // HTTP/1 connections read into the thread's READ_BUFFER (connection.ts), which must be
      // arranged before the socket reads: accepted paused. HTTP/2-only ones go to node:http2 as they are.
      const h1 = h2 === null || !h2.only;
      this.server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: h1 }, (socket) => {
        handlers.accepted();
        if (h2 === null) {
          this.open(socket, null, false, Reads.Buffer);
        } else if (h2.only) {
          h2.handoff(socket, null);
        } else {
          // The one check per connection that `protocol: auto` costs HTTP/1: a look at its first bytes.
          sniffPreface(
            socket,
            this.settings.headersMs,
            (s) => h2.handoff(s, null),
            (s, first) => this.openSniffed(s, first),
            READ_BUFFER,
          );
        }
      });
    } else {
      const server = tls.createServer({ ...tlsSetup.options, allowHalfOpen: true });
      server.on('connection', (socket: net.Socket) => {
        socket.setNoDelay(true);
        handlers.accepted();
      });
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        const peer = tlsSetup.peer(socket);
        if (peer === false) {
          tlsSetup.failed();
          socket.destroy();
          return;
        }
        if (tlsSetup.claimed?.(socket, peer) === true) return;
        if (h2 !== null && (h2.only || socket.alpnProtocol === 'h2')) h2.handoff(socket, peer);
        else this.openTls(socket, peer, peer !== null && socket.alpnProtocol === PIPELINE_ALPN);
      });
      server.on('tlsClientError', (_err: Error, socket: tls.TLSSocket) => {
        tlsSetup.failed();
        socket.destroy();
      });
      this.server = server;
    }
    if (spec.maxConnections !== null) this.server.maxConnections = spec.maxConnections;
  }

  /**
   * Serves an accepted connection. One accepted before the listener stopped whose handshake or
   * preface check ended after is served too, as a draining connection (its first request, then
   * Connection: close): its client connected to a listening socket and may have sent a request.
   * After closeAll nothing is served.
   */
  private open(socket: net.Socket, peer: string | null, pipelined = false, reads = Reads.Events): H1Connection | null {
    if (this.shut) {
      socket.destroy();
      return null;
    }
    const conn = new H1Connection(socket, this, peer, pipelined, reads);
    this.conns.add(conn);
    if (this.stopping) conn.drain();
    return conn;
  }

  /** A TLS connection after its handshake: its cleartext reads land in READ_BUFFER from now on. */
  private openTls(socket: tls.TLSSocket, peer: string | null, pipelined: boolean): void {
    const early = takeOverReads(socket, READ_BUFFER, noop);
    if (early === false) {
      this.open(socket, peer, pipelined);
      return;
    }
    const conn = this.open(socket, peer, pipelined, Reads.Redirect);
    if (early !== null) conn?.onData(early);
  }

  /**
   * An HTTP/1 connection after the preface check: reading into READ_BUFFER with `first` its
   * first bytes, or (null) paused with them put back.
   */
  private openSniffed(socket: net.Socket, first: Buffer | null): void {
    if (first === null) {
      this.open(socket, null);
      socket.resume();
    } else {
      this.open(socket, null, false, Reads.Redirect)?.onData(first);
    }
  }

  request(down: StrictDownstream, head: ParsedHead): void {
    this.handlers.request(down, head);
  }

  refused(err: ProxyError, requestId: string): void {
    this.handlers.refused(err, requestId);
  }

  closed(conn: H1Connection): void {
    this.conns.delete(conn);
  }

  /** A new config version for the same listener: limits and timeouts apply at once. */
  configure(spec: ListenerSpec): void {
    Object.assign(this.settings, strictSettings(spec));
    this.server.maxConnections = spec.maxConnections ?? Infinity;
  }

  /** New certificate material: new handshakes use it; open connections carry on. */
  setSecureContext(options: tls.SecureContextOptions): void {
    if (this.server instanceof tls.Server) this.server.setSecureContext(options);
  }

  /** Stops accepting; connections between requests close now, busy ones after their current response, fresh ones after their first (H1Connection.drain). */
  stopAccepting(): void {
    this.stopping = true;
    this.server.close();
    for (const c of this.conns) c.drain();
  }

  /** Closes the listen socket and every connection now. */
  closeAll(): void {
    this.stopping = true;
    this.shut = true;
    this.server.close();
    for (const c of this.conns) c.destroy();
    this.conns.clear();
  }
}

function noop(): void {}
