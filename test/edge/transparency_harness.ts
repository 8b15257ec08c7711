// Harness for the transparency matrix (test/edge/transparency_matrix.test.ts, issue 19): a raw
// `net` app that records the exact bytes of every request and answers with exact bytes a case
// scripts, a raw (TCP or TLS) client that sends exact bytes and records every response (1xx
// interims included), one incremental HTTP/1.x parser for both, and the normalisation + diff
// between a direct run (client → app) and a proxied run (client → listener → app).
//
// All header names and values are latin1 strings: one char per byte, so obs-text (0x80–0xFF) and
// UTF-8 compare byte for byte. Every wait is bounded. closeHarness() ends what this file started.

import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { firstEvent } from '../../src/net/events.js';

export type Header = [name: string, value: string];
/** How a message body was delimited on the wire. */
export type Framing = 'none' | 'length' | 'chunked' | 'close';

const live = new Set<{ close(): void }>();

/** Destroys every app socket, server and client socket the harness still has open. */
export function closeHarness(): void {
  for (const x of [...live]) x.close();
  live.clear();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

// ---------------------------------------------------------------------------------------------
// One incremental HTTP/1.x parser (requests or responses)

/** One parsed (possibly still incomplete) message. */
export interface Message {
  /** Start line as received (latin1). */
  startLine: string;
  method: string;
  target: string;
  /** `HTTP/1.1`, `HTTP/1.0`. */
  version: string;
  status: number;
  reason: string;
  /** 1xx response. */
  interim: boolean;
  /** Header lines in order, duplicates kept: [name as sent, value without surrounding OWS]. */
  headers: Header[];
  /** Raw head bytes (start line .. CRLFCRLF). */
  head: Buffer;
  framing: Framing;
  chunkExtensions: string[];
  /** Number of chunks with data (chunked framing). */
  chunks: number;
  trailers: Header[];
  bodyLength: number;
  /** sha256 hex of the body (final once `complete`; of the bytes so far otherwise). */
  bodySha256: string;
  /** The body bytes (only the first `bodyCap` bytes are kept). */
  body: Buffer;
  complete: boolean;
}

const enum St {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  Close,
  Broken,
}

export interface ParserOptions {
  /** Body bytes kept per message (the rest is only hashed). */
  bodyCap?: number;
  /** Responses: whether the n-th final (non-1xx) response answers a HEAD request. */
  isHead?: (finalIndex: number) => boolean;
  /** Called once a head is parsed (the message object then fills as the body arrives). */
  onHead?: (m: Message) => void;
  /** Called when a message is complete. */
  onComplete?: (m: Message) => void;
}

export class MessageParser {
  readonly messages: Message[] = [];
  private st: St = St.Head;
  private buf: Buffer = Buffer.alloc(0);
  private cur: Message | null = null;
  private remaining = 0;
  private hash = createHash('sha256');
  private parts: Buffer[] = [];
  private kept = 0;
  private finals = 0;
  private searchFrom = 0;
  /** Why parsing stopped (malformed input), or null. */
  error: string | null = null;

  constructor(
    private readonly mode: 'request' | 'response',
    private readonly opts: ParserOptions = {},
  ) {}

  get current(): Message | null {
    return this.cur;
  }

  feed(chunk: Buffer): void {
    const b = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let i = 0;
    let progress = true;
    while (progress && this.st !== St.Broken) {
      progress = false;
      switch (this.st) {
        case St.Head: {
          const end = b.indexOf('\r\n\r\n', i + this.searchFrom);
          if (end < 0) {
            this.searchFrom = Math.max(0, b.length - i - 3);
            break;
          }
          this.searchFrom = 0;
          const head = b.subarray(i, end + 4);
          i = end + 4;
          this.parseHead(head);
          progress = true;
          break;
        }
        case St.Length:
        case St.ChunkData: {
          if (i >= b.length) break;
          const n = Math.min(this.remaining, b.length - i);
          this.bodyBytes(b.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            if (this.st === St.Length) this.finish();
            else this.st = St.ChunkDataEnd;
          }
          progress = true;
          break;
        }
        case St.Close: {
          if (i >= b.length) break;
          this.bodyBytes(b.subarray(i));
          i = b.length;
          break;
        }
        case St.ChunkSize:
        case St.Trailers: {
          const le = b.indexOf('\r\n', i);
          if (le < 0) break;
          const line = b.toString('latin1', i, le);
          i = le + 2;
          progress = true;
          if (this.st === St.ChunkSize) this.chunkSizeLine(line);
          else if (line === '') this.finish();
          else this.cur!.trailers.push(splitHeader(line));
          break;
        }
        case St.ChunkDataEnd: {
          if (b.length - i < 2) break;
          if (b[i] !== 0x0d || b[i + 1] !== 0x0a) {
            this.broken('chunk data not followed by CRLF');
            break;
          }
          i += 2;
          this.st = St.ChunkSize;
          progress = true;
          break;
        }
        default:
          break;
      }
    }
    // Keep only the unconsumed tail (copied: the caller may reuse its buffer).
    this.buf = i >= b.length ? Buffer.alloc(0) : Buffer.from(b.subarray(i));
  }

  /** A chunk size line (extensions recorded): the next chunk's data, or the trailers after the last chunk. */
  private chunkSizeLine(line: string): void {
    const semi = line.indexOf(';');
    const sizeText = (semi < 0 ? line : line.slice(0, semi)).trim();
    if (semi >= 0) this.cur!.chunkExtensions.push(line.slice(semi + 1));
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) {
      this.broken(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
      return;
    }
    const size = parseInt(sizeText, 16);
    if (size === 0) {
      this.st = St.Trailers;
    } else {
      this.cur!.chunks++;
      this.remaining = size;
      this.st = St.ChunkData;
    }
  }

  /** The peer closed: a close-delimited body ends here; anything else in flight stays incomplete. */
  eof(): void {
    if (this.st === St.Close) this.finish();
  }

  /** Bytes received after the last complete message (not consumed). */
  get leftover(): Buffer {
    return this.buf;
  }

  private parseHead(head: Buffer): void {
    const text = head.toString('latin1', 0, head.length - 4);
    const lines = text.split('\r\n');
    const startLine = lines[0] ?? '';
    const m: Message = {
      startLine,
      method: '',
      target: '',
      version: '',
      status: 0,
      reason: '',
      interim: false,
      headers: lines.slice(1).map(splitHeader),
      head: Buffer.from(head),
      framing: 'none',
      chunkExtensions: [],
      chunks: 0,
      trailers: [],
      bodyLength: 0,
      bodySha256: '',
      body: Buffer.alloc(0),
      complete: false,
    };
    this.cur = m;
    this.messages.push(m);
    this.hash = createHash('sha256');
    this.parts = [];
    this.kept = 0;
    const te = headerValues(m.headers, 'transfer-encoding');
    const cl = headerValues(m.headers, 'content-length');
    const chunked = te.length > 0 && /chunked\s*$/i.test(te.join(','));
    if (this.mode === 'request') {
      const sp1 = startLine.indexOf(' ');
      const sp2 = startLine.lastIndexOf(' ');
      m.method = startLine.slice(0, sp1);
      m.target = startLine.slice(sp1 + 1, sp2);
      m.version = startLine.slice(sp2 + 1);
      this.opts.onHead?.(m);
      if (chunked) this.startBody('chunked');
      else if (cl.length > 0 && Number(cl[0]) > 0) this.startBody('length', Number(cl[0]));
      else if (cl.length > 0) {
        m.framing = 'length';
        this.finish();
      } else this.finish();
      return;
    }
    const sm = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(startLine);
    if (sm === null) {
      this.broken(`not a status line: ${JSON.stringify(startLine.slice(0, 80))}`);
      return;
    }
    m.version = sm[1]!;
    m.status = Number(sm[2]);
    m.reason = sm[3] ?? '';
    m.interim = m.status >= 100 && m.status < 200;
    this.opts.onHead?.(m);
    if (m.interim) {
      this.finish();
      return;
    }
    const head_ = this.opts.isHead?.(this.finals) ?? false;
    this.finals++;
    if (head_ || m.status === 204 || m.status === 304) {
      this.finish();
    } else if (chunked) this.startBody('chunked');
    else if (cl.length > 0 && Number(cl[0]) > 0) this.startBody('length', Number(cl[0]));
    else if (cl.length > 0) {
      m.framing = 'length';
      this.finish();
    } else this.startBody('close');
  }

  private startBody(f: Framing, length = 0): void {
    this.cur!.framing = f;
    if (f === 'length') {
      this.remaining = length;
      this.st = St.Length;
    } else if (f === 'chunked') {
      this.st = St.ChunkSize;
    } else {
      this.st = St.Close;
    }
  }

  private bodyBytes(b: Buffer): void {
    if (b.length === 0) return;
    const m = this.cur!;
    m.bodyLength += b.length;
    this.hash.update(b);
    const cap = this.opts.bodyCap ?? 4 * 1024 * 1024;
    if (this.kept < cap) {
      const take = b.subarray(0, cap - this.kept);
      this.parts.push(Buffer.from(take));
      this.kept += take.length;
    }
  }

  private finish(): void {
    const m = this.cur!;
    m.complete = true;
    m.bodySha256 = this.hash.copy().digest('hex');
    m.body = Buffer.concat(this.parts);
    this.st = St.Head;
    this.opts.onComplete?.(m);
  }

  /** Snapshot of the body so far of an incomplete message. */
  snapshot(): void {
    const m = this.cur;
    if (m === null || m.complete) return;
    m.bodySha256 = this.hash.copy().digest('hex');
    m.body = Buffer.concat(this.parts);
  }

  private broken(why: string): void {
    this.error = why;
    this.st = St.Broken;
  }
}

export function splitHeader(line: string): Header {
  const c = line.indexOf(':');
  if (c < 0) return [line, ''];
  return [line.slice(0, c), line.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, '')];
}

