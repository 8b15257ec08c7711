// Per-worker, per-endpoint pool of HTTP/2 sessions (node:http2): each request is a stream on the
// oldest session with a free stream (the peer's SETTINGS_MAX_CONCURRENT_STREAMS), a new session is
// opened when all are full (up to `connectionsPerWorker`), beyond that requests wait in the
// cluster's bounded queue (503 overflow). GOAWAY and REFUSED_STREAM mark a stream unprocessed
// (the exchange sends it again); sessions are PINGed every keepalive_interval_ms of silence, busy
// ones too, and closed with their streams when a PING goes unanswered; idle ones close after
// idle_timeout_ms.

import { STATUS_CODES } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { ProxyError } from '../errors.js';
import { remainingGrpcTimeout } from '../grpc/wire.js';
import { IdentityMismatchError } from '../tls/contexts.js';
import type { UpstreamChannel, UpstreamRequest, UpstreamTarget } from './channel.js';
import { NETWORK_ERRORS } from './dial.js';
import { EndpointPoolBase, noCertificate, type ConnectTls } from './endpoint_pool_base.js';
import type { Ticker, Timed, TimerEntry } from './ticker.js';
import { transition, type TransitionTable } from './transitions.js';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL } = http2.constants;

/** Streams one session may carry, whatever the peer allows. */
const MAX_STREAMS_CAP = 1000;
/** Requests a session still connecting is expected to take (its SETTINGS are not read yet). */
const ASSUMED_STREAMS = 100;
const NON_ASCII = /[^\x00-\x7f]/; // eslint-disable-line no-control-regex -- any byte above ASCII

/** A session's states; DRAINING: GOAWAY received or sent, no new streams, open ones finish. */
export type SessionState = 'CONNECTING' | 'READY' | 'DRAINING' | 'CLOSED';

/** Where each session state may go (exported for the tests' full matrix). */
export const SESSION_MOVES: TransitionTable<SessionState> = {
  CONNECTING: ['READY', 'DRAINING', 'CLOSED'],
  READY: ['DRAINING', 'CLOSED'],
  DRAINING: ['CLOSED'],
  CLOSED: [],
};

/** What a session tells its pool (H2Pool; a test may stand in). */
export interface SessionOwner {
  onSessionReady(s: H2Session): void;
  onStreamEnded(s: H2Session): void;
  onSessionClosed(s: H2Session, err: ProxyError | null, neverReady: boolean): void;
}

let nextId = 1;

/** One HTTP/2 connection to the endpoint. */
export class H2Session implements Timed {
  readonly id = nextId++;
  state: SessionState = 'CONNECTING';
  /** Streams open on it (counted from dispatch to the stream's close). */
  active = 0;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (capped), once read. */
  maxStreams = ASSUMED_STREAMS;
  /** Streams above this id were not processed (GOAWAY); Infinity: no GOAWAY. */
  goawayLastId = Infinity;
  /** Ticker ms the last stream ended (idle timeout). */
  lastUsed = 0;
  /** Ticker ms of the last stream's end or PING answer (keepalive). */
  lastHeard = 0;
  /** Ticker ms a PING went out without an answer yet; 0 = none outstanding. */
  pingSentAt = 0;
  resumed = false;
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  readonly session: http2.ClientHttp2Session;
  readonly scheme: 'http' | 'https';
  /** Content key of the TLS material the session was made with (null: plaintext). */
  readonly materialKey: string | null;
  private error: Error | null = null;

