// Harness for the hostile-input suite of the HTTP/1 edge (test/edge/hostile.test.ts, issue 19).
// - RecordingUpstream: a raw `net` server with its own small, strict HTTP/1.1 request parser
//   (Content-Length and chunked bodies, keep-alive). It records every complete request (method,
//   target, headers, body, trailers) and answers each with 200 and a body naming the request's
//   sequence number; whatever it cannot parse strictly becomes a `desync` flag, and a request the
//   proxy cannot have produced (a /SMUGGLED marker, method SMUGGLE, no x-forwarded-proto or
//   x-request-id) a `smuggled` flag. It never throws.
// - startBadUpstream: a misbehaving upstream (on startRawUpstream) for the response-side cases.
// - runRequestCase / runResponseCase: one case on one fresh client connection (plain or TLS).
// - judgeRequestCase / judgeResponseCase: the assertions, as a list of problems (empty = pass).
// A case is one table entry (HostileCase / ResponseCase); tokens (`t12`, `r3`) tie the bytes a
// case sends to what the upstream received, so cases can run concurrently.

import net from 'node:net';
import tls from 'node:tls';
import { startRawUpstream, type RawUpstream } from '../helpers/sidecar.js';

/** Listeners: `engine: uws`, `engine: node`, TLS on node, `engine: strict` (src/dataplane/h1/), TLS on strict. */
export type Engine = 'uws' | 'node' | 'tls' | 'strict' | 'strict-tls';
export const ENGINES: readonly Engine[] = ['uws', 'node', 'tls', 'strict', 'strict-tls'];
/** Whether the engine's listener speaks TLS. */
export const isTlsEngine = (e: Engine): boolean => e === 'tls' || e === 'strict-tls';

/**
 * What a correct edge does with a case:
 * - `forward`: every request in the bytes (`requests`, default 1) reaches the upstream exactly
 *   once, and the client gets one proxied 2xx per request, in order.
 * - `refuse400` / `refuse431`: `before` proxied responses (default 0), then 400 `bad_request` /
 *   431 `headers_too_large` from the proxy, then the connection closes; nothing else upstream.
 * - `closeOrRefuse`: a refusal as above (400/431), or the connection closes without an answer
 *   (only ever expected that way on the uws engine, whose own parser drops some shapes).
 * - `forwardOrRefuse`: `forward`, or a refusal with an answer (both are correct per the RFCs).
 * - `incomplete`: the bytes never form a complete request and the client waits `holdMs`: no
 *   proxied response, any answer is a refusal, nothing complete upstream.
 * - `h2GoAway`: the bytes start with the HTTP/2 preface on a `protocol: auto` listener, so they
 *   are HTTP/2: the answer is HTTP/2 frames (SETTINGS, then a GOAWAY for the bytes that are not a
 *   frame), never an HTTP/1 response, and nothing reaches the upstream.
 */
export type Outcome = 'forward' | 'refuse400' | 'refuse431' | 'closeOrRefuse' | 'forwardOrRefuse' | 'incomplete' | 'h2GoAway';

export type Part = string | Buffer | { pauseMs: number };

/** Per-case names: paths carry the token so the upstream can attribute what it received. */
export interface CaseCtx {
  readonly tok: string;
  /** `/case-<tok>`: the path of the case's own request(s). */
  readonly path: string;
  /** `/SMUGGLED-<tok>`: only ever in bytes a correct parser never reads as a request. */
  readonly smuggled: string;
  /** `/pipelined-<tok>`: a legitimate pipelined request. */
  readonly pipelined: string;
  /** `Host: hostile.test` + `X-Case: <tok>` header lines. */
  readonly H: string;
  /** `X-Case: <tok>` header line alone. */
  readonly X: string;
  /** A complete GET of the smuggled marker (Host + X-Case). */
  readonly smuggledReq: string;
  /** A complete GET of the pipelined path. */
  readonly pipelinedReq: string;
}

export interface HostileCase {
  readonly name: string;
  readonly send: (p: CaseCtx) => Part[];
  readonly expect: Readonly<Record<Engine, Outcome>>;
  /** Why the uws expectation differs from the strict engines' (documentation; shown on failure). */
  readonly uwsWhy?: string;
  /** The strict engines may close without an answer here (a documented limit, see the case). */
  readonly strictMayClose?: boolean;
  /** Requests a correct proxy accepts in these bytes (default 1). */
  readonly requests?: number;
  /** Proxied responses that come before the refusal (refuse400/refuse431; default 0). */
  readonly before?: number;
  /** Half-close the client side after the last write. */
  readonly halfClose?: boolean;
  /** `incomplete`: how long the client waits before giving up (default 1500 ms). */
  readonly holdMs?: number;
  /** Local refusals accepted besides 400 bad_request / 431 headers_too_large. */
  readonly alsoRefuse?: ReadonlyArray<readonly [number, string]>;
  /** Checks on what the upstream received for this case (when anything was forwarded). */
  readonly check?: (reqs: readonly UpRequest[], p: CaseCtx) => string[];
}

