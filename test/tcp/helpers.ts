// Raw TCP test parts: an app server whose connection handler the test gives (allowHalfOpen, so a
// FIN in one direction leaves the other open), a client connection with everything it received,
// the sidecar config of one tcp listener in front of a cluster, and such a sidecar with a
// connection already open through it (what a reload must keep).

import net from 'node:net';
import { expect, it } from 'vitest';
import { track } from '../helpers/live.js';
import { startSidecar, type Sidecar } from '../helpers/sidecar.js';

export interface TcpApp {
  readonly port: number;
  readonly address: string;
  /** Every connection accepted so far, in order. */
  readonly sockets: net.Socket[];
  close(): Promise<void>;
}

/** A TCP app on 127.0.0.1:0; `handle` runs for each connection (default: echo, FIN after the client's FIN). */
export async function startTcpApp(handle: (s: net.Socket) => void = echo): Promise<TcpApp> {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on('error', () => {});
    handle(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const app: TcpApp = {
    port,
    address: `127.0.0.1:${port}`,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  track(app);
  return app;
}

export function echo(s: net.Socket): void {
  s.pipe(s);
}

export interface Client {
  readonly socket: net.Socket;
  /** Everything received so far. */
  received(): Buffer;
  /** Resolves at the peer's FIN. */
  readonly ended: Promise<void>;
  /** Resolves at close, with the error code that closed it ('' for a clean close; after a FIN, only once this side ends too). */
  readonly closed: Promise<string>;
}

/** Connects to 127.0.0.1:port (allowHalfOpen) and collects what arrives. */
export async function connectClient(port: number): Promise<Client> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let error = '';
  socket.on('data', (d: Buffer) => chunks.push(d));
  socket.on('error', (e: NodeJS.ErrnoException) => {
    error = e.code ?? e.message;
  });
  const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(error)));
  track({ close: () => Promise.resolve(void socket.destroy()) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, received: () => Buffer.concat(chunks), ended, closed };
}

/** Bytes `s` received, collected until its peer's FIN. */
export function readAll(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  // An unpiped socket stays paused until told otherwise.
  s.resume();
  return new Promise((resolve) => s.once('end', () => resolve(Buffer.concat(chunks))));
}

export interface TcpSidecarOptions {
  readonly endpoints: readonly string[];
  readonly lb?: string;
  readonly maxConnections?: number;
  readonly idleTimeoutMs?: number;
  readonly accessLog?: string;
  readonly outlier?: Record<string, unknown>;
  /** More fields of the listener. */
  readonly listener?: Record<string, unknown>;
}

/** One sidecar: plaintext tcp listener `main` → cluster `app`. */
export function tcpSidecarConfig(o: TcpSidecarOptions): Record<string, unknown> {
  const listener: Record<string, unknown> = { name: 'main', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'app', ...o.listener };
  if (o.idleTimeoutMs !== undefined) listener['tcp'] = { idle_timeout_ms: o.idleTimeoutMs };
  if (o.accessLog !== undefined) listener['access_log'] = { path: o.accessLog };
  const cluster: Record<string, unknown> = { name: 'app', lb: o.lb ?? 'least_request', endpoints: o.endpoints.map((address) => ({ address })) };
  if (o.maxConnections !== undefined) cluster['circuit_breaker'] = { max_requests: o.maxConnections };
  if (o.outlier !== undefined) cluster['outlier_detection'] = o.outlier;
  return { node: { workers: 1 }, listeners: [listener], clusters: [cluster] };
}

/** A sidecar on `config` and a client connection through it whose first bytes, `before`, have come back from the app. */
export async function sidecarWithOpenConnection(config: Record<string, unknown>): Promise<{ sc: Sidecar; open: Client }> {
  const sc = await startSidecar(config);
  const open = await connectClient(sc.port());
  open.socket.write('before');
  await expect.poll(() => open.received().toString()).toBe('before');
  return { sc, open };
}

/** A client connection through `port` and the app's side of it, once the app has accepted it. */
async function connectThrough(port: number, app: TcpApp): Promise<{ c: Client; s: net.Socket }> {
  const before = app.sockets.length;
  const c = await connectClient(port);
  await expect.poll(() => app.sockets.length).toBe(before + 1);
  return { c, s: app.sockets.at(-1)! };
}

/** The app's side stops echoing: the test reads and writes it by hand. */
function takeOver(s: net.Socket): Promise<Buffer> {
  s.unpipe(s);
  s.removeAllListeners('data');
  return readAll(s);
}

/** The error code a socket closes with ('' for a clean close). */
function closeCode(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let code = '';
    s.on('error', (e: NodeJS.ErrnoException) => (code = e.code ?? ''));
    s.once('close', () => resolve(code));
  });
}

/**
 * The four edge cases every TCP path must pass — through one sidecar and across two over mTLS:
 * a FIN from either end leaves the other direction flowing, and a reset at either end arrives at
 * the other as a reset. Registers them in the calling describe; `port()` and `app()` are read
 * when each test runs (after the suite's set-up). Each makes one connection.
 */
export function halfCloseAndResetCases(port: () => number, app: () => TcpApp): void {
  it('half-close from the client: the app still sends after the client FIN', async () => {
    const { c, s } = await connectThrough(port(), app());
    const fromClient = takeOver(s);
    c.socket.end('question');
    expect((await fromClient).toString()).toBe('question');
    s.end('answer after your FIN');
    await c.ended;
    expect(c.received().toString()).toBe('answer after your FIN');
  });

  it('half-close from the app: the client still sends after the app FIN', async () => {
    const { c, s } = await connectThrough(port(), app());
    const fromClient = takeOver(s);
    s.end('bye from the app');
    await c.ended;
    expect(c.received().toString()).toBe('bye from the app');
    c.socket.end('still talking');
    expect((await fromClient).toString()).toBe('still talking');
  });

  it('a reset by the client reaches the app as a reset', async () => {
    const { c, s } = await connectThrough(port(), app());
    const appSaw = closeCode(s);
    c.socket.resetAndDestroy();
    expect(await appSaw).toBe('ECONNRESET');
  });

  it('a reset by the app reaches the client as a reset', async () => {
    const { c, s } = await connectThrough(port(), app());
    s.resetAndDestroy();
    expect(await c.closed).toBe('ECONNRESET');
  });
}

/** One entry of /stats' `tcp` list (src/stats/tcp.ts): a listener and cluster's connections. */
export interface TcpStat {
  listener: string;
  cluster: string;
  active: number;
  opened: number;
  closed: number;
  by_destination_port: Record<string, number>;
  refused: Record<string, number>;
  bytes_from_client: number;
  bytes_from_upstream: number;
  duration_seconds_total: number;
}

/** The entry of a /stats body for `listener` (and `cluster`, when given): undefined before its first connection. */
export function tcpStatOf(stats: unknown, listener: string, cluster?: string): TcpStat | undefined {
  return (stats as { tcp: TcpStat[] }).tcp.find((t) => t.listener === listener && (cluster === undefined || t.cluster === cluster));
}
