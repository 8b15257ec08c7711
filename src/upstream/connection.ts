// One persistent HTTP/1.1 connection to an upstream endpoint: a small state machine
// (CONNECTING → IDLE ⇄ BUSY → CLOSED) around a net.Socket that reads into one shared buffer
// (net's `onread`, no allocation per read) and a strict response parser. The connection carries
// one request at a time, or many in order (pipeline.ts) when an outrigger sidecar on the other end
// selected pipelining (mTLS, ALPN) or the cluster pipelines to its plaintext app
// (pool.pipeline_plaintext: GETs and HEADs only); the pool decides who gets it.

import net from 'node:net';
import tls from 'node:tls';
import { ProxyError } from '../errors.js';
import { RareFields } from '../jit.js';
import { PIPELINE_ALPN } from '../net/alpn.js';
import { takeOverReads } from '../net/user_buffer.js';
import { IdentityMismatchError } from '../tls/contexts.js';
import type { UpstreamChannel, UpstreamRequest } from './channel.js';
import type { ConnectTls } from './endpoint_pool_base.js';
import { Pipeline, type PipelineHost, type StallClock } from './pipeline.js';
import { NETWORK_ERRORS } from './dial.js';
import { ResponseParser } from './response_parser.js';
import { transition, type TransitionTable } from './transitions.js';
import type { Ticker, Timed, TimerEntry } from './ticker.js';

export const enum ConnState {
  Connecting = 'CONNECTING',
  Idle = 'IDLE',
  Busy = 'BUSY',
  Closed = 'CLOSED',
}

const LEGAL: TransitionTable<ConnState> = {
  [ConnState.Connecting]: [ConnState.Busy, ConnState.Idle, ConnState.Closed],
  [ConnState.Idle]: [ConnState.Busy, ConnState.Closed],
  [ConnState.Busy]: [ConnState.Idle, ConnState.Closed],
  [ConnState.Closed]: [],
};

export type { UpstreamRequest } from './channel.js';

/** `to` when the table allows `from → to`; otherwise throws (a bug). Exported for the tests' full matrix. */
export function checkTransition(id: number, from: ConnState, to: ConnState): ConnState {
  return transition(LEGAL, 'upstream connection', id, from, to);
}

/** What the connection tells its pool. */
export interface ConnectionOwner {
  onConnected(conn: UpstreamConnection): void;
  onReusable(conn: UpstreamConnection): void;
  onClosed(conn: UpstreamConnection): void;
  /** A pipelined connection in use may take one more request. */
  onSlot(conn: UpstreamConnection): void;
  /** A request that joined a connection while it connected, which then did not pipeline: dispatch it again. */
  redispatch(req: UpstreamRequest): void;
  /** The server is closing a pipelined connection with requests unanswered (pipeline.ts, PipelineHost.pipelinePeerClosing). */
  onPeerClosing(conn: UpstreamConnection): void;
  /** To a plaintext app: it answered a request written behind another (PipelineHost.pipelineProven). */
  onPipelineProven(): void;
  /** To a plaintext app: it has answered a request written behind another since pipelining to it (re)started (PipelineHost.pipeliningProven). */
  readonly pipeliningProven: boolean;
  /** To a plaintext app: it closed with requests written behind others unanswered (PipelineHost.pipelineLost). */
  onPipelineLost(): void;
  /** Requests written behind a response that did not end in time are sent again (PipelineHost.pipelineMoved). */
  onPipelineMoved(n: number): void;
}

/** The ALPN offer of a connection that may pipeline; HTTP/1.1 for any other server. */
const PIPELINE_OFFER = [PIPELINE_ALPN, 'http/1.1'];

// One read buffer per thread, shared by every upstream socket (plaintext, and TLS after its
// handshake): reads happen one at a time.
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

let nextId = 1;

const UPSTREAM_CONNECTION_RARE = new RareFields(['paused']);

export class UpstreamConnection implements Timed, UpstreamChannel, PipelineHost {
  readonly id = nextId++;
  state: ConnState = ConnState.Connecting;
  request: UpstreamRequest | null = null;
  /** Set by the request when its last body byte has been written. */
  requestComplete = false;
  /** HTTP/1: the request frames its body (chunked) itself. */
  readonly unframedBody = false;
  /** HTTP/1 has no way to say a request was not processed. */
  readonly unprocessed = false;
  /** Requests served on this connection (the first is 1). */
  uses = 0;
  /** Ticker deadline: connect timeout while connecting. */
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  lastUsed = 0;
  private readonly socket: net.Socket;
  /** Content key of the TLS material this connection was made with (null: plaintext). */
  readonly materialKey: string | null;
  /** Whether the TLS handshake resumed a session (no full handshake). */
  resumed = false;
  private readonly parser = new ResponseParser();
  private paused = false;
  /** The server selected pipelining: requests go through it, each with a channel of its own. */
  private pipe: Pipeline | null = null;
  /** Requests that joined while connecting, after `request` (only when pipelining was offered). */
  private joined: UpstreamRequest[] | null = null;
  /** startJoined is placing the joined requests: no slot is offered to the pool meanwhile. */
  private placingJoined = false;
  /** Offered pipelining and made in this loop turn: the requests that join now leave in its first write. */
  private newThisTurn: boolean;
  private readN = 0;
  private readBuf: Buffer = READ_BUFFER;
  private readonly processRead = (): void => this.process(this.readBuf, this.readN);