/** A response-side case: what the bad upstream answers to `/bad-upstream/<tok>/1`. */
export interface ResponseCase {
  readonly name: string;
  /** The raw response to this case's `/1` (parts, optional pauses); the upstream closes after it when `closeAfter`. */
  readonly reply: (tok: string) => Part[];
  readonly closeAfter?: boolean;
  /** When a pass-through is correct: problems with the client's response (empty = a correct pass-through). Without it only 502 is accepted. */
  readonly pass?: (r: ParsedResponse) => string[];
}

// ---------------------------------------------------------------------------------------------
// Shared small parsers

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TOKEN_RE = /(?:case|SMUGGLED|pipelined|bad-upstream)-?\/?((?:t|r)\d+)(?![0-9])/;

/** The case token in a target (path) or an `x-case` header, or null. */
export function tokenOf(target: string, headers: ReadonlyArray<readonly [string, string]>): string | null {
  const m = TOKEN_RE.exec(target);
  if (m !== null) return m[1]!;
  const x = headers.find(([k]) => k.toLowerCase() === 'x-case');
  return x !== undefined && /^(?:t|r)\d+$/.test(x[1]) ? x[1] : null;
}

function preview(b: Buffer | string, n = 160): string {
  const s = typeof b === 'string' ? b : b.toString('latin1');
  return JSON.stringify(s.length > n ? `${s.slice(0, n)}…` : s);
}

function headerLines(lines: string[]): { headers: Array<[string, string]> } | { error: string } {
  const headers: Array<[string, string]> = [];
  for (const line of lines) {
    if (line.includes('\r') || line.includes('\n')) return { error: `bare CR or LF in ${preview(line)}` };
    if (line.startsWith(' ') || line.startsWith('\t')) return { error: `obs-fold line ${preview(line)}` };
    const c = line.indexOf(':');
    if (c <= 0) return { error: `field line without a name: ${preview(line)}` };
    const name = line.slice(0, c);
    if (!TOKEN.test(name)) return { error: `field name outside tchar: ${preview(name)}` };
    const value = line.slice(c + 1);
    if (!FIELD_VALUE.test(value)) return { error: `control character in field ${name}: ${preview(value)}` };
    headers.push([name, value.replace(/^[ \t]+|[ \t]+$/g, '')]);
  }
  return { headers };
}

// ---------------------------------------------------------------------------------------------
// Recording upstream

export interface UpRequest {
  readonly seq: number;
  readonly conn: number;
  readonly method: string;
  readonly target: string;
  /** Header lines in order, names as sent. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly framing: 'none' | 'length' | 'chunked';
  readonly body: Buffer;
  readonly trailers: ReadonlyArray<readonly [string, string]>;
  readonly token: string | null;
}

export interface UpFlag {
  readonly kind: 'desync' | 'smuggled' | 'unattributed';
  readonly reason: string;
  readonly token: string | null;
  readonly conn: number;
}

/** A request head that arrived but whose request never completed (the connection closed first). */
export interface UpIncomplete {
  readonly token: string | null;
  readonly conn: number;
  readonly what: string;
}

export function headerValues(headers: ReadonlyArray<readonly [string, string]>, name: string): string[] {
  const n = name.toLowerCase();
  return headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

const enum St {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  Trailers,
  Dead,
}

interface Building {
  method: string;
  target: string;
  headers: Array<[string, string]>;
  framing: 'none' | 'length' | 'chunked';
  token: string | null;
  remaining: number;
  body: Buffer[];
  close: boolean;
}

const CHUNK_EXT =
  /^(?:[ \t]*;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|"(?:[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t\x20-\x7e\x80-\xff])*"))?)*$/;

