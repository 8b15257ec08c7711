// WebSocket through one sidecar, on every engine, with the real `ws` client and server: messages
// of every kind and size arrive as sent both ways, control frames and close codes pass, a slow
// reader holds the writer back, refusals (the app's, the route's) reach the client, a reload keeps
// an open socket working, and /stats and /metrics count the upgraded connections. The strict and
// node engines pass bytes; uws re-encodes messages (uws_websocket.ts), so these tests are its
// proof of equivalence: every message, its type, pings, close codes and reasons arrive the same —
// with the engine's limits asserted where they show (client close codes uWS 20.30 refuses; a
// bound instead of backpressure for what the client sends).

import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  adminCall,
  closeAll,
  config,
  deadPort,
  eventually,
  parsePrometheus,
  rawRequest,
  sampleValue,
  startSidecar,
  untilCluster,
  type Sidecar,
} from '../helpers/sidecar.js';
import {
  closed,
  expectRefusedBySidecar,
  nextMessage,
  openWs,
  receiveCopies,
  refusalOf,
  send,
  sendUntilHeldBack,
  socketOf,
  startWsApp,
  wsConfig,
  type WsApp,
} from './helpers.js';

afterAll(closeAll);

const MB = 1024 * 1024;

/**
 * A client socket at `path` through a sidecar (engine `engine`) to an app that does not echo and
 * has stopped reading: `reader`, the app's side, is paused until the test resumes it.
 */
async function throughAppNotReading(engine: 'strict' | 'node' | 'uws', path: string): Promise<{ quietSc: Sidecar; ws: WebSocket; reader: WebSocket }> {
  const quiet = await startWsApp({ echo: false });
  const quietSc = await startSidecar(wsConfig(quiet, engine));
  const ws = await openWs(`ws://127.0.0.1:${quietSc.port()}${path}`);
  const reader = quiet.sockets.at(-1)!;
  socketOf(reader).pause();
  return { quietSc, ws, reader };
}

