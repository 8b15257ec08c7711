// Raw sockets for what node:http will not do: an upstream that answers (or misbehaves) byte by
// byte, a one-shot client that sends exact bytes and reads one response or the close, and a
// keep-alive client that reads responses one at a time. Everything closes with closeAll().

import net from 'node:net';
import tls from 'node:tls';
import { track } from './live.js';

// ---------------------------------------------------------------------------------------------
// Raw-socket upstream (for upstreams that misbehave)

export interface RawConnection {
  readonly socket: net.Socket;
  /** Everything received on this connection so far. */
  received(): Buffer;
  /** Resolves with the bytes received once a full request head (`\r\n\r\n`) has arrived (bounded). */
  head(timeoutMs?: number): Promise<Buffer>;
}

export interface RawUpstream {
  readonly port: number;
  readonly address: string;
  readonly connections: RawConnection[];
  close(): Promise<void>;
}

export async function startRawUpstream(onConnection: (c: RawConnection) => void): Promise<RawUpstream> {
  const connections: RawConnection[] = [];
  const server = net.createServer((socket) => {
    const chunks: Buffer[] = [];
    const waiters = new Set<() => void>();
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      for (const w of [...waiters]) w();
    });
    socket.on('error', () => undefined);
    const conn: RawConnection = {
      socket,
      received: () => Buffer.concat(chunks),
      head: (timeoutMs = 5000) =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            const all = Buffer.concat(chunks);
            if (all.indexOf('\r\n\r\n') >= 0) {
              clearTimeout(timer);
              waiters.delete(check);
              resolve(all);
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            reject(new Error('raw upstream: no request head within the time limit'));
          }, timeoutMs);
          waiters.add(check);
          check();
        }),
    };
    connections.push(conn);
    onConnection(conn);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const handle = {
    close: () =>
      new Promise<void>((r) => {
        for (const c of connections) c.socket.destroy();
        server.close(() => r());
      }),
  };
  const untrack = track(handle);
  return {
    port,
    address: `127.0.0.1:${port}`,
    connections,
    close: async () => {
      untrack();
      await handle.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw-socket client

export interface RawResponse {
  status: number;
  reason: string;
  /** Header lines in order: [name as sent, value], duplicates kept. */
  headers: Array<[string, string]>;
  body: Buffer;
  /** Bytes of the head (status line + headers + CRLFCRLF). */
  headBytes: Buffer;
}

export interface RawResult {
  /** All bytes read from the socket. */
  raw: Buffer;
  /** The first response, when a complete one was read. */
  response: RawResponse | null;
  /** The server closed the connection (FIN or RST). */
  closed: boolean;
  /** The connection ended with an error (e.g. ECONNRESET) rather than a clean FIN. */
  error: string | null;
  /** Nothing decisive happened before the time limit. */
  timedOut: boolean;
}

/** Value of the first header `name` (case-insensitive). */
export function header(r: RawResponse, name: string): string | undefined {
  const n = name.toLowerCase();
  return r.headers.find(([k]) => k.toLowerCase() === n)?.[1];
}

/**
 * Parses one response from `buf` (HTTP/1.x). Returns null while incomplete. `noBody` for the answer
 * to a HEAD request. With neither Content-Length nor chunked, the body runs to `closed`.
 */
export function parseRawResponse(buf: Buffer, noBody = false, closed = false): RawResponse | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const headBytes = buf.subarray(0, end + 4);
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (m === null) throw new Error(`not an HTTP response: ${JSON.stringify(buf.toString('latin1', 0, Math.min(200, buf.length)))}`);
  const status = Number(m[1]);
  const headers: Array<[string, string]> = lines.slice(1).map((l) => {
    const c = l.indexOf(':');
    return [l.slice(0, c), l.slice(c + 1).trim()];
  });
  const get = (n: string): string | undefined => headers.find(([k]) => k.toLowerCase() === n)?.[1];
  const rest = buf.subarray(end + 4);
  const base = { status, reason: m[2] ?? '', headers, headBytes };
  if (noBody || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { ...base, body: Buffer.alloc(0) };
  }
  const te = get('transfer-encoding');
  if (te !== undefined && /chunked/i.test(te)) {
    const body: Buffer[] = [];
    let i = 0;
    for (;;) {
      const le = rest.indexOf('\r\n', i);
      if (le < 0) return null;
      const size = parseInt(rest.toString('latin1', i, le).split(';')[0]!, 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size in response');
      i = le + 2;
      if (size === 0) {
        const tend = rest.indexOf('\r\n\r\n', i - 2);
        if (tend < 0) return null;
        return { ...base, body: Buffer.concat(body) };
      }
      if (rest.length < i + size + 2) return null;
      body.push(rest.subarray(i, i + size));
      i += size + 2;
    }
  }
  const cl = get('content-length');
  if (cl !== undefined) {
    const n = Number(cl);
    if (rest.length < n) return null;
    return { ...base, body: rest.subarray(0, n) };
  }
  return closed ? { ...base, body: rest } : null;
}

export interface RawRequestOptions {
  timeoutMs?: number;
  /** The request is HEAD: the response has no body. */
  noBody?: boolean;
  /** Keep reading until the server closes (or the time limit) even after a full response. */
  untilClose?: boolean;
  /** Half-close our side after writing. */
  endAfterWrite?: boolean;
}

/** Sends `bytes` on a fresh connection and reads one response (or the close). Always resolves. */
export function rawRequest(port: number, bytes: Buffer | string | Array<Buffer | string>, opts: RawRequestOptions = {}): Promise<RawResult> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let error: string | null = null;
    let settled = false;
    const untrack = track({
      close: () => {
        socket.destroy();
        return Promise.resolve();
      },
    });
    const finish = (closed: boolean, timedOut: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      untrack();
      const raw = Buffer.concat(chunks);
      let response: RawResponse | null = null;
      try {
        response = parseRawResponse(raw, opts.noBody ?? false, closed);
      } catch {
        response = null;
      }
      resolve({ raw, response, closed, error, timedOut });
    };
    const timer = setTimeout(() => finish(false, true), timeoutMs);
    socket.on('connect', () => {
      const parts = Array.isArray(bytes) ? bytes : [bytes];
      for (const p of parts) socket.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
      if (opts.endAfterWrite === true) socket.end();
    });
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      if (opts.untilClose === true) return;
      try {
        if (parseRawResponse(Buffer.concat(chunks), opts.noBody ?? false, false) !== null) finish(false, false);
      } catch {
        finish(false, false);
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on('close', () => finish(true, false));
  });
}