export class RecordingUpstream {
  readonly requests: UpRequest[] = [];
  readonly flags: UpFlag[] = [];
  readonly incomplete: UpIncomplete[] = [];
  connections = 0;
  private seq = 0;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async start(): Promise<RecordingUpstream> {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const up = new RecordingUpstream(server, (server.address() as net.AddressInfo).port);
    server.on('connection', (s) => up.serve(s));
    return up;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  private serve(socket: net.Socket): void {
    const conn = ++this.connections;
    this.sockets.add(socket);
    let buf: Buffer = Buffer.alloc(0);
    let st: St = St.Head;
    let cur: Building | null = null;
    const flag = (kind: UpFlag['kind'], reason: string, token: string | null): void => {
      this.flags.push({ kind, reason, token, conn });
    };
    const die = (reason: string): void => {
      flag('desync', reason, cur?.token ?? null);
      st = St.Dead;
      cur = null;
      socket.destroy();
    };
    const complete = (trailers: Array<[string, string]>): void => {
      const b = cur!;
      const seq = ++this.seq;
      const rec: UpRequest = {
        seq,
        conn,
        method: b.method,
        target: b.target,
        headers: b.headers,
        framing: b.framing,
        body: Buffer.concat(b.body),
        trailers,
        token: b.token,
      };
      this.requests.push(rec);
      if (b.token === null) flag('unattributed', `request #${seq} ${b.method} ${preview(b.target)} carries no case token`, null);
      cur = null;
      st = St.Head;
      const text = `upstream#${seq} ${b.method} ${b.target}`;
      if (!socket.destroyed) {
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(text, 'latin1')}\r\n\r\n${text}`, 'latin1');
        if (b.close) {
          st = St.Dead;
          socket.end();
        }
      }
    };
    const step = (): boolean => {
      switch (st) {
        case St.Head: {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) {
            if (buf.length > 128 * 1024) die(`no end of head in ${buf.length} bytes: ${preview(buf)}`);
            return false;
          }
          const text = buf.toString('latin1', 0, end);
          buf = buf.subarray(end + 4);
          const lines = text.split('\r\n');
          const line = lines[0]!;
          const m = /^([^ ]+) ([^ ]+) HTTP\/1\.1$/.exec(line);
          if (m === null || !TOKEN.test(m[1]!) || !/^[\x21-\x7e]+$/.test(m[2]!)) {
            const t = tokenOf(line, []);
            if (/SMUGGLED/i.test(line)) flag('smuggled', `${preview(line)} reached the upstream`, t);
            cur = { method: '', target: '', headers: [], framing: 'none', token: t, remaining: 0, body: [], close: false };
            die(`bad request line ${preview(line)}`);
            return false;
          }
          const method = m[1]!;
          const target = m[2]!;
          const parsed = headerLines(lines.slice(1));
          const token0 = tokenOf(target, 'headers' in parsed ? parsed.headers : []);
          if (method === 'SMUGGLE' || /SMUGGLED/i.test(target)) flag('smuggled', `${method} ${preview(target)} reached the upstream`, token0);
          if ('error' in parsed) {
            cur = { method, target, headers: [], framing: 'none', token: token0, remaining: 0, body: [], close: false };
            die(`${method} ${preview(target)}: ${parsed.error}`);
            return false;
          }
          const headers = parsed.headers;
          cur = { method, target, headers, framing: 'none', token: token0, remaining: 0, body: [], close: false };
          if (headerValues(headers, 'x-forwarded-proto').length === 0 || headerValues(headers, 'x-request-id').length === 0) {
            flag('smuggled', `${method} ${preview(target)} has no x-forwarded-proto / x-request-id: the proxy did not produce it`, token0);
          }
          const hosts = headerValues(headers, 'host');
          if (hosts.length !== 1) {
            die(`${method} ${preview(target)}: ${hosts.length} Host headers`);
            return false;
          }
          const te = headerValues(headers, 'transfer-encoding');
          const cl = headerValues(headers, 'content-length');
          if (te.length > 0) {
            if (te.length !== 1 || te[0]!.toLowerCase() !== 'chunked' || cl.length > 0) {
              die(`${method} ${preview(target)}: ambiguous framing te=${JSON.stringify(te)} cl=${JSON.stringify(cl)}`);
              return false;
            }
            cur.framing = 'chunked';
            st = St.ChunkSize;
          } else if (cl.length > 0) {
            if (cl.length !== 1 || !/^\d{1,15}$/.test(cl[0]!)) {
              die(`${method} ${preview(target)}: content-length lines ${JSON.stringify(cl)} (exactly one plain number expected)`);
              return false;
            }
            cur.framing = 'length';
            cur.remaining = Number(cl[0]);
            st = St.Length;
          }
          cur.close = headerValues(headers, 'connection').some((v) => /(^|,)\s*close\s*(,|$)/i.test(v));
          if (st === St.Head || (st === St.Length && cur.remaining === 0)) complete([]);
          return true;
        }
        case St.Length: {
          if (buf.length === 0) return false;
          const n = Math.min(buf.length, cur!.remaining);
          cur!.body.push(Buffer.from(buf.subarray(0, n)));
          cur!.remaining -= n;
          buf = buf.subarray(n);
          if (cur!.remaining === 0) complete([]);
          return true;
        }
        case St.ChunkSize: {
          const le = buf.indexOf('\r\n');
          if (le < 0) {
            if (buf.length > 4096) die(`no end of chunk-size line: ${preview(buf)}`);
            return false;
          }
          const line = buf.toString('latin1', 0, le);
          const m = /^([0-9A-Fa-f]{1,15})(.*)$/.exec(line);
          if (m === null || !CHUNK_EXT.test(m[2]!)) {
            die(`bad chunk-size line ${preview(line)}`);
            return false;
          }
          buf = buf.subarray(le + 2);
          cur!.remaining = parseInt(m[1]!, 16);
          st = cur!.remaining === 0 ? St.Trailers : St.ChunkData;
          return true;
        }
        case St.ChunkData: {
          if (buf.length < cur!.remaining + 2) return false;
          cur!.body.push(Buffer.from(buf.subarray(0, cur!.remaining)));
          if (buf[cur!.remaining] !== 0x0d || buf[cur!.remaining + 1] !== 0x0a) {
            die(`chunk data not followed by CRLF: ${preview(buf.subarray(cur!.remaining, cur!.remaining + 20))}`);
            return false;
          }
          buf = buf.subarray(cur!.remaining + 2);
          st = St.ChunkSize;
          return true;
        }
        case St.Trailers: {
          if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) {
            buf = buf.subarray(2);
            complete([]);
            return true;
          }
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) {
            if (buf.length > 16 * 1024) die(`no end of trailers: ${preview(buf)}`);
            return false;
          }
          const parsed = headerLines(buf.toString('latin1', 0, end).split('\r\n'));
          buf = buf.subarray(end + 4);
          if ('error' in parsed) {
            die(`trailers: ${parsed.error}`);
            return false;
          }
          complete(parsed.headers);
          return true;
        }
        case St.Dead:
          return false;
      }
    };
    socket.on('data', (d: Buffer) => {
      if (st === St.Dead) return;
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      try {
        while (step());
      } catch (e) {
        die(`upstream parser threw: ${(e as Error).message}`);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (st !== St.Dead && (cur !== null || buf.length > 0)) {
        this.incomplete.push({
          token: cur?.token ?? tokenOf(buf.toString('latin1', 0, Math.min(buf.length, 512)), []),
          conn,
          what: cur !== null ? `${cur.method} ${cur.target} cut off in its body` : `partial head ${preview(buf)}`,
        });
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Misbehaving upstream for response-side cases

export interface BadUpstream {
  readonly raw: RawUpstream;
  readonly address: string;
  /** `<tok>/<n>` of every request head it received, in order. */
  readonly seen: string[];
}

export const GOOD_PREFIX = 'good ';

/** Answers `/bad-upstream/<tok>/1` with the case's reply, any other `/bad-upstream/<tok>/<n>` with a correct 200 `good <tok>/<n>`. */
export async function startBadUpstream(lookup: (tok: string) => ResponseCase | undefined): Promise<BadUpstream> {
  const seen: string[] = [];
  const raw = await startRawUpstream((c) => {
    let buf = Buffer.alloc(0);
    let chain = Promise.resolve();
    c.socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        buf = buf.subarray(end + 4);
        const m = /^[A-Z]+ \/bad-upstream\/((?:t|r)\d+)\/(\d+) /.exec(head);
        const tok = m?.[1] ?? '?';
        const n = m?.[2] ?? '?';
        seen.push(`${tok}/${n}`);
        const rc = lookup(tok);
        chain = chain.then(async () => {
          if (c.socket.destroyed) return;
          if (n === '1' && rc !== undefined) {
            for (const p of rc.reply(tok)) {
              if (typeof p === 'object' && !Buffer.isBuffer(p)) await sleep(p.pauseMs);
              else if (!c.socket.destroyed) c.socket.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
            }
            if (rc.closeAfter === true) c.socket.end();
          } else {
            const body = `${GOOD_PREFIX}${tok}/${n}`;
            c.socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`, 'latin1');
          }
        });
      }
    });
  });
  return { raw, address: raw.address, seen };
}