describe.each(['strict', 'node', 'uws'] as const)('WebSocket through the %s engine', (engine) => {
  let app: WsApp;
  let sc: Sidecar;
  let url: (path: string) => string;

  it('starts', async () => {
    app = await startWsApp();
    sc = await startSidecar(
      wsConfig(app, engine, [
        { name: 'closed', match: { path_prefix: '/no-upgrades' }, cluster: 'app', upgrades: [] },
        { name: 'ws', match: { path_prefix: '/' }, cluster: 'app' },
      ]),
    );
    url = (path) => `ws://127.0.0.1:${sc.port()}${path}`;
  });

  it('text and binary messages go both ways as sent; the app sees a routed upgrade request', async () => {
    const ws = await openWs(url('/chat?room=1'), { headers: { 'x-client': 'c1' } });
    const req = app.upgrades.at(-1)!;
    expect(req.url).toBe('/chat?room=1');
    expect(req.headers['upgrade']).toBe('websocket');
    expect(req.headers['x-client']).toBe('c1');
    expect(req.headers['x-forwarded-proto']).toBe('http');
    expect(req.headers['x-request-id']).toBeTruthy();

    const text = nextMessage(ws);
    await send(ws, 'héllo ✓');
    const t = await text;
    expect(t.binary).toBe(false);
    expect(t.data.toString('utf8')).toBe('héllo ✓');

    const bytes = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80]);
    const bin = nextMessage(ws);
    await send(ws, bytes, { binary: true });
    const b = await bin;
    expect(b.binary).toBe(true);
    expect(b.data.equals(bytes)).toBe(true);

    // Server → client without a request first.
    const pushed = nextMessage(ws);
    app.sockets.at(-1)!.send('from the app');
    expect((await pushed).data.toString()).toBe('from the app');
    ws.close(1000);
    await closed(ws);
  });

  it("the app's chosen subprotocol and its 101 headers reach the client; no extension is negotiated", async () => {
    const addHeader = (headers: string[]): void => void headers.push('X-App-Handshake: yes');
    app.wss.once('headers', addHeader);
    const ws = new WebSocket(url('/proto'), ['v2.chat', 'v1.chat'], { perMessageDeflate: false });
    const upgrade = new Promise<import('node:http').IncomingMessage>((resolve) => ws.once('upgrade', resolve));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    expect(ws.protocol).toBe('v2.chat'); // the app's ws picks the first offered
    expect((await upgrade).headers['x-app-handshake']).toBe('yes');
    expect(ws.extensions).toBe('');
    const echoed = nextMessage(ws);
    await send(ws, 'in v2');
    expect((await echoed).data.toString()).toBe('in v2');
    ws.close(1000);
    await closed(ws);
  });

  it('an offered permessage-deflate does not stop messages from passing', async () => {
    // The `ws` client offers it by default. The strict and node engines pass the offer to the app;
    // uws does not offer it upstream (uWS would have to inflate what the app compressed).
    const ws = await openWs(url('/deflate'));
    const offered = app.upgrades.at(-1)!.headers['sec-websocket-extensions'];
    if (engine === 'uws') expect(offered).toBeUndefined();
    else expect(offered).toContain('permessage-deflate');
    const echoed = nextMessage(ws);
    await send(ws, 'x'.repeat(10_000));
    expect((await echoed).data.toString()).toBe('x'.repeat(10_000));
    ws.close(1000);
    await closed(ws);
  });

  it('1 MB and 64 MB messages arrive whole, both ways', async () => {
    const ws = await openWs(url('/big'));
    for (const size of [MB, 64 * MB]) {
      const payload = randomBytes(size);
      const echoed = nextMessage(ws);
      await send(ws, payload, { binary: true });
      const got = await echoed;
      expect(got.data.length).toBe(size);
      expect(createHash('sha256').update(got.data).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    }
    ws.close(1000);
    await closed(ws);
  }, 60_000);

  it('a fragmented message from the app is delivered as one message, its type kept', async () => {
    const ws = await openWs(url('/frag-down'));
    const server = app.sockets.at(-1)!;
    const got = nextMessage(ws);
    server.send(Buffer.from('bin '), { binary: true, fin: false });
    server.ping(Buffer.from('between fragments'));
    server.send(Buffer.from('ary '), { binary: true, fin: false });
    server.send(Buffer.from('message'), { binary: true, fin: true });
    const m = await got;
    expect(m.binary).toBe(true);
    expect(m.data.toString()).toBe('bin ary message');
    ws.close(1000);
    await closed(ws);
  });

  it('a fragmented message is delivered as one message', async () => {
    const ws = await openWs(url('/frag'));
    const echoed = nextMessage(ws);
    await send(ws, 'part one, ', { fin: false });
    await send(ws, 'part two, ', { fin: false });
    await send(ws, 'end', { fin: true });
    expect((await echoed).data.toString()).toBe('part one, part two, end');
    ws.close(1000);
    await closed(ws);
  });

  it('ping and pong pass both ways with their payload', async () => {
    const ws = await openWs(url('/ping'));
    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('p1'));
    expect((await pong).toString()).toBe('p1'); // the app's ws answers pings itself
    const server = app.sockets.at(-1)!;
    const serverPong = new Promise<Buffer>((resolve) => server.once('pong', resolve));
    server.ping(Buffer.from('p2'));
    expect((await serverPong).toString()).toBe('p2'); // our client answered the app's ping
    ws.close(1000);
    await closed(ws);
  });

  // Every close code an endpoint may send (RFC 6455 §7.4.1 and the IANA registry: 1000-1003,
  // 1007-1014, the library range 3000-3999 and the private range 4000-4999; 1004 is reserved and
  // 1005, 1006, 1015 are never sent), each with a reason, from each side.
  it.each([
    [1000, ''],
    [1001, 'going away'],
    [1002, 'protocol error'],
    [1003, 'unsupported data'],
    [1007, 'invalid payload'],
    [1008, 'policy violation'],
    [1009, 'message too big'],
    [1010, 'mandatory extension'],
    [1011, 'internal error'],
    [1012, 'service restart'],
    [1013, 'try again later'],
    [1014, 'bad gateway'],
    [3000, 'unauthorized (registered)'],
    [3999, 'last registered'],
    [4000, 'custom reason ✓'],
    [4999, 'last private'],
  ])('close code %i with reason "%s" passes from client to app and from app to client', { timeout: 8000 }, async (code, reason) => {
    const a = await openWs(url('/close'));
    const appSide = closed(app.sockets.at(-1)!);
    const clientSide = closed(a);
    a.close(code, reason);
    if (engine === 'uws' && uwsRefusesFromClient(code)) {
      // An engine limit: uWS 20.30 takes these codes in a client's close frame for invalid (its
      // check predates their registration). It answers the client with a close frame without a
      // code and reports an abnormal closure, which reaches the app as a reset.
      expect(await appSide).toEqual({ code: 1006, reason: '' });
      expect(await clientSide).toEqual({ code: 1005, reason: '' });
    } else {
      expect(await appSide).toEqual({ code, reason });
      expect(await clientSide).toEqual({ code, reason }); // the app's ws echoes the close frame (uWS on uws)
    }

    const b = await openWs(url('/close'));
    const bSide = closed(b);
    app.sockets.at(-1)!.close(code, reason);
    expect(await bSide).toEqual({ code, reason });
  });

  it('a close frame without a code reads as 1005 on the other side, both ways', async () => {
    const a = await openWs(url('/close-no-code'));
    const appSide = closed(app.sockets.at(-1)!);
    a.close();
    expect(await appSide).toEqual({ code: 1005, reason: '' });
    const b = await openWs(url('/close-no-code'));
    const bSide = closed(b);
    app.sockets.at(-1)!.close();
    expect(await bSide).toEqual({ code: 1005, reason: '' });
  });

  if (engine === 'uws') {
    it('uws: what the client sends waits for an app that does not read up to one largest message; beyond, the client is closed with 1013 and the app gets all it was sent, then 1013', async () => {
      const { quietSc, ws, reader } = await throughAppNotReading(engine, '/bound');
      const chunk = randomBytes(MB);
      const clientSide = closed(ws);
      let sent = 0;
      // uWS reads whatever the client sends (it cannot pause a WebSocket): the proxy queues it
      // for the app until the queue passes the bound (64 MiB, the largest message), then closes.
      while (ws.readyState === ws.OPEN && sent < 512) {
        await send(ws, chunk, { binary: true });
        sent++;
      }
      const reason = 'the upstream is not reading fast enough';
      expect(await clientSide).toEqual({ code: 1013, reason });
      expect(sent).toBeGreaterThan(64);
      let received = 0;
      reader.on('message', (d: Buffer) => {
        expect(d.equals(chunk)).toBe(true);
        received++;
      });
      const appSide = closed(reader);
      socketOf(reader).resume();
      // Everything the proxy took reaches the app, in order, then a close frame with the same code.
      expect(await appSide).toEqual({ code: 1013, reason });
      expect(received).toBeGreaterThan(64);
      expect(received).toBeLessThanOrEqual(sent);
      const stats = await eventually(async () => {
        const st = (await adminCall(quietSc, 'GET', '/stats')).json as { upgrades: Array<Record<string, number | string>> };
        const row = st.upgrades.find((u) => u['listener'] === 'main');
        return row !== undefined && row['closed'] === 1 ? row : undefined;
      }, '/stats counts the closed socket');
      expect(stats['client_overflows']).toBe(1);
      const metrics = parsePrometheus((await adminCall(quietSc, 'GET', '/metrics')).text);
      expect(sampleValue(metrics, 'outrigger_upgraded_client_overflows_total', { listener: 'main' })).toBe(1);
    }, 60_000);
  } else {
    it('a slow reader holds the writer back; everything arrives once it reads again', async () => {
      // The app stops reading its socket: the kernel buffers fill, then the sidecar's, then the client's.
      const { ws, reader } = await throughAppNotReading(engine, '/slow');
      const chunk = randomBytes(256 * 1024);
      // Keep sending until the client's own buffer holds back what was sent (the proxy stopped reading).
      const flood = await sendUntilHeldBack(ws, chunk, 8 * MB);
      expect(ws.bufferedAmount).toBeGreaterThanOrEqual(8 * MB);
      // Not every send completed: the writer is held back while the reader is paused.
      expect(flood.acked()).toBeLessThan(flood.sent);
      const all = receiveCopies(reader, chunk, flood.sent);
      socketOf(reader).resume();
      expect(await all).toBe(flood.sent);
      await expect.poll(() => flood.acked(), { timeout: 10_000 }).toBe(flood.sent);
      expect(ws.bufferedAmount).toBe(0);
    }, 60_000);
  }

  it('a slow client holds the app back; everything arrives once it reads again', async () => {
    const ws = await openWs(url('/slow-client'));
    const writer = app.sockets.at(-1)!;
    socketOf(ws).pause();
    const chunk = randomBytes(256 * 1024);
    const flood = await sendUntilHeldBack(writer, chunk, 8 * MB);
    expect(flood.acked()).toBeLessThan(flood.sent); // the app's writes are held back while the client does not read
    const all = receiveCopies(ws, chunk, flood.sent);
    socketOf(ws).resume();
    expect(await all).toBe(flood.sent);
    await expect.poll(() => flood.acked(), { timeout: 10_000 }).toBe(flood.sent);
    ws.close(1000);
    await closed(ws);
  }, 60_000);

  it('an upgrade the app refuses reaches the client as the app answered it', async () => {
    const r = await refusalOf(url('/refuse'));
    expect(r.status).toBe(403);
    expect(r.headers['x-app']).toBe('refused');
    expect(r.body).toBe('not for you');
  });

  it('a route with upgrades: [] refuses the upgrade with 403 upgrade_refused; the app never sees it', async () => {
    await expectRefusedBySidecar(app, url('/no-upgrades/x'), 'upgrade_refused');
  });

  it('a reload keeps an open socket working; /stats and /metrics count upgraded connections and bytes', async () => {
    const ws = await openWs(url('/kept'));
    const reply = nextMessage(ws);
    await send(ws, 'before');
    expect((await reply).data.toString()).toBe('before');

    // A new version: the route of the open socket stays, a new route refuses upgrades.
    const v2 = wsConfig(app, engine, [
      { name: 'closed', match: { path_prefix: '/no-upgrades' }, cluster: 'app', upgrades: [] },
      { name: 'later', match: { path_prefix: '/later' }, cluster: 'app', upgrades: [] },
      { name: 'ws', match: { path_prefix: '/' }, cluster: 'app' },
    ]);
    const put = await adminCall(sc, 'PUT', '/config', v2);
    expect(put.status).toBe(200);
    expect((await refusalOf(url('/later'))).headers['x-outrigger-error']).toBe('upgrade_refused');

    const after = nextMessage(ws);
    await send(ws, 'after the reload');
    expect((await after).data.toString()).toBe('after the reload');

    const stats = await eventually(async () => {
      const s = (await adminCall(sc, 'GET', '/stats')).json as { upgrades: Array<Record<string, number | string>> };
      const row = s.upgrades.find((u) => u['listener'] === 'main');
      return row !== undefined && row['active'] === 1 && Number(row['bytes_from_client']) > 0 ? row : undefined;
    }, '/stats shows the open socket');
    expect(Number(stats['opened'])).toBeGreaterThanOrEqual(1);
    expect(Number(stats['bytes_from_upstream'])).toBeGreaterThan(0);
    const metrics = parsePrometheus((await adminCall(sc, 'GET', '/metrics')).text);
    expect(sampleValue(metrics, 'outrigger_upgraded_connections_active', { listener: 'main' })).toBe(1);
    expect(sampleValue(metrics, 'outrigger_upgraded_connections_total', { listener: 'main' })).toBe(Number(stats['opened']));

    ws.close(1000);
    await closed(ws);
    await eventually(async () => {
      const m = parsePrometheus((await adminCall(sc, 'GET', '/metrics')).text);
      return sampleValue(m, 'outrigger_upgraded_connections_active', { listener: 'main' }) === 0 ? true : undefined;
    }, 'the closed socket leaves the active gauge');
  });

  it('an Upgrade other than websocket (h2c) is served as a plain request', async () => {
    const before = app.upgrades.length;
    const r = await rawRequest(sc.port(), 'GET /plain HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n');
    expect(r.response?.status).toBe(200);
    expect(r.response?.body.toString()).toBe('plain http');
    expect(app.upgrades.length).toBe(before);
  });
});