/** A persistent raw connection: send exact bytes, read responses one at a time (keep-alive). */
export class RawClient {
  private buf = Buffer.alloc(0);
  private closedFlag = false;
  private errorCode: string | null = null;
  private readonly waiters = new Set<() => void>();
  private readonly untrack: () => void;

  private constructor(readonly socket: net.Socket) {
    this.untrack = track({
      close: () => {
        this.socket.destroy();
        return Promise.resolve();
      },
    });
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.errorCode = e.code ?? e.message;
    });
    socket.on('close', () => {
      this.closedFlag = true;
      this.wake();
    });
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  /** A RawClient on a socket already connected (a TLS socket after its handshake, say). */
  static over(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  get closed(): boolean {
    return this.closedFlag;
  }
  get error(): string | null {
    return this.errorCode;
  }
  /** Bytes received and not yet consumed by readResponse. */
  get pending(): Buffer {
    return this.buf;
  }

  send(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Reads the next complete response (bounded); consumes exactly its bytes. */
  async readResponse(opts: { noBody?: boolean; timeoutMs?: number } = {}): Promise<RawResponse & { raw: Buffer }> {
    const noBody = opts.noBody ?? false;
    const complete = (): boolean => {
      try {
        return this.closedFlag || parseRawResponse(this.buf, noBody, false) !== null;
      } catch {
        return true; // not HTTP: parsed again below, which throws
      }
    };
    const r = await this.until(complete, opts.timeoutMs ?? 5000);
    const parsed = parseRawResponse(this.buf, noBody, this.closedFlag);
    if (parsed === null) {
      const why = r ? 'connection closed before a complete response' : 'no complete response in time';
      throw new Error(`${why}: ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
    }
    const len = responseLength(this.buf, parsed, noBody);
    const raw = this.buf.subarray(0, len);
    this.buf = this.buf.subarray(len);
    return { ...parsed, raw };
  }

  /** Resolves true when the server closes the connection within `timeoutMs`. */
  waitClosed(timeoutMs = 5000): Promise<boolean> {
    return this.until(() => this.closedFlag, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
    this.untrack();
  }

  /** Resolves true as soon as `cond()` holds after some data or the close, false after `timeoutMs`. */
  private until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (!cond()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        resolve(false);
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Number of bytes one parsed response occupies at the start of `buf`. */
function responseLength(buf: Buffer, r: RawResponse, noBody: boolean): number {
  const headLen = r.headBytes.length;
  if (noBody || r.status === 204 || r.status === 304 || r.status < 200) return headLen;
  const te = header(r, 'transfer-encoding');
  if (te !== undefined && /chunked/i.test(te)) {
    // Walk the chunks again to find the end (including the terminating CRLF after trailers).
    let i = headLen;
    for (;;) {
      const le = buf.indexOf('\r\n', i);
      const size = parseInt(buf.toString('latin1', i, le).split(';')[0]!, 16);
      i = le + 2;
      if (size === 0) return buf.indexOf('\r\n\r\n', i - 2) + 4;
      i += size + 2;
    }
  }
  const cl = header(r, 'content-length');
  if (cl !== undefined) return headLen + Number(cl);
  return buf.length;
}

/**
 * A slow client: sends `parts` one by one, `gapMs` apart (TLS with `useTls`), stops early when
 * the server closes, waits `settleMs` after the last part; resolves with what came back.
 */
export function trickle(
  port: number,
  parts: string[],
  gapMs: number,
  settleMs: number,
  useTls = false,
): Promise<{ raw: string; closed: boolean; sentAll: boolean }> {
  return new Promise((resolve) => {
    const socket: net.Socket = useTls ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : net.connect({ host: '127.0.0.1', port });
    let raw = '';
    let closed = false;
    let sent = 0;
    socket.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    const next = (): void => {
      if (closed) return finish();
      if (sent === parts.length) return void setTimeout(finish, settleMs);
      socket.write(parts[sent++]!);
      setTimeout(next, gapMs);
    };
    const finish = (): void => {
      socket.destroy();
      resolve({ raw, closed, sentAll: sent === parts.length });
    };
    socket.once(useTls ? 'secureConnect' : 'connect', next);
  });
}