// ---------------------------------------------------------------------------------------------
// Client side

export interface Target {
  readonly port: number;
  readonly tls: boolean;
}

/** Runs `fn` over `items` with at most `limit` running at once; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface ParsedResponse {
  readonly status: number;
  readonly reason: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  readonly trailers: ReadonlyArray<readonly [string, string]>;
  /** ms since the connection was opened when the response was complete. */
  at: number;
}

export function header(r: Pick<ParsedResponse, 'headers'>, name: string): string | undefined {
  return headerValues(r.headers, name)[0];
}

/** Parses consecutive responses from `buf`. `error` when the bytes are not HTTP/1.x responses. */
export function parseResponses(buf: Buffer, closed: boolean): { responses: ParsedResponse[]; rest: Buffer; error: string | null } {
  const responses: ParsedResponse[] = [];
  let off = 0;
  const out = (error: string | null) => ({ responses, rest: buf.subarray(off), error });
  while (off < buf.length) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end < 0) {
      if (!/^(H|HT|HTT|HTTP|HTTP\/|HTTP\/1|HTTP\/1\.|HTTP\/1\.[01]|HTTP\/1\.[01] .*)$/s.test(buf.toString('latin1', off, Math.min(buf.length, off + 16)))) {
        return out(`not an HTTP response: ${preview(buf.subarray(off))}`);
      }
      return out(closed ? `connection closed inside a response head: ${preview(buf.subarray(off))}` : null);
    }
    const lines = buf.toString('latin1', off, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]!);
    if (m === null) return out(`not an HTTP response: ${preview(buf.subarray(off))}`);
    const status = Number(m[1]);
    const headers: Array<[string, string]> = lines.slice(1).map((l) => {
      const c = l.indexOf(':');
      return [l.slice(0, c), l.slice(c + 1).trim()] as [string, string];
    });
    let i = end + 4;
    let body: Buffer = Buffer.alloc(0);
    let trailers: Array<[string, string]> = [];
    const te = headerValues(headers, 'transfer-encoding').join(',');
    const cl = headerValues(headers, 'content-length');
    if ((status >= 100 && status < 200) || status === 204 || status === 304) {
      // bodiless
    } else if (/chunked\s*$/i.test(te)) {
      const parts: Buffer[] = [];
      for (;;) {
        const le = buf.indexOf('\r\n', i);
        if (le < 0) return out(closed ? 'connection closed inside a chunked response body' : null);
        const size = parseInt(buf.toString('latin1', i, le).split(';')[0]!, 16);
        if (Number.isNaN(size)) return out(`bad chunk size in a response: ${preview(buf.subarray(i, le))}`);
        i = le + 2;
        if (size === 0) {
          const tend = buf.indexOf('\r\n\r\n', i - 2);
          if (tend < 0) return out(closed ? 'connection closed inside response trailers' : null);
          trailers = buf
            .toString('latin1', i, tend)
            .split('\r\n')
            .filter((l) => l !== '')
            .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]);
          i = tend + 4;
          break;
        }
        if (buf.length < i + size + 2) return out(closed ? 'connection closed inside a chunked response body' : null);
        parts.push(buf.subarray(i, i + size));
        i += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (cl.length > 0) {
      const n = Number(cl[0]);
      if (buf.length < i + n) return out(closed ? 'connection closed inside a response body' : null);
      body = buf.subarray(i, i + n);
      i += n;
    } else {
      if (!closed) return out(null);
      body = buf.subarray(i);
      i = buf.length;
    }
    responses.push({ status, reason: m[2] ?? '', headers, body: Buffer.from(body), trailers, at: 0 });
    off = i;
  }
  return out(null);
}