/** Values of header `name` (any case), in order. */
export function headerValues(h: readonly Header[], name: string): string[] {
  const n = name.toLowerCase();
  return h.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

/** Parses exact client bytes into the requests they hold (method, version, headers). */
export function parseRequests(bytes: Buffer): Message[] {
  const p = new MessageParser('request', { bodyCap: 0 });
  p.feed(bytes);
  return p.messages;
}

// ---------------------------------------------------------------------------------------------
// The app: a raw net server with scripted answers

/** A request as the app received it. */
export interface AppRequest {
  /** Connection number (per app). */
  readonly conn: number;
  /** The live message (body fills in as it arrives). */
  readonly msg: Message;
  /** The connection closed before the body was complete. */
  aborted: boolean;
  /** Resolves when the body is complete or the connection closed. */
  readonly settled: Promise<void>;
  /** The script's response was cut short: the connection closed while it was still writing. */
  responseCutShort: boolean;
}

export interface AppExchange {
  readonly req: AppRequest;
  /** Writes exact bytes; false when the socket buffer is full (await drain()). */
  write(b: Buffer | string): boolean;
  drain(): Promise<void>;
  /** Waits until the request body is complete (or the connection closed): true when complete. */
  body(): Promise<boolean>;
  /** FIN after what was written. */
  end(): void;
  /** Closes at once (RST when unread data is pending). */
  destroy(): void;
  /** The connection is gone. */
  readonly closed: boolean;
}

/** A case's answer: runs once per request, after the requests before it on the same connection were answered. */
export type AppScript = (x: AppExchange) => Promise<void> | void;

export const PROBE_PATH = '/__probe';
const PROBE_RESPONSE = 'HTTP/1.1 204 No Content\r\nX-Probe: 1\r\n\r\n';

export class RawApp {
  port = 0;
  /** Requests of the current run, in order of arrival (probes excluded). */
  requests: AppRequest[] = [];
  private script: AppScript = () => undefined;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private connCount = 0;

  constructor() {
    this.server = net.createServer((s) => this.onConnection(s));
    live.add({ close: () => this.close() });
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Starts a run: new script, empty request log. */
  beginRun(script: AppScript): void {
    this.script = script;
    this.requests = [];
  }

  /** Waits (bounded) until every request of the run has settled (body complete or connection closed). */
  async settle(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    await Promise.race([Promise.all(this.requests.map((r) => r.settled)), sleep(timeoutMs)]);
    // Requests that arrived while we waited.
    while (Date.now() < until && this.requests.some((r) => !r.msg.complete && !r.aborted)) await sleep(10);
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }

  private onConnection(socket: net.Socket): void {
    const conn = ++this.connCount;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    let closed = false;
    const closeWaiters = new Set<() => void>();
    const pending: Array<{ req: AppRequest; settle: () => void }> = [];
    let chain: Promise<void> = Promise.resolve();
    const parser = new MessageParser('request', {
      bodyCap: 4 * 1024 * 1024,
      onHead: (msg) => {
        let settle!: () => void;
        const req: AppRequest = {
          conn,
          msg,
          aborted: false,
          settled: new Promise<void>((r) => (settle = r)),
          responseCutShort: false,
        };
        pending.push({ req, settle });
        const probe = msg.target.startsWith(PROBE_PATH);
        if (!probe) this.requests.push(req);
        const script = probe ? (x: AppExchange) => void x.write(PROBE_RESPONSE) : this.script;
        chain = chain.then(async () => {
          if (closed) return;
          const x: AppExchange = {
            req,
            write: (b) => {
              if (closed) {
                req.responseCutShort = true;
                return true;
              }
              return socket.write(typeof b === 'string' ? latin1(b) : b);
            },
            drain: () =>
              new Promise<void>((r) => {
                if (closed || !socket.writableNeedDrain) {
                  r();
                  return;
                }
                const done = (): void => {
                  socket.off('drain', done);
                  closeWaiters.delete(done);
                  r();
                };
                socket.on('drain', done);
                closeWaiters.add(done);
              }),
            body: async () => {
              await req.settled;
              return req.msg.complete;
            },
            end: () => socket.end(),
            destroy: () => socket.destroy(),
            get closed() {
              return closed;
            },
          };
          try {
            await script(x);
          } catch (e) {
            console.error('app script failed', e);
            socket.destroy();
          }
        });
      },
      onComplete: (msg) => {
        const i = pending.findIndex((p) => p.req.msg === msg);
        if (i >= 0) {
          pending[i]!.settle();
          pending.splice(i, 1);
        }
      },
    });
    socket.on('data', (d: Buffer) => parser.feed(d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      this.sockets.delete(socket);
      parser.snapshot();
      for (const p of pending.splice(0)) {
        p.req.aborted = true;
        p.settle();
      }
      for (const w of [...closeWaiters]) w();
      closeWaiters.clear();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Response builders for app scripts

/** A fixed, old Date: a listener that rewrites Date is easy to tell from one that keeps it. */
export const APP_DATE = 'Tue, 15 Jan 2019 10:00:00 GMT';

export interface ResponseSpec {
  status?: number;
  reason?: string;
  /** Header lines in order (exact bytes, latin1). Date and framing are added unless given. */
  headers?: Header[];
  body?: Buffer | string;
  /** 'length' (default): Content-Length; 'chunked': chunks of `chunkSize`; 'close': no length (close after). */
  framing?: 'length' | 'chunked' | 'close' | 'none';
  chunkSize?: number;
  /** Trailer lines after the last chunk (chunked only). */
  trailers?: Header[];
  /** Skip the default `Date: APP_DATE` line. */
  noDate?: boolean;
  version?: string;
}

/** The exact bytes of a response. */
export function responseBytes(r: ResponseSpec): Buffer {
  const body = typeof r.body === 'string' ? latin1(r.body) : (r.body ?? Buffer.alloc(0));
  const framing = r.framing ?? 'length';
  let head = `${r.version ?? 'HTTP/1.1'} ${r.status ?? 200} ${r.reason ?? 'OK'}\r\n`;
  if (r.noDate !== true) head += `Date: ${APP_DATE}\r\n`;
  for (const [n, v] of r.headers ?? []) head += `${n}: ${v}\r\n`;
  if (framing === 'length') head += `Content-Length: ${body.length}\r\n`;
  if (framing === 'chunked') head += 'Transfer-Encoding: chunked\r\n';
  head += '\r\n';
  if (framing === 'none') return latin1(head);
  if (framing !== 'chunked') return Buffer.concat([latin1(head), body]);
  const parts: Buffer[] = [latin1(head)];
  const size = r.chunkSize ?? 1000;
  for (let i = 0; i < body.length; i += size) {
    const c = body.subarray(i, i + size);
    parts.push(latin1(`${c.length.toString(16)}\r\n`), c, latin1('\r\n'));
  }
  let tail = '0\r\n';
  for (const [n, v] of r.trailers ?? []) tail += `${n}: ${v}\r\n`;
  parts.push(latin1(`${tail}\r\n`));
  return Buffer.concat(parts);
}

/** Builds the exact bytes of a request. */
export function requestBytes(
  method: string,
  target: string,
  headers: Header[],
  body?: Buffer | string,
  o: { version?: string | undefined; chunked?: number; trailers?: Header[]; noLength?: boolean } = {},
): Buffer {
  const b = typeof body === 'string' ? latin1(body) : body;
  let head = `${method} ${target} ${o.version ?? 'HTTP/1.1'}\r\n`;
  for (const [n, v] of headers) head += `${n}: ${v}\r\n`;
  if (o.chunked !== undefined) head += 'Transfer-Encoding: chunked\r\n';
  else if (b !== undefined && o.noLength !== true) head += `Content-Length: ${b.length}\r\n`;
  head += '\r\n';
  if (b === undefined) return latin1(head);
  if (o.chunked === undefined) return Buffer.concat([latin1(head), b]);
  const parts: Buffer[] = [latin1(head)];
  for (let i = 0; i < b.length; i += o.chunked) {
    const c = b.subarray(i, i + o.chunked);
    parts.push(latin1(`${c.length.toString(16)}\r\n`), c, latin1('\r\n'));
  }
  let tail = '0\r\n';
  for (const [n, v] of o.trailers ?? []) tail += `${n}: ${v}\r\n`;
  parts.push(latin1(`${tail}\r\n`));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// The client

export type ClientStep =
  | { send: Buffer }
  /** Sends a large body in 64 KiB writes with backpressure. */
  | { stream: Buffer }
  /** Waits until an interim response with this status arrived (or the time limit). */
  | { awaitInterim: number; timeoutMs: number }
  | { sleep: number }
  /** Waits until this many response bytes arrived (or the time limit), then closes abruptly. */
  | { abortAfterResponseBytes: number; timeoutMs: number }
  /** Waits until the app has seen `n` bytes of request body (or the time limit), then closes abruptly. */
  | { abortWhen: () => boolean; timeoutMs: number };

export interface Target {
  port: number;
  /** TLS: the roots to verify the listener with. */
  tlsCa?: string;
}

/** What the client saw. */
export interface ClientObservation {
  /** Every response message in order (1xx interims included), probe excluded. */
  messages: Message[];
  /**
   * complete: every expected final response arrived; truncated: a final response's head arrived,
   * then the connection closed before its body was complete; partial: fewer responses than
   * requests, then a close; closed-mid-head: closed after bytes that are not a complete head;
   * closed-no-response: closed without a byte; timeout: neither within the time limit.
   */
  outcome: 'complete' | 'truncated' | 'partial' | 'closed-mid-head' | 'closed-no-response' | 'timeout' | 'client-aborted';
  /**
   * After the last response: 'open' (a probe request on the same connection was answered),
   * 'closed', or 'stuck' (the probe got neither an answer nor a close within 3 s).
   */
  conn: 'open' | 'closed' | 'stuck' | 'n/a';
  /** Per awaitInterim step: whether the interim arrived before the time limit. */
  interimsAwaited: boolean[];
  /** First bytes received, for messages. */
  rawStart: string;
  bytes: number;
  error: string | null;
  parseError: string | null;
}

export interface ClientPlan {
  steps: ClientStep[];
  /** Final responses expected (one per request). */
  finals: number;
  /** Whether each final answers a HEAD. */
  heads: boolean[];
  timeoutMs: number;
  /** Check the connection state with a probe after the responses. */
  probe: boolean;
}

function connect(t: Target): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s =
      t.tlsCa !== undefined
        ? tls.connect({ host: '127.0.0.1', port: t.port, ca: t.tlsCa, checkServerIdentity: () => undefined })
        : net.connect({ host: '127.0.0.1', port: t.port });
    s.once(t.tlsCa !== undefined ? 'secureConnect' : 'connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export async function runClient(t: Target, plan: ClientPlan): Promise<ClientObservation> {
  const socket = await connect(t);
  socket.setNoDelay(true);
  const handle = { close: () => socket.destroy() };
  live.add(handle);
  const parser = new MessageParser('response', {
    bodyCap: 4 * 1024 * 1024,
    isHead: (i) => (i < plan.heads.length ? plan.heads[i]! : false),
  });
  let closed = false;
  let error: string | null = null;
  let received = 0;
  const first: Buffer[] = [];
  let firstLen = 0;
  const wakers = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...wakers]) w();
  };
  socket.on('data', (d: Buffer) => {
    received += d.length;
    if (firstLen < 400) {
      first.push(d.subarray(0, 400 - firstLen));
      firstLen += Math.min(d.length, 400 - firstLen);
    }
    parser.feed(d);
    wake();
  });
  socket.on('error', (e: NodeJS.ErrnoException) => {
    error = e.code ?? e.message;
  });
  socket.on('close', () => {
    closed = true;
    parser.eof();
    wake();
  });
  /** Resolves when cond() holds, the socket closed, or ms passed; returns cond(). */
  const until = (cond: () => boolean, ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const check = (): void => {
        if (cond() || closed) {
          done();
        }
      };
      const done = (): void => {
        clearTimeout(timer);
        wakers.delete(check);
        resolve(cond());
      };
      const timer = setTimeout(done, ms);
      wakers.add(check);
      check();
    });
  const finalsComplete = (): number => parser.messages.filter((m) => !m.interim && m.complete).length;

  const interimsAwaited: boolean[] = [];
  let aborted = false;
  for (const step of plan.steps) {
    if (closed || aborted) break;
    if ('send' in step) {
      socket.write(step.send);
    } else if ('stream' in step) {
      const b = step.stream;
      for (let i = 0; i < b.length && !closed; i += 65536) {
        if (!socket.write(b.subarray(i, i + 65536))) {
          await firstEvent(socket, ['drain', 'close']);
        }
      }
    } else if ('awaitInterim' in step) {
      const st = step.awaitInterim;
      interimsAwaited.push(await until(() => parser.messages.some((m) => m.interim && m.status === st), step.timeoutMs));
    } else if ('sleep' in step) {
      await sleep(step.sleep);
    } else if ('abortAfterResponseBytes' in step) {
      const n = step.abortAfterResponseBytes;
      await until(() => received >= n, step.timeoutMs);
      aborted = true;
      socket.destroy();
    } else if ('abortWhen' in step) {
      const cond = step.abortWhen;
      const t0 = Date.now();
      while (!cond() && Date.now() - t0 < step.timeoutMs && !closed) await sleep(5);
      aborted = true;
      socket.destroy();
    }
  }
  let outcome: ClientObservation['outcome'];
  if (aborted) {
    await sleep(5);
    outcome = 'client-aborted';
  } else {
    const ok = await until(() => finalsComplete() >= plan.finals, plan.timeoutMs);
    if (ok) outcome = 'complete';
    else if (!closed) outcome = 'timeout';
    else if (parser.messages.length === 0) outcome = received === 0 ? 'closed-no-response' : 'closed-mid-head';
    else if (parser.current !== null && !parser.current.complete && !parser.current.interim) outcome = 'truncated';
    else outcome = 'partial';
  }
  parser.snapshot();
  const messages = parser.messages.slice();
  let conn: ClientObservation['conn'] = 'n/a';
  if (outcome === 'complete') {
    if (closed) {
      conn = 'closed';
    } else if (plan.probe) {
      const before = finalsComplete();
      // The probe is a plain GET: its answer is a final response with a body framed as usual.
      socket.write(latin1(`GET ${PROBE_PATH} HTTP/1.1\r\nHost: probe\r\n\r\n`));
      const answered = await until(() => finalsComplete() > before, 3000);
      conn = answered ? 'open' : closed ? 'closed' : 'stuck';
    }
  }
  socket.destroy();
  live.delete(handle);
  return {
    messages,
    outcome,
    conn,
    interimsAwaited,
    rawStart: Buffer.concat(first).toString('latin1'),
    bytes: received,
    error,
    parseError: parser.error,
  };
}

// ---------------------------------------------------------------------------------------------
// Normalisation and diff

/** How a listener is expected to change what passes through it (the documented proxy changes). */
export interface EngineRules {
  readonly name: string;
  /** x-forwarded-proto the app sees. */
  readonly proto: 'http' | 'https';
  /** Header names the app sees: 'lower' (the proxy writes every request header name lower-cased) or 'preserve'. */
  readonly requestNames: 'lower' | 'preserve';
  /** Header names the client sees in responses. */
  readonly responseNames: 'lower' | 'preserve';
  /** The app's Date: 'replaced' (the listener writes its own), 'kept', or 'either' (exactly one Date). */
  readonly date: 'replaced' | 'kept' | 'either';
}

export interface RunResult {
  app: AppRequest[];
  client: ClientObservation;
  /** The requests as the client sent them (parsed from the case's bytes). */
  sent: Message[];
}

export interface Diff {
  /** Stable tag of what differs (e.g. `client.trailers`). */
  readonly tag: string;
  readonly detail: string;
}

const REQ_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  // Not hop-by-hop, but documented: the proxy answers Expect: 100-continue itself.
  'expect',
]);
const PROXY_SET = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-request-id', 'x-forwarded-client-cert']);
const RESP_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te']);

function connectionTokens(h: readonly Header[]): Set<string> {
  const out = new Set<string>();
  for (const v of headerValues(h, 'connection')) {
    for (const t of v.split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok !== '' && tok !== 'close' && tok !== 'keep-alive') out.add(tok);
    }
  }
  return out;
}

