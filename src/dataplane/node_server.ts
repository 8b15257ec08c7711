// The `node` engine of a listener: node:http (or node:https) with Node's strict llhttp parser,
// the engine TLS listeners always use. It parses and checks each request, then hands it to its
// listener (listener.ts), which owns routing, admission and the exchange; a refusal is answered here.

import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerSpec } from '../config/types.js';
import { ProxyError } from '../errors.js';
import { inboundPeer } from '../tls/contexts.js';
import type { TlsMaterial } from '../tls/material.js';
import type { ListenerRouting } from './admission.js';
import type { Downstream } from './downstream.js';
import { httpDate } from './h1/downstream.js';
import { sniffPreface } from './h2/preface.js';
import type { LazyH2 } from './h2/lazy.js';
import { localReply, localReplyBytes } from './local_reply.js';
import { downstreamOf, NodeDownstream } from './node_downstream.js';
import { BodyFraming, readNodeRequestHead, refusalRequestId, type RequestHead, type UnderscorePolicy } from './request_head.js';
import type { SpliceSocket } from './splice.js';

const NON_ASCII = /[\x80-\xff]/;

/** Node-engine sockets carry the peer's SPIFFE ID (TLS, read once per connection) and whether a request on them was refused. */
export interface PeerSocket extends TLSSocket {
  peerIdentity?: string | null;
  /** A malformed request was answered: nothing after it on this connection is forwarded. */
  refused?: boolean;
  /** Requests pipelined behind it, paused, in order: each is served once the one before it is complete. */
  waiting?: Array<[IncomingMessage, ServerResponse]>;
}

/** What the node engine needs from its listener. */
export interface NodeEngineHost {
  /** The listener's spec of the moment (a reload replaces it): the server is built with the first one's timeouts and limits. */
  spec(): ListenerSpec;
  readonly underscores: UnderscorePolicy;
  /** The listener's HTTP/2 server, which takes the connections that speak h2. */
  readonly h2: LazyH2 | null;
  /** node:https options: certificates, ALPN offer, handshake timeout. */
  tlsOptions(): https.ServerOptions;
  tlsMaterial(): TlsMaterial | null;
  /** True when the connection's ALPN chose a protocol another part of the listener takes (an opaque TCP stream). */
  claimedByAlpn(socket: TLSSocket, peer: string | null): boolean;
  handshakeFailed(): void;
  connectionAccepted(): void;
  routingFor(socket: Socket): ListenerRouting;
  /** The upstream head of an authorized request; throws `unauthorized`. */
  authorizedUpstreamHead(head: RequestHead, connPeer: string | null, client: string): string;
  proxy(down: Downstream, head: RequestHead, upstreamHead: string | Buffer, routing: ListenerRouting): void;
  /** A WebSocket upgrade tunnelled: false when the request is to be served as plain HTTP. */
  tunnel(routing: ListenerRouting, head: RequestHead, upstreamHead: string, take: () => { socket: SpliceSocket; early: Buffer | null }): boolean;
  refusal(e: unknown): ProxyError;
  /** A request was answered locally (stats, access log). */
  onLocalReply(err: ProxyError, head: RequestHead | null, requestId: string): void;
  /** Bytes that never parsed as a request were answered locally. */
  onUnparsedReply(err: ProxyError, requestId: string): void;
}

export class NodeEngine {
  readonly server: http.Server;