  constructor(
    private readonly owner: SessionOwner,
    readonly host: string,
    readonly port: number,
    private readonly ticker: Ticker,
    connectTimeoutMs: number,
    connectTls: ConnectTls | null,
  ) {
    this.materialKey = connectTls?.materialKey ?? null;
    this.scheme = connectTls === null ? 'http' : 'https';
    const authority = `${this.scheme}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.session = http2.connect(authority, {
      settings: { enablePush: false },
      createConnection: () => {
        if (connectTls === null) return net.connect({ host, port, noDelay: true });
        const socket = tls.connect({ host, port, ALPNProtocols: ['h2'], ...connectTls.options });
        socket.setNoDelay(true);
        socket.on('secureConnect', () => (this.resumed = socket.isSessionReused()));
        connectTls.remember(socket);
        return socket;
      },
    });
    this.session.on('remoteSettings', (s: http2.Settings) => this.onSettings(s));
    this.session.on('goaway', (_code: number, lastStreamId: number) => this.onGoaway(lastStreamId));
    this.session.on('error', (err: Error) => (this.error ??= err));
    this.session.on('close', () => this.onClose());
    if (connectTimeoutMs > 0) {
      this.deadline = ticker.fresh() + connectTimeoutMs;
      ticker.add(this);
    }
  }

  /** Moves to a new state; an illegal move is a bug and throws. */
  private moveTo(to: SessionState): void {
    this.state = transition(SESSION_MOVES, 'h2 session', this.id, this.state, to);
  }

  /** Takes new streams now. */
  get hasRoom(): boolean {
    return this.state === 'READY' && this.active < this.maxStreams && !this.session.closed && !this.session.destroyed;
  }

  private onSettings(s: http2.Settings): void {
    const max = s.maxConcurrentStreams ?? MAX_STREAMS_CAP;
    this.maxStreams = Math.max(0, Math.min(max, MAX_STREAMS_CAP));
    if (this.state === 'CONNECTING') {
      this.moveTo('READY');
      this.ticker.delete(this);
      this.deadline = 0;
      this.lastUsed = this.lastHeard = this.ticker.now;
      this.owner.onSessionReady(this);
    } else if (this.state === 'READY') {
      this.owner.onStreamEnded(this); // a raised limit may free streams for waiters
    }
  }

  private onGoaway(lastStreamId: number): void {
    this.goawayLastId = lastStreamId;
    if (this.state === 'CONNECTING' || this.state === 'READY') this.moveTo('DRAINING');
  }

  /** Connect timeout (TCP, TLS and the server's SETTINGS). */
  onDeadline(): void {
    if (this.state === 'CONNECTING') {
      this.error = new ProxyError('upstream_connect_failed', `connect timeout to ${this.host}:${this.port}`);
      this.session.destroy();
    }
  }

  /** No new streams; closes once the open ones finish. */
  retire(): void {
    if (this.state === 'READY' || this.state === 'CONNECTING') this.moveTo('DRAINING');
    if (!this.session.closed && !this.session.destroyed) this.session.close();
  }

  /** Closes at once (open streams are reset). */
  destroy(): void {
    if (!this.session.destroyed) this.session.destroy();
  }

  /** Keepalive: a PING when nothing was heard for `intervalMs`; closes the session (and its streams) when the PING is still unanswered `intervalMs` later. */
  keepalive(now: number, intervalMs: number): void {
    if (this.pingSentAt !== 0) {
      if (now - this.pingSentAt >= intervalMs) {
        this.error = new ProxyError('upstream_reset', `${this.host}:${this.port} did not answer a PING`);
        this.destroy();
      }
      return;
    }
    if (now - this.lastHeard < intervalMs) return;
    this.pingSentAt = now;
    try {
      this.session.ping((err) => {
        if (err === null) {
          this.pingSentAt = 0;
          this.lastHeard = this.ticker.now;
        }
      });
    } catch {
      this.destroy();
    }
  }

  /** Opens a stream for `req` and hands it the channel. */
  start(req: UpstreamRequest): void {
    this.active++;
    req.onConnection(new H2Channel(this, req));
  }

  /** A stream of this session closed (or never opened). */
  streamEnded(): void {
    this.active--;
    if (this.active === 0) this.lastUsed = this.lastHeard = this.ticker.now;
    this.owner.onStreamEnded(this);
  }

  /** Why the session was closed from this side (an unanswered PING, the connect timeout), else null. */
  get failure(): ProxyError | null {
    return this.error instanceof ProxyError ? this.error : null;
  }

  private onClose(): void {
    const neverReady = this.state === 'CONNECTING';
    if (this.state !== 'CLOSED') this.moveTo('CLOSED');
    this.ticker.delete(this);
    this.owner.onSessionClosed(this, this.error === null ? null : this.describe(this.error, neverReady), neverReady);
  }

  private describe(err: Error, connecting: boolean): ProxyError {
    if (err instanceof ProxyError) return err;
    const at = `${this.host}:${this.port}`;
    if (err instanceof IdentityMismatchError) return new ProxyError('upstream_identity_mismatch', `${at}: ${err.detail}`);
    const code = (err as NodeJS.ErrnoException).code ?? 'ERR';
    if (!connecting) return new ProxyError('upstream_reset', `HTTP/2 session to ${at} failed: ${code}`);
    if (this.materialKey !== null && !NETWORK_ERRORS.has(code)) {
      return new ProxyError('upstream_tls_failed', `TLS handshake with ${at} failed: ${code === 'ERR' ? err.message : code}`);
    }
    return new ProxyError('upstream_connect_failed', `connect to ${at} failed: ${code}`);
  }
}

/** Flat [name, value, ...] of a header block without pseudo-headers; whether a value is not ASCII. */
function flatHeaders(h: http2.IncomingHttpHeaders, out: string[]): boolean {
  let nonAscii = false;
  for (const name in h) {
    if (name.charCodeAt(0) === 0x3a /* : */) continue;
    const v = h[name];
    if (v === undefined) continue;
    if (typeof v === 'string') {
      out.push(name, v);
      if (NON_ASCII.test(v)) nonAscii = true;
    } else {
      for (const one of v) {
        out.push(name, one);
        if (NON_ASCII.test(one)) nonAscii = true;
      }
    }
  }
  return nonAscii;
}

/** Request fields that HTTP/2 forbids (RFC 9113 §8.2.2) or that become pseudo-headers. */
function connectionSpecific(name: string, value: string): boolean {
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'transfer-encoding':
    case 'upgrade':
      return true;
    case 'te':
      return value.toLowerCase() !== 'trailers';
  }
  return false;
}

/**
 * The HTTP/2 request fields of a request: method and path from the structured head; the fields
 * from the HTTP/1 head the exchange built (hop-by-hop ones already removed, x-forwarded-* set);
 * Host becomes :authority.
 */
export function h2RequestHeaders(req: UpstreamRequest, scheme: string): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ':method': req.head.method, ':scheme': scheme, ':path': req.head.target };
  const text = typeof req.upstreamHead === 'string' ? req.upstreamHead : req.upstreamHead.toString('latin1');
  let i = text.indexOf('\r\n') + 2;
  const end = text.length - 2;
  while (i > 1 && i < end) {
    const eol = text.indexOf('\r\n', i);
    const colon = text.indexOf(':', i);
    if (eol < 0 || colon < 0 || colon > eol) break;
    const name = text.slice(i, colon).toLowerCase();
    const value = text.slice(colon + 1, eol).trim();
    i = eol + 2;
    if (name === 'host') {
      out[':authority'] = value;
      continue;
    }
    if (connectionSpecific(name, value)) continue;
    add(out, name, value);
  }
  // A gRPC call's grpc-timeout, reduced by the time spent in the proxy (queueing, retries).
  const grpcDeadline = req.grpcDeadlineMs;
  if (grpcDeadline !== undefined && grpcDeadline !== 0) out['grpc-timeout'] = remainingGrpcTimeout(grpcDeadline);
  return out;
}

/**
 * Sets a field; a repeated one is joined into one line (", "; "; " for cookie, RFC 9113 §8.2.3):
 * node:http2 refuses a list for its single-value fields (content-type, user-agent, ...).
 */
function add(out: http2.OutgoingHttpHeaders, name: string, value: string): void {
  const prev = out[name];
  out[name] = prev === undefined ? value : `${String(prev)}${name === 'cookie' ? '; ' : ', '}${value}`;
}

function trailersObject(flat: readonly string[] | null): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  if (flat === null) return out;
  for (let i = 0; i < flat.length; i += 2) add(out, flat[i]!, flat[i + 1]!);
  return out;
}

/** One request's stream: the channel its exchange writes to and hears from. */
export class H2Channel implements UpstreamChannel {
  readonly unframedBody = true;
  readonly reused = false;
  unprocessed = false;
  private stream: http2.ClientHttp2Stream | null = null;
  private gotHead = false;
  private requestEnded = false;
  private requestTrailers: readonly string[] | null = null;
  private responseTrailers: string[] | null = null;
  private released = false;
  private error: Error | null = null;
  private chunk: Buffer | null = null;
  private readonly deliverChunk = (): void => {
    const c = this.chunk;
    this.chunk = null;
    if (c !== null) this.req?.onBody(c);
  };

  constructor(
    private readonly owner: H2Session,
    private req: UpstreamRequest | null,
  ) {}

  sendHead(req: UpstreamRequest, complete: boolean): void {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.owner.session.request(h2RequestHeaders(req, this.owner.scheme), { endStream: complete, waitForTrailers: !complete });
    } catch (e) {
      // Nothing was sent: either the session went away between dispatch and now (the request
      // may go again), or node:http2 refused the fields (it will not).
      const at = `${this.owner.host}:${this.owner.port}`;
      const gone = this.owner.session.closed || this.owner.session.destroyed;
      this.unprocessed = gone;
      const err = gone
        ? new ProxyError('upstream_connect_failed', `HTTP/2 session to ${at} went away before the stream opened: ${(e as Error).message}`)
        : new ProxyError('upstream_protocol_error', `the request cannot be sent over HTTP/2 to ${at}: ${(e as Error).message}`);
      queueMicrotask(() => this.fail(err));
      return;
    }
    this.stream = stream;
    this.requestEnded = complete;
    stream.on('response', (h) => this.onResponse(h));
    stream.on('headers', (h) => this.onInterim(h));
    stream.on('data', (c: Buffer) => this.onData(c));
    stream.on('trailers', (h: http2.IncomingHttpHeaders) => {
      const t: string[] = [];
      flatHeaders(h, t);
      this.responseTrailers = t;
    });
    stream.on('end', () => this.onEnd());
    stream.on('wantTrailers', () => this.sendTrailers(stream));
    stream.on('drain', () => this.req?.onUpstreamWritable());
    stream.on('error', (err: Error) => (this.error ??= err));
    stream.on('close', () => this.onClose());
  }

  /** The request's trailers (or none: an empty DATA frame ends the stream). */
  private sendTrailers(s: http2.ClientHttp2Stream): void {
    try {
      s.sendTrailers(trailersObject(this.requestTrailers));
    } catch {
      if (!s.destroyed) s.close(NGHTTP2_CANCEL); // fields node:http2 refuses: the request is cut off, never completed without them
    }
  }

  write(data: string | Buffer): boolean {
    const s = this.stream;
    if (s === null || s.destroyed || this.requestEnded) return true;
    return s.write(data);
  }

  endRequest(trailers: readonly string[] | null): void {
    const s = this.stream;
    if (s === null || this.requestEnded) return;
    this.requestEnded = true;
    this.requestTrailers = trailers;
    if (!s.destroyed) s.end();
  }

  cork(): void {}
  uncork(): void {}

  pauseReading(): void {
    this.stream?.pause();
  }

  resumeReading(): void {
    this.stream?.resume();
  }

  destroy(): void {
    this.req = null;
    const s = this.stream;
    if (s === null) this.release();
    else if (!s.closed && !s.destroyed) s.close(NGHTTP2_CANCEL);
  }

  get awaitingResponse(): boolean {
    return !this.gotHead;
  }

  private onResponse(h: http2.IncomingHttpHeaders): void {
    const req = this.req;
    if (req === null) return;
    this.gotHead = true;
    const status = Number(h[':status']);
    const flat: string[] = [];
    const nonAscii = flatHeaders(h, flat);
    const cl = h['content-length'];
    const contentLength = typeof cl === 'string' && /^\d{1,15}$/.test(cl) ? Number(cl) : -1;
    req.onHead(status, STATUS_CODES[status] ?? '', flat, nonAscii, contentLength);
  }

  private onInterim(h: http2.IncomingHttpHeaders): void {
    const status = Number(h[':status']);
    if (!(status >= 100 && status < 200) || this.req === null) return;
    const flat: string[] = [];
    flatHeaders(h, flat);
    this.req.onInformational?.(status, STATUS_CODES[status] ?? '', flat);
  }

  private onData(c: Buffer): void {
    const req = this.req;
    if (req === null) return;
    this.chunk = c;
    req.runCorked(this.deliverChunk);
  }

  private onEnd(): void {
    const req = this.req;
    if (req === null || !this.gotHead) return;
    this.req = null;
    const s = this.stream!;
    // The response is whole; a request body still under way is not wanted any more.
    if (!this.requestEnded && !s.closed) s.close(NGHTTP2_CANCEL);
    req.onEnd(this.responseTrailers);
  }

  private onClose(): void {
    this.release();
    const req = this.req;
    if (req === null) return;
    this.req = null;
    const s = this.stream!;
    const at = `${this.owner.host}:${this.owner.port}`;
    const id = s.id;
    const code = s.rstCode;
    let err: ProxyError;
    if (!this.gotHead && (code === NGHTTP2_REFUSED_STREAM || id === undefined || id > this.owner.goawayLastId)) {
      this.unprocessed = true;
      err = new ProxyError('upstream_connect_failed', `${at} did not process the request (${code === NGHTTP2_REFUSED_STREAM ? 'REFUSED_STREAM' : 'GOAWAY'})`);
    } else {
      // The session's own failure (an unanswered PING) says more than the reset it caused.
      const sessionFailure = this.owner.failure;
      const why =
        sessionFailure !== null
          ? sessionFailure.message
          : this.error !== null
            ? ((this.error as NodeJS.ErrnoException).code ?? this.error.message)
            : `RST_STREAM ${code ?? '?'}`;
      err = new ProxyError('upstream_reset', `HTTP/2 stream to ${at} ended before the response did: ${why}`);
    }
    req.onUpstreamError(err, this);
  }

  private fail(err: ProxyError): void {
    this.release();
    const req = this.req;
    this.req = null;
    if (req !== null) req.onUpstreamError(err, this);
  }

  private release(): void {
    if (!this.released) {
      this.released = true;
      this.owner.streamEnded();
    }
  }
}

/** The HTTP/2 sessions to one endpoint, on one worker. */
export class H2Pool extends EndpointPoolBase implements SessionOwner, UpstreamTarget {
  private readonly sessions: H2Session[] = [];

  /** Open or connecting sessions. */
  get open(): number {
    return this.sessions.length;
  }

  /** Sessions without streams. */
  get idleCount(): number {
    let n = 0;
    for (const s of this.sessions) if (s.state === 'READY' && s.active === 0) n++;
    return n;
  }

  /** Streams open across the sessions (tests, inspection). */
  get streams(): number {
    let n = 0;
    for (const s of this.sessions) n += s.active;
    return n;
  }

  dispatch(req: UpstreamRequest): void {
    const s = this.available();
    if (s !== null) {
      s.start(req);
      return;
    }
    if (this.waiters.length >= this.connectingRoom()) {
      if (this.sessions.length < this.spec.connectionsPerWorker) {
        if (this.connect() === null) {
          req.onUpstreamError(noCertificate(), null);
          return;
        }
      } else if (this.waiters.full) {
        req.onUpstreamError(this.waiters.overflow(`a stream to ${this.host}:${this.port}`), null);
        return;
      }
    }
    this.waiters.push(req);
  }

  /** No new sessions; idle ones close now, busy ones when their streams finish. */
  drain(): void {
    this.draining = true;
    for (const s of [...this.sessions]) if (s.active === 0) s.retire();
  }

  /** Worker shutdown: every session goes away. */
  close(): void {
    this.draining = true;
    for (const s of [...this.sessions]) s.destroy();
    this.ticker.delete(this);
  }

  /** The oldest session with a free stream (older sessions fill first, so few stay busy). */
  private available(): H2Session | null {
    for (const s of this.sessions) {
      if (!s.hasRoom) continue;
      if (this.isStale(s.materialKey)) {
        s.retire(); // rotation: the session on old material finishes its streams and goes
        continue;
      }
      return s;
    }
    return null;
  }

  /** Requests the sessions still connecting are expected to take. */
  private connectingRoom(): number {
    let n = 0;
    for (const s of this.sessions) if (s.state === 'CONNECTING') n += ASSUMED_STREAMS;
    return n;
  }

  private connect(): H2Session | null {
    const t = this.connectTls();
    if (t === undefined) return null;
    const s = new H2Session(this, this.host, this.port, this.ticker, this.spec.connectTimeoutMs, t);
    this.sessions.push(s);
    this.counters.connectionsOpened++;
    this.scheduleSweep();
    return s;
  }

  /** Hands waiting requests free streams; opens sessions while requests wait beyond what is connecting. */
  private pump(): void {
    while (this.waiters.length > 0) {
      const s = this.available();
      if (s === null) break;
      const req = this.waiters.shift()!;
      s.start(req);
    }
    while (this.waiters.length > this.connectingRoom() && this.sessions.length < this.spec.connectionsPerWorker) {
      if (this.connect() === null) {
        this.failWaiters(noCertificate());
        return;
      }
    }
  }

  private failWaiters(err: ProxyError): void {
    for (const req of this.waiters.takeAll()) req.onUpstreamError(err, null);
  }

  onSessionReady(s: H2Session): void {
    this.countHandshake(s.materialKey, s.resumed);
    this.pump();
  }

  onStreamEnded(s: H2Session): void {
    if (s.active === 0 && (this.draining || s.state === 'DRAINING')) s.retire();
    if (this.waiters.length > 0) this.pump();
  }

  onSessionClosed(s: H2Session, err: ProxyError | null, neverReady: boolean): void {
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    if (this.waiters.length === 0) return;
    // A session that never became ready fails the requests that were waiting for it when no
    // other session is left to take them (an unreachable endpoint answers every waiter).
    if (neverReady && this.sessions.length === 0) {
      this.failWaiters(err ?? new ProxyError('upstream_connect_failed', `${this.host}:${this.port} closed the connection before its SETTINGS`));
      return;
    }
    this.pump();
  }

  /**
   * Once a second while sessions are open: idle timeout, and keepalive PINGs on every ready
   * session, busy ones too: a peer that stopped answering would otherwise hold the streams in
   * flight on it until their route timeouts.
   */
  onDeadline(now: number): void {
    const idleLimit = now - this.spec.idleTimeoutMs;
    const ping = this.spec.keepaliveIntervalMs;
    for (const s of [...this.sessions]) {
      if (s.state !== 'READY') continue;
      if (s.active === 0 && (this.draining || s.lastUsed <= idleLimit || this.isStale(s.materialKey))) s.retire();
      else if (ping > 0) s.keepalive(now, ping);
    }
    this.deadline = 0;
    if (this.sessions.length > 0) this.scheduleSweep();
  }
}