/** `h` without the headers its Connection header names and those `changed(name, value)` (lower-case name) says the proxy changes by design. */
function normHeaders(h: readonly Header[], lower: boolean, changed: (n: string, value: string) => boolean): Header[] {
  const named = connectionTokens(h);
  const out: Header[] = [];
  for (const [name, value] of h) {
    const n = name.toLowerCase();
    if (named.has(n) || changed(n, value)) continue;
    out.push([lower ? n : name, value]);
  }
  return out;
}

/** Request headers the proxy changes by design: hop-by-hop, the ones it sets, TE other than "trailers". */
const requestChanged = (n: string, value: string): boolean => REQ_HOP.has(n) || PROXY_SET.has(n) || (n === 'te' && value.trim().toLowerCase() !== 'trailers');
/** Response headers the proxy changes by design: hop-by-hop, framing (compared apart), Date (by policy). */
const responseChanged = (n: string): boolean => RESP_HOP.has(n) || n === 'content-length' || n === 'date';

/** Request headers with the documented changes taken out (both sides go through this). */
export function normRequestHeaders(h: readonly Header[], lower: boolean): Header[] {
  return normHeaders(h, lower, requestChanged);
}

/** Response headers with the documented changes taken out: hop-by-hop, framing (compared apart), Date (by policy). */
export function normResponseHeaders(h: readonly Header[], lower: boolean): Header[] {
  return normHeaders(h, lower, responseChanged);
}