  constructor(
    private readonly owner: ConnectionOwner,
    readonly host: string,
    readonly port: number,
    private readonly ticker: Ticker,
    connectTimeoutMs: number,
    connectTls: ConnectTls | null = null,
    /**
     * Offer pipelining (mTLS: to a sidecar that may select it; plaintext: pipeline to the app, GETs
     * and HEADs only), and judge the connection's head-of-line delay with this clock.
     */
    private readonly pipelineStall: StallClock | null = null,
  ) {
    this.materialKey = connectTls?.materialKey ?? null;
    this.newThisTurn = pipelineStall !== null;
    if (this.newThisTurn) setImmediate(() => (this.newThisTurn = false));
    if (connectTls === null) {
      this.socket = net.connect({
        host,
        port,
        noDelay: true,
        onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.onRead(n, buf as Buffer) },
      });
      this.socket.on('connect', () => {
        if (pipelineStall !== null) this.pipe = new Pipeline(this, this.socket, this.parser, ticker, pipelineStall);
        this.onConnect();
      });
    } else {
      // mTLS: bytes are written only after the handshake and the peer's SPIFFE ID check passed.
      const offer = pipelineStall === null ? {} : { ALPNProtocols: PIPELINE_OFFER };
      const socket = tls.connect({ host, port, ...connectTls.options, ...offer });
      socket.setNoDelay(true);
      connectTls.remember(socket);
      socket.on('secureConnect', () => {
        this.resumed = socket.isSessionReused();
        if (pipelineStall !== null && socket.alpnProtocol === PIPELINE_ALPN) {
          this.pipe = new Pipeline(this, socket, this.parser, ticker, pipelineStall);
        }
        this.onConnect();
        this.readCleartext(socket);
      });
      this.socket = socket;
    }
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.onSocketError(err));
    this.socket.on('end', () => this.onSocketEnd());
    this.socket.on('close', () => this.onSocketClose());
    this.socket.on('drain', () => {
      if (this.pipe !== null) this.pipe.onDrain();
      else this.request?.onUpstreamWritable();
    });
    if (connectTimeoutMs > 0) {
      this.deadline = ticker.fresh() + connectTimeoutMs;
      ticker.add(this);
    }
    // Stored to only when the client reads slower than the upstream sends (jit.ts).
    UPSTREAM_CONNECTION_RARE.first(this);
  }

  /** Moves to a new state; an illegal transition is a bug and throws. */
  private transition(to: ConnState): void {
    this.state = checkTransition(this.id, this.state, to);
  }

  /** Whether the server selected pipelining (known once connected). */
  get pipelined(): boolean {
    return this.pipe !== null;
  }

  /** Whether the connection offered pipelining (pipeline_depth > 1: mTLS, or plaintext with pipeline_plaintext). */
  get offersPipelining(): boolean {
    return this.pipelineStall !== null;
  }

  /** Pipelines to a plaintext app: a request that is not `pipelinable` goes alone (pipeline.ts, PipelineHost.safeOnly). */
  get safeOnly(): boolean {
    return this.pipelineStall !== null && this.materialKey === null;
  }

  /** Requests on this connection: in flight on a pipelined one, else assigned (or joined while connecting). */
  get inFlight(): number {
    if (this.pipe !== null) return this.pipe.inFlight;
    return (this.request === null ? 0 : 1) + (this.joined?.length ?? 0);
  }

  /**
   * Whether one more request may go on this connection now, short of `depth` in flight: a pipelined
   * connection in use whose pipeline accepts it, or one that offered pipelining and is connecting.
   * `batch`: only if the request would leave in a write this loop turn makes anyway, with fewer than
   * `batch` others (null: at any time, behind any number short of `depth`).
   */
  takesMore(depth: number, now: number, batch: number | null): boolean {
    if (this.state === ConnState.Connecting) {
      if (this.pipelineStall === null || (this.safeOnly && this.request !== null && !this.request.pipelinable)) return false;
      return (batch === null || this.newThisTurn) && this.inFlight < (batch === null ? depth : Math.min(depth, batch));
    }
    return this.state === ConnState.Busy && this.pipe !== null && (batch === null || this.pipe.batchOpen(batch)) && this.pipe.accepts(depth, now);
  }

  /** Gives the connection to a request (the pool calls this). */
  assign(req: UpstreamRequest): void {
    if (this.pipe !== null) {
      this.uses++;
      if (this.state === ConnState.Idle) this.transition(ConnState.Busy);
      this.pipe.add(req, this.uses > 1);
      return;
    }
    if (this.state === ConnState.Connecting && this.request !== null) {
      (this.joined ??= []).push(req); // pipelining was offered: sent once the server selects it
      return;
    }
    this.request = req;
    this.requestComplete = false;
    this.uses++;
    if (this.state === ConnState.Connecting) return; // told once connected
    this.transition(ConnState.Busy);
    this.parser.start(req, req.isHead);
    req.onConnection(this);
  }

  /** Takes back a request that joined while connecting (its try ended first); whether it was here. */
  withdraw(req: UpstreamRequest): boolean {
    const i = this.joined?.indexOf(req) ?? -1;
    if (i >= 0) this.joined!.splice(i, 1);
    return i >= 0;
  }

  /** The prebuilt head bytes, as they are. */
  sendHead(req: UpstreamRequest, complete: boolean): void {
    this.socket.write(req.upstreamHead);
    if (complete) this.requestComplete = true;
  }

  write(data: string | Buffer): boolean {
    return this.socket.write(data);
  }

  /** The body's last bytes (with any trailers, in the last chunk) were written already. */
  endRequest(): void {
    this.requestComplete = true;
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  /** Response backpressure: stop reading until resumeReading(). */
  pauseReading(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  resumeReading(): void {
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Whether the request on this connection was sent over a connection that had served others. */
  get reused(): boolean {
    return this.uses > 1;
  }

  /** Whether no byte of the current response has arrived yet. */
  get awaitingResponse(): boolean {
    return this.parser.idleAtStart;
  }

  /** Closes the connection now; the current request (if any) is not told. */
  destroy(): void {
    this.request = null;
    if (this.state !== ConnState.Closed) {
      this.transition(ConnState.Closed);
      this.ticker.delete(this);
      this.socket.destroy();
      this.owner.onClosed(this);
    }
  }

  /** Connect timeout. */
  onDeadline(): void {
    if (this.state === ConnState.Connecting) {
      this.fail(new ProxyError('upstream_connect_failed', `connect timeout to ${this.host}:${this.port}`));
    }
  }

  private onConnect(): void {
    this.ticker.delete(this);
    this.deadline = 0;
    this.owner.onConnected(this);
    const req = this.request;
    if (req !== null && (this.pipe !== null || this.joined !== null)) {
      this.startJoined(req);
    } else if (req !== null) {
      this.transition(ConnState.Busy);
      this.parser.start(req, req.isHead);
      req.onConnection(this);
    } else if (this.state === ConnState.Connecting) {
      this.transition(ConnState.Idle);
      this.lastUsed = this.ticker.now;
      this.owner.onReusable(this);
    }
  }

  /**
   * The requests assigned while connecting, once connected: in order on a pipelined connection
   * while each is written whole (bodies never interleave); the others, and all but the first when
   * the server did not select pipelining, go back to the pool.
   */
  private startJoined(first: UpstreamRequest): void {
    const rest = this.joined ?? [];
    this.joined = null;
    if (this.pipe === null) {
      this.transition(ConnState.Busy);
      this.parser.start(first, first.isHead);
      first.onConnection(this);
      for (const r of rest) this.owner.redispatch(r);
      return;
    }
    this.request = null;
    this.uses = 0;
    this.transition(ConnState.Busy);
    this.placingJoined = true; // the joined requests go before any waiter
    for (const r of [first, ...rest]) {
      if (this.state !== ConnState.Closed && this.pipe.lastWrittenWhole) this.assign(r);
      else this.owner.redispatch(r);
    }
    this.placingJoined = false;
    if (this.state === ConnState.Busy) this.owner.onSlot(this);
  }

  // ---- PipelineHost ----

  get readingPaused(): boolean {
    return this.paused;
  }

  pipelineIdle(): void {
    if (this.state !== ConnState.Busy) return;
    this.transition(ConnState.Idle);
    this.lastUsed = this.ticker.now;
    this.owner.onReusable(this);
  }

  pipelineSlot(): void {
    if (!this.placingJoined) this.owner.onSlot(this);
  }

  pipelinePeerClosing(): void {
    this.owner.onPeerClosing(this);
  }

  pipelineProven(): void {
    this.owner.onPipelineProven();
  }

  get pipeliningProven(): boolean {
    return this.owner.pipeliningProven;
  }

  pipelineLost(): void {
    this.owner.onPipelineLost();
  }

  pipelineMoved(n: number): void {
    this.owner.onPipelineMoved(n);
  }

  pipelineClosed(): void {
    this.destroy();
  }

  /**
   * After the handshake, the cleartext reads land in READ_BUFFER as a plaintext connection's do
   * (user_buffer.ts); 'data' events where that cannot be done. Bytes read before (none, unless the
   * server spoke first) are handed on first. Called once onConnect has run, as the first 'data'
   * event came after it before.
   */
  private readCleartext(socket: tls.TLSSocket): void {
    const onCleartext = (n: number, buf: Buffer): void => {
      if (this.pipe !== null) this.pipe.onData(buf, n);
      else this.onRead(n, buf);
    };
    const early = takeOverReads(socket, READ_BUFFER, onCleartext);
    if (early === false) socket.on('data', (buf: Buffer) => onCleartext(buf.length, buf));
    else if (early !== null) onCleartext(early.length, early);
  }

  private onRead(n: number, buf: Buffer): boolean {
    if (this.pipe !== null) {
      this.pipe.onData(buf, n);
      return true;
    }
    const req = this.request;
    if (req === null) {
      // Bytes on an idle connection: the upstream is broken or closing; never reuse it.
      this.destroy();
      return false;
    }
    this.readN = n;
    this.readBuf = buf;
    req.runCorked(this.processRead);
    return true;
  }

  private process(buf: Buffer, n: number): void {
    const used = this.parser.execute(buf, 0, n);
    if (this.parser.failed) {
      this.fail(new ProxyError('upstream_protocol_error', `invalid response from ${this.host}:${this.port}: ${this.parser.error}`));
      return;
    }
    if (this.parser.done) this.responseDone(used < n);
  }

  /** The response completed (the sink already heard onEnd). */
  private responseDone(extraBytes: boolean): void {
    this.request = null;
    if (this.state === ConnState.Closed) return;
    if (extraBytes || !this.parser.keepAlive || !this.requestComplete) {
      this.destroy();
      return;
    }
    this.resumeReading();
    this.transition(ConnState.Idle);
    this.lastUsed = this.ticker.now;
    this.owner.onReusable(this);
  }

  private onSocketEnd(): void {
    if (this.pipe !== null) {
      this.pipe.onEnd();
      return;
    }
    // The upstream closed its side: an EOF-delimited body ends here; anything else is cut short.
    if (this.request !== null && this.parser.onEof()) {
      this.request = null;
      this.destroy();
      return;
    }
    this.fail(new ProxyError('upstream_reset', `${this.host}:${this.port} closed the connection`));
  }

  private onSocketError(err: NodeJS.ErrnoException): void {
    const code = err.code ?? 'ERR';
    const at = `${this.host}:${this.port}`;
    if (err instanceof IdentityMismatchError) {
      this.fail(new ProxyError('upstream_identity_mismatch', `${at}: ${err.detail}`));
      return;
    }
    const connecting = this.state === ConnState.Connecting;
    if (!connecting && this.materialKey !== null && code.startsWith('ERR_SSL')) {
      // TLS 1.3: the server judges our certificate after our handshake is done, so its refusal
      // (an alert) arrives as an error on the first read.
      this.fail(new ProxyError('upstream_tls_failed', `${at} refused the TLS session: ${code}`));
    } else if (!connecting) {
      this.fail(new ProxyError('upstream_reset', `connection to ${at} failed: ${code}`));
    } else if (this.materialKey !== null && !NETWORK_ERRORS.has(code)) {
      this.fail(new ProxyError('upstream_tls_failed', `TLS handshake with ${at} failed: ${code === 'ERR' ? err.message : code}`));
    } else {
      this.fail(new ProxyError('upstream_connect_failed', `connect to ${at} failed: ${code}`));
    }
  }

  private onSocketClose(): void {
    if (this.state !== ConnState.Closed) {
      this.fail(new ProxyError('upstream_reset', `${this.host}:${this.port} closed the connection`));
    }
  }

  private fail(err: ProxyError): void {
    if (this.pipe !== null) {
      this.pipe.failAll(err);
      return;
    }
    const joined = this.joined;
    this.joined = null;
    const req = this.request;
    this.destroy();
    if (req !== null) req.onUpstreamError(err, this);
    // Requests that joined a connection that never opened: nothing of them was sent.
    if (joined !== null) for (const r of joined) r.onUpstreamError(err, null);
  }
}
