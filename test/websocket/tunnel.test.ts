// The tunnel at the byte level, with raw sockets on both sides of one sidecar (strict and node
// engines): the app's 101 head and everything after it reach the client byte for byte, bytes the
// client sent right behind its request head reach the app only after the 101, a FIN in one
// direction leaves the other flowing, a reset on one side resets the other, the idle timeout
// closes a silent tunnel, and a drain lets an open tunnel finish within node.drain_timeout_ms. On
// the uws engine (messages re-encoded) the same, minus the byte-level claims.

import net from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, config, deadPort, rawRequest, startSidecar, track, type Sidecar } from '../helpers/sidecar.js';
import { closed, nextMessage, openWs, refusalOf, send, startWsApp } from './helpers.js';

afterAll(closeAll);

const RESPONSE_101 = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-App-Header: kept as sent\r\n\r\n';

/** One upstream connection as the raw app sees it. */
interface AppConn {
  readonly socket: net.Socket;
  /** The request head, and the bytes that came after it (in order). */
  head: string;
  after: Buffer;
  /** What the app had received when it wrote its 101 (nothing past the head may be there). */
  beforeAnswer: Buffer;
  ended: boolean;
}

/** A raw app: answers each upgrade request with RESPONSE_101 (after `delayMs`), then records what comes. */
async function startRawApp(): Promise<{ address: string; conns: AppConn[] }> {
  const conns: AppConn[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const c: AppConn = { socket, head: '', after: Buffer.alloc(0), beforeAnswer: Buffer.alloc(0), ended: false };
    conns.push(c);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      if (c.head !== '') {
        c.after = Buffer.concat([c.after, d]);
        return;
      }
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      c.head = buf.toString('latin1', 0, end + 4);
      c.beforeAnswer = buf.subarray(end + 4);
      // Answer on a later turn: bytes the client sent behind its head would have arrived by now if the proxy forwarded them early.
      setTimeout(() => socket.write(`${RESPONSE_101}first bytes after the head`), 50);
    });
    socket.on('end', () => (c.ended = true));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  track({
    close: () => {
      for (const c of conns) c.socket.destroy();
      return new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  });
  return { address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`, conns };
}

/** A raw client connection that records what it receives. */
function rawClient(port: number): { socket: net.Socket; received: () => string; ended: () => boolean; error: () => string | null } {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  let data = Buffer.alloc(0);
  let ended = false;
  let error: string | null = null;
  socket.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
  socket.on('end', () => (ended = true));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  track({
    close: () => {
      socket.destroy();
      return Promise.resolve();
    },
  });
  return { socket, received: () => data.toString('latin1'), ended: () => ended, error: () => error };
}

const CHUNKED_REFUSAL = 'HTTP/1.1 426 Upgrade Required\r\nTransfer-Encoding: chunked\r\nX-App: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n';

/** An app that answers any request with CHUNKED_REFUSAL and keeps the connection open: the routes and clusters that send everything to it. */
async function chunkedRefusalApp(): Promise<[routes: Record<string, unknown>[], clusters: Record<string, unknown>[]]> {
  const server = net.createServer((s) => s.once('data', () => s.write(CHUNKED_REFUSAL)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  track({ close: () => new Promise((resolve) => server.close(() => resolve(undefined))) });
  const address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return [[{ match: { path_prefix: '/' }, cluster: 'app' }], [{ name: 'app', endpoints: [{ address }] }]];
}

const UPGRADE =
  'GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

describe('answers other than 101', () => {
  it('an endpoint that cannot be reached: 502 upstream_connect_failed, then the connection closes', async () => {
    const sc = await startSidecar(
      config([{ match: { path_prefix: '/' }, cluster: 'app' }], [{ name: 'app', endpoints: [{ address: `127.0.0.1:${await deadPort()}` }] }]),
    );
    const r = await rawRequest(sc.port(), UPGRADE, { untilClose: true });
    expect(r.response?.status).toBe(502);
    expect(r.raw.toString('latin1')).toContain('x-outrigger-error: upstream_connect_failed');
    expect(r.closed).toBe(true);
  });

  it('a chunked refusal is relayed byte for byte and the connection closes at its end', async () => {
    const sc = await startSidecar(config(...(await chunkedRefusalApp())));
    const r = await rawRequest(sc.port(), UPGRADE, { untilClose: true });
    expect(r.raw.toString('latin1')).toBe(CHUNKED_REFUSAL);
    expect(r.closed).toBe(true);
  });
});

describe.each(['strict', 'node'] as const)('the tunnel on the %s engine', (engine) => {
  let app: Awaited<ReturnType<typeof startRawApp>>;
  let sc: Sidecar;

  it('starts', async () => {
    app = await startRawApp();
    sc = await startSidecar(
      config(
        [
          { name: 'idle', match: { path_prefix: '/idle' }, cluster: 'app', websocket: { idle_timeout_ms: 300 } },
          { name: 'ws', match: { path_prefix: '/' }, cluster: 'app' },
        ],
        [{ name: 'app', endpoints: [{ address: app.address }] }],
        { listener: { engine }, node: { drain_timeout_ms: 5000 } },
      ),
    );
  });

  it('101 and after: bytes unchanged; early client bytes wait for the 101; half-close both ways', async () => {
    const c = rawClient(sc.port());
    // The request head and the first bytes of the new protocol in one write.
    c.socket.write(`${UPGRADE}early bytes`);
    await expect.poll(() => c.received()).toBe(`${RESPONSE_101}first bytes after the head`);
    const conn = app.conns.at(-1)!;
    expect(conn.head).toMatch(/^GET \/chat HTTP\/1\.1\r\n/);
    expect(conn.head.toLowerCase()).toContain('\r\nconnection: upgrade\r\n');
    expect(conn.head.toLowerCase()).toContain('\r\nupgrade: websocket\r\n');
    expect(conn.head).toContain('\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n');
    expect(conn.beforeAnswer.length).toBe(0); // nothing past the head before the 101
    await expect.poll(() => conn.after.toString()).toBe('early bytes');

    // Binary bytes pass unchanged, both ways.
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    c.socket.write(all);
    await expect.poll(() => conn.after.length).toBe('early bytes'.length + 256);
    expect(conn.after.subarray('early bytes'.length).equals(all)).toBe(true);

    // The client half-closes: the app sees the FIN and can still send.
    c.socket.end();
    await expect.poll(() => conn.ended).toBe(true);
    expect(c.ended()).toBe(false);
    conn.socket.write(' still flowing');
    await expect.poll(() => c.received().endsWith(' still flowing')).toBe(true);
    conn.socket.end();
    await expect.poll(() => c.ended()).toBe(true);
    expect(c.error()).toBeNull();
  });

  it('the app half-closes first: the client sees the FIN and can still send', async () => {
    const c = rawClient(sc.port());
    c.socket.write(UPGRADE);
    await expect.poll(() => c.received().startsWith(RESPONSE_101)).toBe(true);
    const conn = app.conns.at(-1)!;
    conn.socket.end();
    await expect.poll(() => c.ended()).toBe(true);
    c.socket.write('late words');
    await expect.poll(() => conn.after.toString()).toBe('late words');
    c.socket.end();
    await expect.poll(() => conn.ended).toBe(true);
  });

  it('a reset by the app resets the client; a reset by the client resets the app', async () => {
    const c = rawClient(sc.port());
    c.socket.write(UPGRADE);
    await expect.poll(() => c.received().startsWith(RESPONSE_101)).toBe(true);
    app.conns.at(-1)!.socket.resetAndDestroy();
    await expect.poll(() => c.error()).toBe('ECONNRESET');

    const d = rawClient(sc.port());
    d.socket.write(UPGRADE);
    await expect.poll(() => d.received().startsWith(RESPONSE_101)).toBe(true);
    const conn = app.conns.at(-1)!;
    let appError: string | null = null;
    conn.socket.on('error', (e: NodeJS.ErrnoException) => (appError = e.code ?? e.message));
    d.socket.resetAndDestroy();
    await expect.poll(() => appError).toBe('ECONNRESET');
  });

  it('websocket.idle_timeout_ms closes a tunnel with no byte either way', async () => {
    const c = rawClient(sc.port());
    c.socket.write(UPGRADE.replace('/chat', '/idle'));
    await expect.poll(() => c.received().startsWith(RESPONSE_101)).toBe(true);
    const conn = app.conns.at(-1)!;
    await expect.poll(() => c.ended(), { timeout: 5000 }).toBe(true);
    await expect.poll(() => conn.ended).toBe(true);
  });

  it('a drain lets an open tunnel carry on, and closes it at node.drain_timeout_ms', async () => {
    const c = rawClient(sc.port());
    c.socket.write(UPGRADE);
    await expect.poll(() => c.received().startsWith(RESPONSE_101)).toBe(true);
    const conn = app.conns.at(-1)!;
    const stopped = sc.stop();
    await sc.waitForLog((e) => e.msg === 'draining');
    // Still open during the grace period: bytes flow both ways.
    c.socket.write('during the drain');
    await expect.poll(() => conn.after.toString()).toBe('during the drain');
    conn.socket.write(' answered');
    await expect.poll(() => c.received().endsWith(' answered')).toBe(true);
    expect(c.ended()).toBe(false);
    // Then closed when the grace period ends, and the sidecar exits.
    expect(await stopped).toBe(0);
    await expect.poll(() => c.socket.destroyed || c.ended()).toBe(true);
  }, 20_000);
});

// The uws engine re-encodes messages (uws_websocket.ts): the byte-level tests above do not hold
// there, and websocket.test.ts proves its message equivalence. What is left to prove here: the
// tunnel's refusals reach the client through uWS, a frame the app may not send closes both sides,
// the idle timeout, and the drain.
describe('the uws engine', () => {
  it('an endpoint that cannot be reached: 502 upstream_connect_failed through uWS', async () => {
    const sc = await startSidecar(
      config([{ match: { path_prefix: '/' }, cluster: 'app' }], [{ name: 'app', endpoints: [{ address: `127.0.0.1:${await deadPort()}` }] }], {
        listener: { engine: 'uws' },
      }),
    );
    const r = await refusalOf(`ws://127.0.0.1:${sc.port()}/chat`);
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('upstream_connect_failed');
    expect(JSON.parse(r.body)).toMatchObject({ error: 'upstream_connect_failed' });
  });

  it('a chunked refusal reaches the client with its status, headers and body (de-chunked)', async () => {
    const sc = await startSidecar(config(...(await chunkedRefusalApp()), { listener: { engine: 'uws' } }));
    const r = await refusalOf(`ws://127.0.0.1:${sc.port()}/chat`);
    expect(r.status).toBe(426);
    expect(r.headers['x-app']).toBe('chunked');
    expect(r.body).toBe('hello world');
  });

  it('a frame the app may not send (reserved bits set) closes both sides with 1002', async () => {
    // The raw app's bytes after its 101 ("first bytes…") read as a frame with RSV bits set.
    const app = await startRawApp();
    const sc = await startSidecar(
      config([{ match: { path_prefix: '/' }, cluster: 'app' }], [{ name: 'app', endpoints: [{ address: app.address }] }], { listener: { engine: 'uws' } }),
    );
    const ws = await openWs(`ws://127.0.0.1:${sc.port()}/chat`);
    expect(await closed(ws)).toMatchObject({ code: 1002 });
    // The app gets a masked close frame with 1002, then the proxy's FIN.
    const conn = app.conns.at(-1)!;
    await expect.poll(() => conn.ended).toBe(true);
    const f = conn.after;
    expect(f[0]).toBe(0x88); // FIN, close
    expect(f[1]! & 0x80).toBe(0x80); // masked, as a client's frames must be
    const len = f[1]! & 0x7f;
    const payload = Buffer.from(f.subarray(6, 6 + len).map((b, i) => b ^ f[2 + (i % 4)]!));
    expect(payload.readUInt16BE(0)).toBe(1002);
  });

  it('websocket.idle_timeout_ms closes a socket with no message either way; a drain lets an open socket carry on and closes it at node.drain_timeout_ms', async () => {
    const app = await startWsApp();
    const sc = await startSidecar(
      config(
        [
          { name: 'idle', match: { path_prefix: '/idle' }, cluster: 'app', websocket: { idle_timeout_ms: 300 } },
          { name: 'ws', match: { path_prefix: '/' }, cluster: 'app' },
        ],
        [{ name: 'app', endpoints: [{ address: app.address }] }],
        { listener: { engine: 'uws' }, node: { drain_timeout_ms: 3000 } },
      ),
    );
    const idle = await openWs(`ws://127.0.0.1:${sc.port()}/idle`);
    const appIdle = closed(app.sockets.at(-1)!);
    // Closed by the proxy without a close frame, as the other engines close the connection.
    expect(await closed(idle)).toEqual({ code: 1006, reason: '' });
    expect((await appIdle).code).toBe(1006);

    const ws = await openWs(`ws://127.0.0.1:${sc.port()}/kept`);
    const stopped = sc.stop();
    await sc.waitForLog((e) => e.msg === 'draining');
    const echo = nextMessage(ws);
    await send(ws, 'during the drain');
    expect((await echo).data.toString()).toBe('during the drain');
    const end = closed(ws);
    expect(await stopped).toBe(0);
    expect((await end).code).toBe(1006);
  }, 20_000);
});
