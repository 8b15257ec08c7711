// In-process upstream side for connection and pool tests: a raw TCP server on 127.0.0.1 (port 0)
// that hands each complete request head (no bodies) to the test, which answers by hand; and a
// request that records what its connection tells it; and the pool settings the pool tests start from.

import net from 'node:net';
import type { PoolSpec } from '../../src/config/types.js';
import type { ProxyError } from '../../src/errors.js';
import type { UpstreamChannel, UpstreamRequest, UpstreamTarget } from '../../src/upstream/channel.js';
import type { PendingBudget } from '../../src/upstream/pool.js';

export interface ReceivedRequest {
  readonly socket: net.Socket;
  /** Request line, e.g. `GET /a HTTP/1.1`. */
  readonly line: string;
  /** 1 for the first request on its socket. */
  readonly nth: number;
}

export interface RawUpstream {
  readonly port: number;
  readonly sockets: Set<net.Socket>;
  close(): Promise<void>;
}

/** A server that calls `onRequest` for every request head it reads. */
export async function rawUpstream(onRequest: (r: ReceivedRequest) => void): Promise<RawUpstream> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    let nth = 0;
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        onRequest({ socket, line: head.slice(0, head.indexOf('\r\n')), nth: ++nth });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Writes a 200 response with `body` (keep-alive unless `close`). */
export function respond(socket: net.Socket, body = 'ok', close = false): void {
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`);
}

/** A port with nothing listening (a server opened and closed). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An UpstreamRequest that sends `GET path` (or `method path`, no body) and records the response or the error. */
export class RecordingRequest implements UpstreamRequest {
  readonly isHead = false;
  /** A bodiless GET or HEAD may share a pipelined plaintext connection (UpstreamRequest.pipelinable). */
  pipelinable: boolean;
  /** A bodiless GET may be moved off a connection stalled behind a response (UpstreamRequest.movable). */
  movable: boolean;
  status = 0;
  body = '';
  ended = false;
  error: ProxyError | null = null;
  /** The channel the error came with (null: none was ever assigned). */
  errorChannel: UpstreamChannel | null = null;
  /** Every channel this request was handed, in order. */
  readonly channels: UpstreamChannel[] = [];

  readonly head: { method: string; target: string };
  readonly upstreamHead: string;

  constructor(
    readonly path = '/',
    method = 'GET',
  ) {
    this.head = { method, target: path };
    this.pipelinable = this.movable = method === 'GET';
    const length = method === 'GET' ? '' : 'content-length: 0\r\n';
    this.upstreamHead = `${method} ${path} HTTP/1.1\r\nhost: upstream.test\r\n${length}\r\n`;
  }

  onConnection(ch: UpstreamChannel): void {
    this.channels.push(ch);
    ch.sendHead(this, true);
  }
  onUpstreamError(err: ProxyError, ch: UpstreamChannel | null): void {
    this.error = err;
    this.errorChannel = ch;
  }
  onUpstreamWritable(): void {}
  runCorked(task: () => void): void {
    task();
  }
  onHead(status: number): void {
    this.status = status;
  }
  onBody(chunk: Buffer): void {
    this.body += chunk.toString('latin1');
  }
  onEnd(): void {
    this.ended = true;
  }
}

/**
 * Pool settings for a test, `spec` over these: 4 connections, no idle close or keepalive PING
 * unless the test asks, a 1 s connect timeout, pipelining up to 16, as many waiters as `budget`.
 */
export function testPoolSpec(budget: PendingBudget, spec: Partial<PoolSpec>): PoolSpec {
  return {
    connectionsPerWorker: 4,
    idleTimeoutMs: 60_000,
    connectTimeoutMs: 1_000,
    keepaliveIntervalMs: 0,
    pipelineDepth: 16,
    pipelinePlaintext: 'off',
    maxPending: budget.max,
    ...spec,
  };
}

/** A request that, like an exchange, sends itself again on `target` when its try comes back unprocessed. */
export class ResendingRequest extends RecordingRequest {
  resent = 0;
  constructor(
    private readonly target: UpstreamTarget,
    path: string,
    method = 'GET',
    /** A resend goes alone, as an Exchange's does (Exchange.pipelinable). */
    private readonly resendAlone = false,
  ) {
    super(path, method);
  }
  override onUpstreamError(err: ProxyError, ch: UpstreamChannel | null): void {
    if (ch?.unprocessed === true) {
      this.resent++;
      if (this.resendAlone) this.pipelinable = false;
      this.target.dispatch(this);
      return;
    }
    super.onUpstreamError(err, ch);
  }
}