const show = (h: readonly Header[]): string => h.map(([n, v]) => `${n}: ${JSON.stringify(v).slice(1, -1)}`).join(' | ');

function diffHeaders(tag: string, a: readonly Header[], b: readonly Header[], out: Diff[]): void {
  if (a.length === b.length && a.every(([n, v], i) => b[i]![0] === n && b[i]![1] === v)) return;
  let i = 0;
  while (i < a.length && i < b.length && a[i]![0] === b[i]![0] && a[i]![1] === b[i]![1]) i++;
  const cut = (h: readonly Header[]): string => show(h.slice(i, i + 4)) + (h.length > i + 4 ? ` … (+${h.length - i - 4})` : '');
  out.push({ tag, detail: `first difference at line ${i} (of ${a.length} direct, ${b.length} proxied): direct [${cut(a)}] proxied [${cut(b)}]` });
}

/** A body pair: equal, or (when a side is incomplete) one a prefix of the other. */
function diffBody(tag: string, a: Message, b: Message, out: Diff[]): void {
  if (a.complete && b.complete) {
    if (a.bodyLength !== b.bodyLength || a.bodySha256 !== b.bodySha256) {
      out.push({ tag, detail: `direct ${a.bodyLength} B sha ${a.bodySha256.slice(0, 12)}, proxied ${b.bodyLength} B sha ${b.bodySha256.slice(0, 12)}` });
    }
    return;
  }
  const n = Math.min(a.body.length, b.body.length);
  if (!a.body.subarray(0, n).equals(b.body.subarray(0, n))) out.push({ tag, detail: `body bytes differ within the first ${n} B` });
}