describe.each(['strict', 'uws'] as const)('WebSocket to a dead endpoint through the %s engine', (engine) => {
  it('a refused connect takes the endpoint out of the balancing: round robin sends every later upgrade to the live one', async () => {
    const live = await startWsApp();
    const dead = `127.0.0.1:${await deadPort()}`;
    const sc = await startSidecar(
      config(
        [{ name: 'ws', match: { path_prefix: '/' }, cluster: 'app' }],
        [{ name: 'app', lb: 'round_robin', endpoints: [{ address: dead }, { address: live.address }] }],
        {
          listener: { engine },
        },
      ),
    );
    const url = `ws://127.0.0.1:${sc.port()}/`;
    // Round robin starts at the dead endpoint: the first upgrade is refused by the sidecar.
    await expect(refusalOf(url)).resolves.toMatchObject({ status: 502 });
    // Before, every other upgrade went to the dead endpoint; now none does.
    for (let i = 0; i < 6; i++) {
      const ws = await openWs(url);
      ws.close(1000);
      await closed(ws);
    }
    expect(live.upgrades.length).toBe(6);
    await untilCluster(sc, 'app', (c) => c.endpoints.find((e) => e.address === dead)?.unreachable_workers === 1, 'the dead endpoint unreachable');
  });
});

/** Client close codes uWS 20.30 refuses as invalid: 1012–1014 and 3000–3999 (see the close code test). */
function uwsRefusesFromClient(code: number): boolean {
  return (code >= 1012 && code <= 1014) || (code >= 3000 && code <= 3999);
}