/** One client connection that records what arrives and when. Never rejects. */
export class Conn {
  private chunks: Buffer[] = [];
  private waiters: Array<() => void> = [];
  readonly openedAt = Date.now();
  closedAt: number | null = null;
  error: string | null = null;
  /** Completion times (ms since openedAt) of the responses parsed so far. */
  private readonly times: number[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      const n = parseResponses(this.raw(), false).responses.length;
      while (this.times.length < n) this.times.push(Date.now() - this.openedAt);
      this.wake();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.error = e.code ?? e.message;
    });
    socket.on('close', () => {
      this.closedAt = Date.now();
      this.wake();
    });
  }

  static open(t: Target): Promise<Conn> {
    return new Promise((resolve) => {
      const socket = t.tls
        ? tls.connect({ host: '127.0.0.1', port: t.port, rejectUnauthorized: false, servername: 'hostile.test' })
        : net.connect({ host: '127.0.0.1', port: t.port });
      const c = new Conn(socket);
      const ready = (): void => resolve(c);
      socket.once(t.tls ? 'secureConnect' : 'connect', ready);
      socket.once('close', ready);
    });
  }

  raw(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  get closed(): boolean {
    return this.closedAt !== null;
  }

  /** Responses so far, with completion times. */
  responses(): { responses: ParsedResponse[]; error: string | null; rest: Buffer } {
    const p = parseResponses(this.raw(), this.closed);
    p.responses.forEach((r, i) => {
      r.at = this.times[i] ?? (this.closedAt ?? Date.now()) - this.openedAt;
    });
    return p;
  }

  async write(parts: readonly Part[]): Promise<void> {
    for (const p of parts) {
      if (typeof p === 'object' && !Buffer.isBuffer(p)) await sleep(p.pauseMs);
      else if (!this.socket.destroyed) this.socket.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
    }
  }

  /** Resolves on the next data/close or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise((r) => {
      const done = (): void => {
        clearTimeout(t);
        this.waiters = this.waiters.filter((w) => w !== done);
        r();
      };
      const t = setTimeout(done, Math.max(1, ms));
      this.waiters.push(done);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    for (const w of this.waiters.slice()) w();
  }
}

/** Proxied = answered by the upstream through the proxy (2xx, no x-outrigger-error). */
export function isProxied(r: ParsedResponse): boolean {
  return r.status >= 200 && r.status < 300 && header(r, 'x-outrigger-error') === undefined;
}

export const CASE_TIMEOUT_MS = 15_000;
const SETTLE_MS = 300;

export interface RunResult {
  readonly responses: ParsedResponse[];
  readonly parseError: string | null;
  /** Unparsed bytes left at the end. */
  readonly rest: Buffer;
  /** ms since open, or null when the proxy never closed while we watched. */
  readonly closedAt: number | null;
  /** ms since open of the last write (or half-close). */
  readonly lastWriteAt: number;
  readonly timedOut: boolean;
  readonly error: string | null;
  readonly raw: Buffer;
  /** Everything the client sent. */
  readonly sent: Buffer;
}

/** Sends one case's bytes on a fresh connection and watches until the outcome is decided. */
export async function runRequestCase(t: Target, c: HostileCase, p: CaseCtx): Promise<RunResult> {
  const conn = await Conn.open(t);
  const parts = c.send(p);
  await conn.write(parts);
  if (c.halfClose === true && !conn.closed) conn.socket.end();
  const lastWrite = Date.now();
  const want = c.requests ?? 1;
  const deadline = lastWrite + CASE_TIMEOUT_MS;
  const holdUntil = c.holdMs !== undefined ? lastWrite + c.holdMs : Number.POSITIVE_INFINITY;
  let settleUntil = Number.POSITIVE_INFINITY;
  let timedOut = false;
  for (;;) {
    const { responses, error } = conn.responses();
    if (conn.closed || error !== null) break;
    const refused = responses.some((r) => !isProxied(r));
    const now = Date.now();
    if (!refused && responses.length >= want && settleUntil === Number.POSITIVE_INFINITY) settleUntil = now + SETTLE_MS;
    if (now >= settleUntil) break;
    if (!refused && now >= holdUntil) break;
    if (now >= deadline) {
      timedOut = true;
      break;
    }
    await conn.next(Math.min(deadline, settleUntil, refused ? deadline : holdUntil) - now);
  }
  const parsed = conn.responses();
  const result: RunResult = {
    responses: parsed.responses,
    parseError: parsed.error,
    rest: parsed.rest,
    closedAt: conn.closedAt === null ? null : conn.closedAt - conn.openedAt,
    lastWriteAt: lastWrite - conn.openedAt,
    timedOut,
    error: conn.error,
    raw: conn.raw(),
    sent: Buffer.concat(
      parts.filter((x): x is string | Buffer => typeof x === 'string' || Buffer.isBuffer(x)).map((x) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : x)),
    ),
  };
  conn.destroy();
  return result;
}