function diffTrailers(tag: string, a: readonly Header[], b: readonly Header[], lower: boolean, out: Diff[]): void {
  const na = a.map(([n, v]): Header => [lower ? n.toLowerCase() : n, v]);
  diffHeaders(tag, na, b, out);
}

const isHttp10 = (m: Message | undefined): boolean => m?.version === 'HTTP/1.0';

/**
 * What the app saw through the proxy vs direct. `sent` are the client's requests (for the
 * x-forwarded-for / x-request-id expectations). `unordered`: compare requests sorted by target
 * (pipelined requests may reach the app on several pooled connections).
 */
export function diffApp(
  direct: readonly AppRequest[],
  proxied: readonly AppRequest[],
  sent: readonly Message[],
  rules: EngineRules,
  unordered: boolean,
): Diff[] {
  const out: Diff[] = [];
  if (direct.length !== proxied.length) {
    out.push({ tag: 'app.count', detail: `the app received ${direct.length} request(s) direct, ${proxied.length} through the proxy` });
    return out;
  }
  const key = (r: AppRequest): string => `${r.msg.target} ${r.msg.method}`;
  const d = unordered ? [...direct].sort((x, y) => key(x).localeCompare(key(y))) : direct;
  const p = unordered ? [...proxied].sort((x, y) => key(x).localeCompare(key(y))) : proxied;
  const s = unordered ? [...sent].sort((x, y) => `${x.target} ${x.method}`.localeCompare(`${y.target} ${y.method}`)) : sent;
  const lower = rules.requestNames === 'lower';
  for (let i = 0; i < d.length; i++) {
    const a = d[i]!.msg;
    const b = p[i]!.msg;
    const at = `#${i}`;
    if (a.method !== b.method) out.push({ tag: 'app.method', detail: `${at} ${a.method} → ${b.method}` });
    if (a.target !== b.target)
      out.push({ tag: 'app.target', detail: `${at} ${JSON.stringify(a.target.slice(0, 200))} → ${JSON.stringify(b.target.slice(0, 200))}` });
    if (b.version !== a.version && b.version !== 'HTTP/1.1') out.push({ tag: 'app.version', detail: `${at} ${a.version} → ${b.version}` });
    diffHeaders('app.headers', normRequestHeaders(a.headers, lower), normRequestHeaders(b.headers, false), out);
    // Proxy-set headers, exactly once each.
    const sentXff = headerValues(s[i]?.headers ?? a.headers, 'x-forwarded-for');
    const xff = headerValues(b.headers, 'x-forwarded-for');
    const wantXff = [...sentXff, '127.0.0.1'].join(', ');
    if (xff.length !== 1 || xff[0] !== wantXff) out.push({ tag: 'app.x-forwarded-for', detail: `${at} want [${wantXff}], got ${JSON.stringify(xff)}` });
    const xfp = headerValues(b.headers, 'x-forwarded-proto');
    if (xfp.length !== 1 || xfp[0] !== rules.proto)
      out.push({ tag: 'app.x-forwarded-proto', detail: `${at} want [${rules.proto}], got ${JSON.stringify(xfp)}` });
    const sentId = headerValues(s[i]?.headers ?? a.headers, 'x-request-id');
    const id = headerValues(b.headers, 'x-request-id');
    if (id.length !== 1 || (sentId.length > 0 ? id[0] !== sentId[0] : !/^[0-9a-zA-Z-]{8,}$/.test(id[0]!))) {
      out.push({ tag: 'app.x-request-id', detail: `${at} sent ${JSON.stringify(sentId)}, got ${JSON.stringify(id)}` });
    }
    const te = headerValues(b.headers, 'transfer-encoding');
    if (a.framing !== b.framing) out.push({ tag: 'app.framing', detail: `${at} ${a.framing} → ${b.framing}` });
    if (te.length > 1) out.push({ tag: 'app.framing', detail: `${at} ${te.length} transfer-encoding lines` });
    if (d[i]!.aborted !== p[i]!.aborted)
      out.push({ tag: 'app.aborted', detail: `${at} connection closed before the body was complete: direct ${d[i]!.aborted}, proxied ${p[i]!.aborted}` });
    if (a.complete !== b.complete && !(d[i]!.aborted || p[i]!.aborted))
      out.push({ tag: 'app.complete', detail: `${at} complete: direct ${a.complete}, proxied ${b.complete}` });
    diffBody('app.body', a, b, out);
    diffTrailers('app.trailers', a.trailers, b.trailers, lower, out);
    if (d[i]!.responseCutShort !== p[i]!.responseCutShort) {
      out.push({
        tag: 'app.response-cut-short',
        detail: `${at} the app's connection closed while it was answering: direct ${d[i]!.responseCutShort}, proxied ${p[i]!.responseCutShort}`,
      });
    }
  }
  return out;
}