  constructor(private readonly host: NodeEngineHost) {
    const spec = host.spec();
    const t = spec.timeouts;
    const common = {
      maxHeaderSize: spec.maxRequestHeadersBytes,
      keepAliveTimeout: t.keepaliveIdleMs,
      headersTimeout: t.headersMs,
      requestTimeout: 0,
      // Node checks headersTimeout only this often (30 s by default): slow heads would outlive it.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(t.headersMs / 4))),
      // Never llhttp's lenient mode: what it would tolerate, a second parser could read differently.
      insecureHTTPParser: false,
      // Host is checked by outrigger itself (one answer format for every refusal).
      requireHostHeader: false,
    };
    let server: http.Server;
    const h2 = host.h2;
    if (spec.tls === null) {
      server = http.createServer(common);
      if (h2 !== null) {
        // HTTP/2 with prior knowledge: node's own connection handler gets only HTTP/1 connections.
        const h1 = server.listeners('connection') as Array<(s: Socket) => void>;
        server.removeAllListeners('connection');
        const toH1 = (s: Socket): void => {
          for (const f of h1) f.call(server, s);
          s.resume();
        };
        server.on('connection', (s: Socket) => {
          if (spec.protocol === 'http2') h2.handoff(s, null);
          else sniffPreface(s, t.headersMs, (x) => h2.handoff(x, null), toH1);
        });
      }
    } else {
      server = https.createServer({
        ...common,
        ...host.tlsOptions(),
        // An opaque TCP stream (tcp_fallback) half-closes; node's HTTP layer still ends an HTTP connection at the client's FIN.
        allowHalfOpen: spec.tcpFallback !== null,
      });
      if (h2 !== null) {
        // Connections that chose h2 by ALPN (all of them on `protocol: http2`) go to HTTP/2, after the peer check below.
        const h1 = server.listeners('secureConnection') as Array<(s: PeerSocket) => void>;
        server.removeAllListeners('secureConnection');
        server.on('secureConnection', (s: PeerSocket) => {
          if (!s.destroyed && host.claimedByAlpn(s, s.peerIdentity ?? null)) return;
          if (!s.destroyed && (spec.protocol === 'http2' || s.alpnProtocol === 'h2')) h2.handoff(s, s.peerIdentity ?? null);
          else for (const f of h1) f.call(server, s);
        });
      }
      // Before node's HTTP server sees the socket: an mtls connection, resumed or not, needs a
      // verified client certificate that is valid now (a resumed session skips OpenSSL's checks)
      // and whose root vouches for its SPIFFE ID's trust domain.
      server.prependListener('secureConnection', (s: PeerSocket) => {
        const peer = spec.tls === 'mtls' ? inboundPeer(s, host.tlsMaterial()) : null;
        if (peer !== null && !peer.ok) {
          host.handshakeFailed();
          s.destroy();
          return;
        }
        s.peerIdentity = peer?.identity ?? null;
      });
      server.on('tlsClientError', () => {
        host.handshakeFailed();
      });
    }
    // Up to 2000 header lines (node's default); the byte limit is maxHeaderSize.
    server.maxHeadersCount = 2000;
    // Idle in both directions while a request is in progress (between requests keepAliveTimeout rules).
    server.timeout = t.bodyIdleMs;
    if (spec.maxConnections !== null) server.maxConnections = spec.maxConnections;
    server.on('connection', () => host.connectionAccepted());
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res));
    // Requests with Connection: upgrade and an Upgrade header come here instead (llhttp stops parsing the connection after them).
    // A request pipelined before the upgrade may still be answered on the connection: the upgrade
    // waits for that answer (node holds the bytes after it), else its own would go out first, or
    // claiming the connection would throw ('already assigned socket') and crash the worker.
    server.on('upgrade', (req: IncomingMessage, socket: PeerSocket, early: Buffer) =>
      whenIdle(socket, () => {
        if (!socket.destroyed) this.handleUpgrade(req, socket, early);
      }),
    );
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    // CONNECT (a tunnel) is not offered: answered, not silently dropped.
    server.on('connect', (_req: IncomingMessage, socket: Socket) => this.onClientError(Object.assign(new Error('CONNECT'), { code: 'HPE_CONNECT' }), socket));
    this.server = server;
  }

  /**
   * Node emits a pipelined request as soon as it is parsed; it is served only once the response
   * before it is complete, as on the strict engine (RFC 9112 §9.3.2: pipelined requests are
   * processed in order unless all are safe), so the upstream sees them in the client's order.
   * Node hands the connection to one response at a time (`_httpMessage`), in order: a request
   * whose response does not hold it yet waits. Without pipelining this costs one comparison.
   */
  private handle(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as PeerSocket;
    const current = writingResponse(socket);
    if (current !== null && current !== res) {
      req.pause();
      const waiting = (socket.waiting ??= []);
      waiting.push([req, res]);
      if (waiting.length === 1) current.once('close', () => this.serveNext(socket));
      return;
    }
    this.serve(req, res);
  }

  /** The response before it is complete: serve the first request waiting on `socket`. */
  private serveNext(socket: PeerSocket): void {
    const waiting = socket.waiting;
    // The client went away (the response before it ended with the connection): nothing waiting is forwarded.
    if (socket.destroyed) waiting?.splice(0);
    const next = waiting?.shift();
    if (next === undefined) return;
    next[0].resume();
    this.serve(next[0], next[1]);
    if (waiting!.length > 0) next[1].once('close', () => this.serveNext(socket));
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket as PeerSocket;
    if (socket.refused === true) {
      // Pipelined behind a refused request: never forwarded, never answered. The refusal says
      // `Connection: close`, so node closes the connection once it is written — after the
      // responses of the requests before it (destroying the socket here lost those).
      req.pause();
      return;
    }
    const down = new NodeDownstream(req, res, this.host.spec().errorDetail);
    let head: RequestHead | null = null;
    try {
      head = readNodeRequestHead(req, this.host.spec().maxRequestHeadersBytes, this.host.underscores);
      const text = this.host.authorizedUpstreamHead(head, socket.peerIdentity ?? null, socket.remoteAddress ?? '');
      // Node decodes header bytes as latin1: written back as latin1, obs-text reaches the app byte for byte.
      this.host.proxy(down, head, NON_ASCII.test(text) ? Buffer.from(text, 'latin1') : text, this.host.routingFor(socket));
    } catch (e) {
      const err = this.host.refusal(e);
      if (err.status === 400 || err.status === 431) {
        // A framing problem: nothing after this request on the connection can be trusted.
        socket.refused = true;
        req.pause();
      } else {
        req.resume();
      }
      const id = head !== null ? head.requestId : refusalRequestId(req.rawHeaders);
      down.reply(err, id);
      this.host.onLocalReply(err, head, id);
    }
  }

  /**
   * An upgrade request on the node engine (node:http's 'upgrade' event: the socket is ours). A
   * WebSocket upgrade is tunnelled; a refusal is written to the socket, which then closes; any
   * other Upgrade (h2c, ...) is served as a plain request, as the strict engine does.
   */
  private handleUpgrade(req: IncomingMessage, socket: PeerSocket, early: Buffer): void {
    let head: RequestHead | null = null;
    try {
      head = readNodeRequestHead(req, this.host.spec().maxRequestHeadersBytes, this.host.underscores);
      // llhttp reads no body after an Upgrade head: such a request cannot be served as plain HTTP either.
      if (head.framing !== BodyFraming.None) throw new ProxyError('bad_request', 'an Upgrade request with a body (engine: node does not read it)');
      const text = this.host.authorizedUpstreamHead(head, socket.peerIdentity ?? null, socket.remoteAddress ?? '');
      if (this.host.tunnel(this.host.routingFor(socket), head, text, () => ({ socket, early }))) return;
    } catch (e) {
      const err = this.host.refusal(e);
      const id = head !== null ? head.requestId : refusalRequestId(req.rawHeaders);
      socket.on('error', noop);
      socket.end(localReplyBytes(localReply(err, id, this.host.spec().errorDetail), httpDate(), true), 'latin1');
      socket.destroySoon();
      this.host.onLocalReply(err, head, id);
      return;
    }
    // Served on a response of our own: node has let go of the connection, which closes after it.
    const res = new http.ServerResponse(req);
    res.assignSocket(socket);
    res.shouldKeepAlive = false;
    res.on('finish', () => socket.destroySoon());
    socket.on('error', noop);
    socket.on('close', () => res.destroy());
    this.handle(req, res);
  }

  /**
   * Node's parser refused the bytes (malformed head, oversize head, bad chunk) or a header
   * timeout fired: answer 400/431/408 when no response is under way on the connection, then close.
   */
  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? '';
    // node:https re-emits TLS handshake failures (and its handshake timeout) as clientError:
    // there is no HTTP to answer on a connection whose handshake did not finish.
    const handshaking = this.host.spec().tls !== null && (socket as Socket & { _secureEstablished?: boolean })._secureEstablished !== true;
    if (handshaking || code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const pe =
      code === 'HPE_HEADER_OVERFLOW'
        ? new ProxyError('headers_too_large', `request head is larger than ${this.host.spec().maxRequestHeadersBytes} bytes`)
        : code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new ProxyError('request_timeout', 'the request head did not arrive in time')
          : new ProxyError('bad_request', 'malformed request');
    const id = refusalRequestId(null);
    this.host.onUnparsedReply(pe, id);
    const current = writingResponse(socket);
    if (current !== null && pe.code === 'bad_request') {
      // The error is inside the body of the request being served (a bad chunk): its exchange
      // answers 400 (or closes, if the response head is out) and aborts the upstream request.
      const down = downstreamOf(current);
      const inBody = (current as ServerResponse & { req?: IncomingMessage }).req?.complete === false;
      if (down !== undefined && inBody && !current.headersSent) {
        current.shouldKeepAlive = false;
        down.framingError();
        return;
      }
    }
    // Answer once every response already under way has gone out, then close.
    whenIdle(socket, () => {
      if (!socket.writable) return void socket.destroy();
      socket.end(localReplyBytes(localReply(pe, id, this.host.spec().errorDetail), null));
      socket.destroySoon();
    });
  }
}

function noop(): void {}

/** The response node has handed this connection to (the one being written, in order), or null. */
function writingResponse(socket: Socket): ServerResponse | null {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

/** Runs `fn` once no response is being written on this node connection (pipelined ones included). */
function whenIdle(socket: Socket, fn: () => void): void {
  const current = writingResponse(socket);
  if (current === null || socket.destroyed) return fn();
  let again = false;
  const next = (): void => {
    if (again) return;
    again = true;
    setImmediate(() => whenIdle(socket, fn));
  };
  current.once('finish', next);
  current.once('close', next);
}