export type Observed = 'forward' | 'refuse' | 'close' | 'hold' | 'timeout';

export interface Verdict {
  readonly observed: Observed;
  /** ms from the last write to the refusal or the close (refuse/close only). */
  readonly decisionMs: number | null;
  readonly problems: string[];
}

const REFUSALS: ReadonlyArray<readonly [number, string]> = [
  [400, 'bad_request'],
  [431, 'headers_too_large'],
];

function describeResponse(r: ParsedResponse): string {
  return `${r.status} ${header(r, 'x-outrigger-error') ?? '(no x-outrigger-error)'} ${preview(r.body, 80)}`;
}

/**
 * Strict, node and TLS listeners must answer or close any refusal within this (uWS: only its idle
 * timeout). The listeners' own timeouts are 30 s and more, so a decision within it is the parser
 * reacting to the bytes, not a timeout firing. The measured maximum per engine is printed in the
 * summary line (about 0.1 s on a quiet machine; issue 19 asks for 1 s): the limit is wider so a
 * loaded machine cannot fail the suite on time alone.
 */
export const STRICT_DECISION_MS = 5000;

/** The types of the HTTP/2 frames in `raw` (as far as they are whole). */
function h2FrameTypes(raw: Buffer): number[] {
  const types: number[] = [];
  for (let at = 0; at + 9 <= raw.length; at += 9 + raw.readUIntBE(at, 3)) types.push(raw[at + 3]!);
  return types;
}

