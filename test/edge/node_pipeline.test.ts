// Pipelined requests on the `node` engine. Node's server emits each request as soon as it parses
// it; the engine serves them one at a time, in the client's order (as the strict engine does),
// so a request never reaches the upstream before the response of the one ahead of it is complete,
// and one whose client left while it waited never reaches the upstream at all.

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, eventually, restartLines, sleep, startSidecar, track, type Sidecar } from '../helpers/sidecar.js';

/** An app that notes each request's path as it arrives and answers `/held/*` only when released. */
interface HeldApp {
  readonly address: string;
  readonly seen: string[];
  release(): void;
}

async function startHeldApp(): Promise<HeldApp> {
  const seen: string[] = [];
  let waiting: Array<() => void> = [];
  const server = net.createServer((sock) => {
    let buf = '';
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let at = buf.indexOf('\r\n\r\n'); at >= 0; at = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, at);
        const path = head.split(' ')[1] ?? '';
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        buf = buf.slice(at + 4 + length); // these tests send whole requests in one write
        seen.push(path);
        const answer = (): void => void sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${path.length}\r\n\r\n${path}`);
        if (path.startsWith('/held/')) waiting.push(answer);
        else answer();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  track({ close: () => new Promise<void>((r) => server.close(() => r())) });
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    seen,
    release: () => {
      const w = waiting;
      waiting = [];
      for (const f of w) f();
    },
  };
}

describe('pipelined requests on the node engine', () => {
  let app: HeldApp;
  let sc: Sidecar;

  beforeAll(async () => {
    app = await startHeldApp();
    sc = await startSidecar({
      node: { workers: 1 },
      listeners: [{ name: 'main', address: '127.0.0.1:0', engine: 'node', routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }],
      clusters: [{ name: 'app', endpoints: [{ address: app.address }] }],
    });
  });
  afterAll(closeAll);

  it('reach the upstream one at a time, in order: the next only once the response before it is complete', async () => {
    app.seen.length = 0;
    const client = net.connect(sc.port(), '127.0.0.1');
    track({ close: () => Promise.resolve(void client.destroy()) });
    let raw = '';
    client.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    client.write(
      'POST /held/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\naGET /next/2 HTTP/1.1\r\nHost: x\r\n\r\nPOST /next/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
    );
    await eventually(() => (app.seen.length > 0 ? true : undefined), 'the first request reached the app');
    // While the first response is held, nothing behind it is forwarded (before: both at once).
    await sleep(300);
    expect(app.seen).toEqual(['/held/1']);
    app.release();
    await eventually(() => (raw.includes('/next/3') ? true : undefined), 'all three answered');
    expect(app.seen).toEqual(['/held/1', '/next/2', '/next/3']);
    expect([...raw.matchAll(/\r\n\r\n(\/\w+\/\d)/g)].map((m) => m[1])).toEqual(['/held/1', '/next/2', '/next/3']);
  });

  it('a client that leaves while requests wait behind a slow one: those never reach the upstream', async () => {
    app.seen.length = 0;
    const client = net.connect(sc.port(), '127.0.0.1');
    client.on('error', () => undefined);
    client.write('GET /held/a HTTP/1.1\r\nHost: x\r\n\r\nPOST /gone/b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb');
    await eventually(() => (app.seen.length > 0 ? true : undefined), 'the first request reached the app');
    client.destroy();
    await sleep(200);
    app.release();
    await sleep(300);
    expect(app.seen).toEqual(['/held/a']);
  });

  // Node hands an Upgrade request over on its own ('upgrade' event) while the response before it
  // may be pending. Claiming the connection then threw ('ServerResponse has an already assigned
  // socket') and crashed the worker: one client could restart workers at will (h2c), or the
  // tunnel's bytes went out before the pending response (websocket).
  it.each([
    ['h2c', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n'],
    ['websocket', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'],
  ])('an Upgrade (%s) pipelined behind a pending request waits for its response; the worker keeps running', async (_kind, upgrade) => {
    app.seen.length = 0;
    const client = net.connect(sc.port(), '127.0.0.1');
    track({ close: () => Promise.resolve(void client.destroy()) });
    client.on('error', () => undefined);
    let raw = '';
    client.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    client.write(`GET /held/u HTTP/1.1\r\nHost: x\r\n\r\nGET /up/u HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n`);
    await eventually(() => (app.seen.length > 0 ? true : undefined), 'the first request reached the app');
    await sleep(200);
    app.release();
    await eventually(() => (raw.includes('/up/u') ? true : undefined), 'the upgrade request answered');
    expect([...raw.matchAll(/\r\n\r\n(\/\w+\/u)/g)].map((m) => m[1])).toEqual(['/held/u', '/up/u']);
    expect(app.seen).toEqual(['/held/u', '/up/u']);
    expect(restartLines(sc)).toEqual([]);
  });
});
