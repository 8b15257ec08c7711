// The HTTP/2 side of a listener (per listener, per worker): a node:http2 server that never
// listens itself. The listener's engine accepts every connection (net/tls server, its
// max_connections, its TLS context and mTLS peer check) and hands over those that speak HTTP/2:
// plaintext ones whose first bytes are the connection preface (`protocol: auto`) or all of them
// (`protocol: http2`), TLS ones that negotiated `h2` by ALPN. Each session carries the peer
// identity and client address read once at the handoff. Limits: SETTINGS (concurrent streams,
// header list size), the listener's headers_ms (connection to first request) and
// keepalive_idle_ms (no open stream), body_idle_ms per stream, and a rapid-reset guard
// (CVE-2023-44487): a session whose client resets most of its streams before their responses
// is sent GOAWAY ENHANCE_YOUR_CALM and closed.

import http2, { type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { ListenerSpec } from '../../config/types.js';
import { H2Downstream, type H2StreamOwner } from './downstream.js';

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Premature resets tolerated per session before the share of them counts (Envoy's rule: at least this many, and half the streams). */
export const PREMATURE_RESETS_MIN = 100;

/** Per-listener HTTP/2 settings, updated in place on reload. */
export interface H2Settings {
  maxConcurrentStreams: number;
  maxHeadBytes: number;
  headersMs: number;
  bodyIdleMs: number;
  keepaliveIdleMs: number;
  detail: boolean;
}

export function h2Settings(spec: ListenerSpec): H2Settings {
  return {
    maxConcurrentStreams: spec.h2MaxConcurrentStreams,
    maxHeadBytes: spec.maxRequestHeadersBytes,
    headersMs: spec.timeouts.headersMs,
    bodyIdleMs: spec.timeouts.bodyIdleMs,
    keepaliveIdleMs: spec.timeouts.keepaliveIdleMs,
    detail: spec.errorDetail,
  };
}

/** One HTTP/2 connection: who is on it, and how its streams went. */
export class H2Conn implements H2StreamOwner {
  /** Streams open now. */
  open = 0;
  /** Streams opened so far. */
  total = 0;
  /** Streams the client reset before their response was complete. */
  premature = 0;
  private idle: NodeJS.Timeout | null = null;

  constructor(
    readonly session: ServerHttp2Session,
    private readonly server: H2Server,
    /** The peer's SPIFFE ID (mTLS listeners), else null. */
    readonly peer: string | null,
    /** The client's address (x-forwarded-for). */
    readonly remote: string,
  ) {
    // Until the first request: the listener's headers_ms, as for an HTTP/1 connection's first head.
    this.idleIn(server.settings.headersMs);
  }

  get detail(): boolean {
    return this.server.settings.detail;
  }

  /** Closes the session (GOAWAY, then the socket once open streams end) after `ms` with no open stream. */
  private idleIn(ms: number): void {
    this.idle = setTimeout(() => {
      this.idle = null;
      if (this.open === 0) this.session.close();
    }, ms);
    this.idle.unref();
  }

  streamOpened(): void {
    this.open++;
    this.total++;
    if (this.idle !== null) {
      clearTimeout(this.idle);
      this.idle = null;
    }
  }

  streamFinishing(): void {
    this.server.finishing(1);
  }

  streamClosed(premature: boolean, finished: boolean): void {
    this.open--;
    if (finished) this.server.finishing(-1);
    if (premature) {
      this.premature++;
      if (this.premature >= PREMATURE_RESETS_MIN && this.premature * 2 >= this.total && !this.session.destroyed) {
        this.server.rapidResets++;
        this.session.goaway(NGHTTP2_ENHANCE_YOUR_CALM);
        this.session.destroy();
        return;
      }
    }
    if (this.open === 0 && this.idle === null && !this.session.closed) this.idleIn(this.server.settings.keepaliveIdleMs);
  }

  ended(): void {
    if (this.idle !== null) clearTimeout(this.idle);
    this.idle = null;
  }
}

/** The listener's side: where request streams go. */
export interface H2Handlers {
  /** A request stream with its raw header list (lower-case names); `endStream`: no body follows. */
  request(down: H2Downstream, raw: readonly string[], endStream: boolean, conn: H2Conn): void;
  /**
   * Streams whose exchange ended but which are still sending the end of their response (+1), or
   * have now closed (−1): in flight for a drain (H2StreamOwner.streamFinishing).
   */
  finishing(delta: 1 | -1): void;
}

export class H2Server {
  readonly settings: H2Settings;
  private readonly server: Http2Server;
  private readonly sessions = new Set<H2Conn>();
  /** Who the socket being handed over belongs to (read synchronously by the 'session' handler). */
  private handing: { peer: string | null; remote: string } | null = null;
  private stopping = false;
  /** Sessions closed by the rapid-reset guard. */
  rapidResets = 0;

  constructor(
    spec: ListenerSpec,
    private readonly handlers: H2Handlers,
  ) {
    this.settings = h2Settings(spec);
    this.server = http2.createServer({
      settings: {
        maxConcurrentStreams: this.settings.maxConcurrentStreams,
        // HPACK counts 32 bytes per field on top of name and value; the exact byte limit (431) is the listener's, checked per request.
        maxHeaderListSize: 2 * spec.maxRequestHeadersBytes,
        enablePush: false,
      },
      maxHeaderListPairs: 2000,
      // Streams refused (beyond max_concurrent_streams) and invalid frames a session may send before it is closed.
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 100,
    });
    this.server.on('session', (session: ServerHttp2Session) => this.onSession(session));
  }

  /** Serves HTTP/2 on `socket` (its first bytes already read and put back, or a TLS socket that chose h2). */
  handoff(socket: Socket, peer: string | null): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    this.handing = { peer, remote: socket.remoteAddress ?? '' };
    try {
      this.server.emit('connection', socket);
    } finally {
      this.handing = null;
    }
    // The session reads the socket's handle itself (bytes the sniffer put back first); resuming
    // the JS stream as well would take bytes from under it.
  }

  private onSession(session: ServerHttp2Session): void {
    const who = this.handing ?? { peer: null, remote: '' };
    const conn = new H2Conn(session, this, who.peer, who.remote);
    this.sessions.add(conn);
    session.on('stream', (stream: ServerHttp2Stream, _headers: unknown, flags: number, raw: string[]) => this.onStream(conn, stream, flags, raw));
    session.on('close', () => {
      conn.ended();
      this.sessions.delete(conn);
    });
    session.on('error', noop); // 'close' follows
  }

  private onStream(conn: H2Conn, stream: ServerHttp2Stream, flags: number, raw: string[]): void {
    conn.streamOpened();
    const t = this.settings.bodyIdleMs;
    stream.setTimeout(t, () => stream.close(NGHTTP2_CANCEL));
    let method = '';
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i] === ':method') {
        method = raw[i + 1]!;
        break;
      }
    }
    const down = new H2Downstream(stream, conn, method === 'HEAD', raw);
    this.handlers.request(down, raw, (flags & NGHTTP2_FLAG_END_STREAM) !== 0, conn);
  }

  /** A new config version for the same listener: limits apply to new sessions, settings to open ones too. */
  configure(spec: ListenerSpec): void {
    Object.assign(this.settings, h2Settings(spec));
    const settings = { maxConcurrentStreams: this.settings.maxConcurrentStreams, maxHeaderListSize: 2 * spec.maxRequestHeadersBytes };
    this.server.updateSettings(settings);
    for (const c of this.sessions) {
      if (!c.session.destroyed) c.session.settings(settings);
    }
  }

  /** Stops taking connections; open sessions get GOAWAY and close once their streams end. */
  stopAccepting(): void {
    this.stopping = true;
    for (const c of this.sessions) c.session.close();
  }

  /** Closes every session now. */
  closeAll(): void {
    this.stopping = true;
    for (const c of this.sessions) c.session.destroy();
    this.sessions.clear();
  }

  finishing(delta: 1 | -1): void {
    this.handlers.finishing(delta);
  }

  /** Open HTTP/2 connections (stats, tests). */
  get connections(): number {
    return this.sessions.size;
  }
}

function noop(): void {}