export function judgeRequestCase(
  engine: Engine,
  c: HostileCase,
  p: CaseCtx,
  r: RunResult,
  up: Pick<RecordingUpstream, 'requests' | 'flags' | 'incomplete'>,
): Verdict {
  const problems: string[] = [];
  const expected = c.expect[engine];
  const want = c.requests ?? 1;
  const before = c.before ?? 0;
  const proxied = r.responses.filter(isProxied);
  const firstNon = r.responses.findIndex((x) => !isProxied(x));
  const refusal = firstNon >= 0 ? r.responses[firstNon]! : null;
  const leading = firstNon >= 0 ? firstNon : r.responses.length;

  let observed: Observed;
  if (refusal !== null) observed = 'refuse';
  else if (proxied.length >= want) observed = 'forward';
  else if (r.closedAt !== null) observed = 'close';
  else if (r.timedOut) observed = 'timeout';
  else observed = 'hold';
  const decisionAt = observed === 'refuse' ? refusal!.at : observed === 'close' ? r.closedAt : null;
  const decisionMs = decisionAt === null ? null : Math.max(0, decisionAt - r.lastWriteAt);

  if (r.parseError !== null && expected !== 'h2GoAway') problems.push(`the client got bytes that are not HTTP responses: ${r.parseError}`);
  if (proxied.length > want) problems.push(`${proxied.length} proxied responses for ${want} request(s)`);

  const accepted = [...REFUSALS, ...(c.alsoRefuse ?? [])];
  const checkRefusal = (allowed: ReadonlyArray<readonly [number, string]>, exactBefore: boolean): void => {
    const code = header(refusal!, 'x-outrigger-error');
    if (!allowed.some(([s, k]) => s === refusal!.status && k === code)) {
      problems.push(`refusal is ${describeResponse(refusal!)}; expected ${allowed.map(([s, k]) => `${s} ${k}`).join(' or ')}`);
    } else {
      try {
        const j = JSON.parse(refusal!.body.toString('utf8')) as { error?: unknown };
        if (j.error !== code) problems.push(`refusal body error ${JSON.stringify(j.error)} ≠ ${code}`);
      } catch {
        problems.push(`refusal body is not JSON: ${preview(refusal!.body)}`);
      }
    }
    if (exactBefore ? leading !== before : leading > want - 1 || leading < before) {
      problems.push(`${leading} proxied response(s) before the refusal; expected ${exactBefore ? before : `${before}..${want - 1}`}`);
    }
    if (r.responses.length > firstNon + 1)
      problems.push(
        `${r.responses.length - firstNon - 1} response(s) after the refusal: ${r.responses
          .slice(firstNon + 1)
          .map(describeResponse)
          .join('; ')}`,
      );
    if (r.rest.length > 0) problems.push(`bytes after the refusal: ${preview(r.rest)}`);
    if (r.closedAt === null) problems.push(`the connection stayed open after the refusal (watched ${CASE_TIMEOUT_MS} ms)`);
  };
  const checkForward = (): void => {
    if (r.responses.length !== want) problems.push(`${r.responses.length} responses, expected ${want}`);
  };
  const checkClose = (): void => {
    if (leading > want) problems.push(`${leading} proxied responses before the close`);
    if (r.rest.length > 0) problems.push(`partial bytes before the close: ${preview(r.rest)}`);
  };
  const unexpected = (what: string): void => {
    const tail =
      refusal !== null
        ? `: ${describeResponse(refusal)}`
        : observed === 'timeout'
          ? ` (no decision within ${CASE_TIMEOUT_MS} ms; ${r.responses.length} response(s))`
          : ` (${r.responses.length} response(s), closed=${r.closedAt !== null})`;
    problems.push(`expected ${what}, observed ${observed}${tail}`);
  };

  switch (expected) {
    case 'forward':
      if (observed === 'forward') checkForward();
      else unexpected(`forward of ${want} request(s)`);
      break;
    case 'refuse400':
    case 'refuse431':
      if (observed === 'refuse') checkRefusal([expected === 'refuse400' ? [400, 'bad_request'] : [431, 'headers_too_large'], ...(c.alsoRefuse ?? [])], true);
      else unexpected(expected === 'refuse400' ? '400 bad_request then close' : '431 headers_too_large then close');
      break;
    case 'closeOrRefuse':
      if (observed === 'refuse') checkRefusal(accepted, false);
      else if (observed === 'close') checkClose();
      else unexpected('a refusal or a close');
      break;
    case 'forwardOrRefuse':
      if (observed === 'forward') checkForward();
      else if (observed === 'refuse') checkRefusal(accepted, false);
      else unexpected('a forward or a refusal with an answer');
      break;
    case 'incomplete':
      if (observed === 'refuse') checkRefusal(accepted, false);
      else if (observed === 'forward') unexpected('no complete request');
      break;
    case 'h2GoAway': {
      const types = h2FrameTypes(r.raw);
      if (r.responses.length > 0) problems.push(`${r.responses.length} HTTP/1 response(s) to bytes that began with the HTTP/2 preface`);
      if (types[0] !== 0x4 || !types.includes(0x7)) problems.push(`expected HTTP/2 SETTINGS then GOAWAY, got frame types ${JSON.stringify(types)}`);
      break;
    }
  }
  if (engine !== 'uws' && (observed === 'refuse' || observed === 'close') && decisionMs !== null && decisionMs > STRICT_DECISION_MS) {
    problems.push(
      `the ${observed === 'refuse' ? 'refusal' : 'close'} came ${decisionMs} ms after the last write (limit ${STRICT_DECISION_MS} ms on ${engine})`,
    );
  }
  if (engine !== 'uws' && observed === 'close' && expected !== 'incomplete' && c.strictMayClose !== true) {
    problems.push(`closed without an answer: the ${engine} listener must answer every refusal`);
  }

  // The upstream side.
  const reqs = up.requests.filter((x) => x.token === p.tok);
  for (const f of up.flags.filter((x) => x.token === p.tok)) problems.push(`upstream ${f.kind}: ${f.reason}`);
  if (reqs.length !== proxied.length) {
    problems.push(
      `the upstream received ${reqs.length} request(s) [${reqs.map((x) => `${x.method} ${x.target}`).join(', ')}] but the client got ${proxied.length} proxied response(s)`,
    );
  }
  // Each proxied response answers one of this case's upstream requests, each at most once, and
  // they come in the order the client sent the requests (pipelined requests may reach the
  // upstream in another order when the proxy forwards them in parallel).
  const named = proxied.map((x) => /^upstream#(\d+) /.exec(x.body.toString('latin1'))?.[1] ?? '?');
  const bySeq = new Map(reqs.map((x) => [String(x.seq), x]));
  if (named.some((n) => !bySeq.has(n)) || new Set(named).size !== named.length) {
    problems.push(`proxied responses name upstream requests ${JSON.stringify(named)}; this case's are ${JSON.stringify([...bySeq.keys()])}`);
  } else {
    const sent = r.sent.toString('latin1');
    const at = named.map((n) => {
      const target = bySeq.get(n)!.target;
      const i = sent.indexOf(`${target} HTTP/`);
      return i >= 0 ? i : sent.indexOf(target);
    });
    if (at.some((i, k) => k > 0 && i <= at[k - 1]!)) {
      problems.push(`responses came in another order than the requests were sent: ${named.map((n) => bySeq.get(n)!.target).join(', ')}`);
    }
  }
  for (const x of reqs) {
    // A WebSocket upgrade is tunnelled (issue 15): its Upgrade header reaches the app on purpose.
    const webSocket = headerValues(x.headers, 'upgrade').some((v) => v.toLowerCase() === 'websocket');
    for (const h of ['upgrade', 'keep-alive', 'proxy-connection', 'http2-settings']) {
      if (h === 'upgrade' && webSocket) continue;
      if (headerValues(x.headers, h).length > 0) problems.push(`upstream request ${x.method} ${x.target} carries hop-by-hop ${h}`);
    }
    for (const v of headerValues(x.headers, 'te')) if (v.toLowerCase() !== 'trailers') problems.push(`upstream request carries te: ${v}`);
    if (!x.target.startsWith('/') && x.target !== '*') problems.push(`upstream request target ${preview(x.target)} is not origin-form`);
    for (const [k] of x.trailers) {
      if (/^(content-length|transfer-encoding|host|connection)$/i.test(k)) problems.push(`upstream request carries a ${k} trailer`);
    }
  }
  if (reqs.length > 0 && c.check !== undefined) problems.push(...c.check(reqs, p));
  if (problems.length > 0) {
    for (const x of reqs) problems.push(`(upstream #${x.seq}: ${x.method} ${preview(x.target, 60)} ${x.framing} body ${preview(x.body, 80)})`);
    for (const x of up.incomplete.filter((i) => i.token === p.tok)) problems.push(`(upstream cut off: ${x.what.slice(0, 100)})`);
  }
  return { observed, decisionMs, problems };
}

// ---------------------------------------------------------------------------------------------
// Response-side cases

export interface ResponseRun {
  /** Response to `/1`, `/2` (same connection when it stayed open, else a new one), `/3` (new connection). */
  readonly first: ParsedResponse | null;
  readonly second: ParsedResponse | null;
  readonly third: ParsedResponse | null;
  readonly secondOnSameConnection: boolean;
  readonly notes: string[];
  readonly allBytes: Buffer;
}

async function oneResponse(conn: Conn, skip: number, ms: number): Promise<ParsedResponse | null> {
  const until = Date.now() + ms;
  for (;;) {
    const { responses, error } = conn.responses();
    if (responses.length > skip) return responses[skip]!;
    if (conn.closed || error !== null || Date.now() >= until) return null;
    await conn.next(until - Date.now());
  }
}

function getReq(tok: string, n: number): string {
  return `GET /bad-upstream/${tok}/${n} HTTP/1.1\r\nHost: hostile.test\r\nX-Case: ${tok}\r\n\r\n`;
}

export async function runResponseCase(t: Target, tok: string): Promise<ResponseRun> {
  const notes: string[] = [];
  const c1 = await Conn.open(t);
  await c1.write([getReq(tok, 1)]);
  const first = await oneResponse(c1, 0, 5000);
  if (first === null) notes.push(`no complete response to /1 (closed=${c1.closed}, bytes ${preview(c1.raw())})`);
  await sleep(100); // let late upstream bytes (if any) arrive and be misdelivered, if they would be
  let second: ParsedResponse | null;
  let same = false;
  let c2: Conn | null = null;
  if (!c1.closed && first !== null) {
    same = true;
    await c1.write([getReq(tok, 2)]);
    second = await oneResponse(c1, 1, 5000);
  } else {
    c2 = await Conn.open(t);
    await c2.write([getReq(tok, 2)]);
    second = await oneResponse(c2, 0, 5000);
  }
  const c3 = await Conn.open(t);
  await c3.write([getReq(tok, 3)]);
  const third = await oneResponse(c3, 0, 5000);
  await sleep(100);
  const extra1 = c1.responses().responses.length - (same ? 2 : 1);
  if (extra1 > 0) notes.push(`${extra1} extra response(s) on the first connection`);
  const allBytes = Buffer.concat([c1.raw(), c2?.raw() ?? Buffer.alloc(0), c3.raw()]);
  for (const c of [c1, c2, c3]) c?.destroy();
  return { first, second, third, secondOnSameConnection: same, notes, allBytes };
}

/** The extra response a response-side case may smuggle after its own: names the case that sent it. */
export function injected(tok: string): string {
  const body = `INJECTED-by-${tok}`;
  return `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
}

export function judgeResponseCase(rc: ResponseCase, tok: string, r: ResponseRun, nameOf: (tok: string) => string): string[] {
  const problems = [...r.notes];
  for (const m of r.allBytes.toString('latin1').matchAll(/INJECTED-by-((?:t|r)\d+)/g)) {
    problems.push(`the extra bytes that the upstream sent after its response to "${nameOf(m[1]!)}" were delivered to this case's client as a response`);
  }
  if (r.first !== null) {
    const code = header(r.first, 'x-outrigger-error');
    const is502 = r.first.status === 502 && code === 'upstream_protocol_error';
    if (!is502) {
      if (rc.pass === undefined) problems.push(`/1: ${describeResponse(r.first)}; expected 502 upstream_protocol_error`);
      else {
        const why = rc.pass(r.first);
        if (why.length > 0)
          problems.push(`/1: ${describeResponse(r.first)} is neither 502 upstream_protocol_error nor a correct pass-through: ${why.join('; ')}`);
      }
    }
  }
  const good = (n: number, x: ParsedResponse | null, where: string): void => {
    const body = `${GOOD_PREFIX}${tok}/${n}`;
    if (x === null) problems.push(`/${n} (${where}): no response`);
    else if (x.status !== 200 || x.body.toString('latin1') !== body)
      problems.push(`/${n} (${where}): ${describeResponse(x)}; expected 200 ${JSON.stringify(body)}`);
  };
  good(2, r.second, r.secondOnSameConnection ? 'same connection' : 'new connection: the first was closed');
  good(3, r.third, 'new connection');
  return problems;
}

/** The first bytes a TLS client sends (a real ClientHello), captured from node:tls. */
export async function captureClientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const hello = new Promise<Buffer>((resolve) => {
    server.once('connection', (s) => {
      s.once('data', (d: Buffer) => {
        resolve(Buffer.from(d));
        s.destroy();
      });
    });
  });
  const client = tls.connect({ host: '127.0.0.1', port, servername: 'hostile.test', rejectUnauthorized: false });
  client.on('error', () => undefined);
  const out = await hello;
  client.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return out;
}