/** Observations beside the diff, for the score line (per engine). */
export interface Notes {
  /** The app's Date reached the client unchanged (per final response that had one). */
  dateKept: boolean[];
}

/** What the client saw through the proxy vs direct. `conn: 'either'` when both connection outcomes are correct. */
export function diffClient(
  direct: ClientObservation,
  proxied: ClientObservation,
  sent: readonly Message[],
  rules: EngineRules,
  o: { conn?: 'either' | undefined },
  notes: Notes,
): Diff[] {
  const out: Diff[] = [];
  const lower = rules.responseNames === 'lower';
  // Never a uWebSockets header, whatever the response.
  for (const m of proxied.messages) {
    const u = headerValues(m.headers, 'uwebsockets');
    if (u.length > 0) out.push({ tag: 'client.uwebsockets-header', detail: `${m.status} response carries uWebSockets: ${u.join(', ')}` });
  }
  if (direct.outcome !== proxied.outcome) out.push({ tag: 'client.outcome', detail: `direct ${direct.outcome}, proxied ${proxied.outcome}` });
  const di = direct.messages.filter((m) => m.interim);
  const pi = proxied.messages.filter((m) => m.interim);
  const df = direct.messages.filter((m) => !m.interim);
  const pf = proxied.messages.filter((m) => !m.interim);
  if (di.length !== pi.length || di.some((m, i) => m.status !== pi[i]!.status)) {
    out.push({
      tag: 'client.interim',
      detail: `interim responses: direct [${di.map((m) => `${m.status} ${m.reason}`).join(', ')}], proxied [${pi.map((m) => `${m.status} ${m.reason}`).join(', ')}]`,
    });
  } else {
    for (let i = 0; i < di.length; i++) {
      if (di[i]!.reason !== pi[i]!.reason)
        out.push({ tag: 'client.interim', detail: `interim ${i} reason ${JSON.stringify(di[i]!.reason)} → ${JSON.stringify(pi[i]!.reason)}` });
      diffHeaders('client.interim', normResponseHeaders(di[i]!.headers, lower), normResponseHeaders(pi[i]!.headers, false), out);
    }
  }
  if (direct.interimsAwaited.join() !== proxied.interimsAwaited.join()) {
    out.push({
      tag: 'client.interim',
      detail: `awaited interim arrived in time: direct ${direct.interimsAwaited.join()}, proxied ${proxied.interimsAwaited.join()}`,
    });
  }
  if (df.length !== pf.length) {
    out.push({
      tag: 'client.count',
      detail: `final responses: direct ${df.length}, proxied ${pf.length} (proxied start: ${JSON.stringify(proxied.rawStart.slice(0, 160))})`,
    });
  }
  const n = Math.min(df.length, pf.length);
  for (let i = 0; i < n; i++) {
    const a = df[i]!;
    const b = pf[i]!;
    const at = n > 1 ? `#${i} ` : '';
    const req = sent[i];
    if (a.status !== b.status) out.push({ tag: 'client.status', detail: `${at}${a.status} → ${b.status}` });
    if (a.reason !== b.reason) out.push({ tag: 'client.reason', detail: `${at}${JSON.stringify(a.reason)} → ${JSON.stringify(b.reason)}` });
    diffHeaders('client.headers', normResponseHeaders(a.headers, lower), normResponseHeaders(b.headers, false), out);
    // Framing: Content-Length kept with its value; chunked stays chunked; a close-delimited body may
    // be re-framed (chunked for an HTTP/1.1 client, Content-Length or close for 1.0); never chunked to 1.0.
    const acl = headerValues(a.headers, 'content-length');
    const bcl = headerValues(b.headers, 'content-length');
    const client10 = isHttp10(req);
    if (client10 && b.framing === 'chunked') out.push({ tag: 'client.framing', detail: `${at}chunked response to an HTTP/1.0 client` });
    else if (a.framing === 'close' ? !(b.framing === 'close' || (client10 ? b.framing === 'length' : b.framing === 'chunked')) : a.framing !== b.framing) {
      out.push({ tag: 'client.framing', detail: `${at}${a.framing} → ${b.framing}` });
    }
    if (a.framing !== 'close' && acl.join() !== bcl.join() && !(a.status === 204 && bcl.length === 0)) {
      out.push({ tag: 'client.content-length', detail: `${at}Content-Length ${JSON.stringify(acl)} → ${JSON.stringify(bcl)}` });
    }
    if (headerValues(b.headers, 'transfer-encoding').length > 1) out.push({ tag: 'client.framing', detail: `${at}several transfer-encoding lines` });
    diffBody('client.body', a, b, out);
    if (a.complete && b.complete) diffTrailers('client.trailers', a.trailers, b.trailers, lower, out);
    // Date: exactly one; kept or replaced by the engine's policy.
    const ad = headerValues(a.headers, 'date');
    const bd = headerValues(b.headers, 'date');
    if (bd.length > 1) out.push({ tag: 'client.date', detail: `${at}${bd.length} Date lines: ${JSON.stringify(bd)}` });
    else if (ad.length === 1) {
      if (bd.length === 0) out.push({ tag: 'client.date', detail: `${at}the app's Date was dropped and none written` });
      else {
        const kept = bd[0] === ad[0];
        notes.dateKept.push(kept);
        if (rules.date === 'kept' && !kept) out.push({ tag: 'client.date', detail: `${at}Date ${ad[0]} → ${bd[0]} (this engine keeps the app's Date)` });
        if (Number.isNaN(Date.parse(bd[0]!))) out.push({ tag: 'client.date', detail: `${at}Date ${JSON.stringify(bd[0])} is not an HTTP-date` });
        else if (rules.date === 'replaced' && kept) {
          out.push({ tag: 'client.date', detail: `${at}Date ${ad[0]} → ${bd[0]} (this engine writes its own Date)` });
        }
      }
    }
  }
  // Connection semantics.
  // A close-delimited body re-framed by the proxy ends cleanly: the connection may stay open,
  // unless the client asked to close it. `conn: 'either'`: both are correct. A connection that
  // neither answers nor closes ('stuck') is always a difference.
  const reframed = df.some((m, i) => m.framing === 'close' && pf[i] !== undefined && pf[i].framing !== 'close');
  const flexible = o.conn === 'either' || (reframed && !wantsClose(sent));
  if (proxied.conn !== direct.conn && (!flexible || proxied.conn === 'stuck' || proxied.conn === 'n/a')) {
    out.push({ tag: 'client.connection', detail: `after the response the connection is ${direct.conn} direct, ${proxied.conn} proxied` });
  }
  // An HTTP/1.0 client keeps its connection only when the response says keep-alive.
  const last = pf[pf.length - 1];
  if (
    isHttp10(sent[sent.length - 1]) &&
    proxied.conn === 'open' &&
    last !== undefined &&
    !/keep-alive/i.test(headerValues(last.headers, 'connection').join(','))
  ) {
    out.push({ tag: 'client.connection', detail: 'HTTP/1.0 client: the connection stayed open but the response has no Connection: keep-alive' });
  }
  return out;
}

/** Whether the (last) request asks to close the connection. */
export function wantsClose(sent: readonly Message[]): boolean {
  const last = sent[sent.length - 1];
  if (last === undefined) return false;
  const c = headerValues(last.headers, 'connection').join(',').toLowerCase();
  if (last.version === 'HTTP/1.0') return !c.includes('keep-alive');
  return c.includes('close');
}
