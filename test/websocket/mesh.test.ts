// WebSocket across the two-sidecar mTLS path: ws client → outbound sidecar (plaintext listener:
// strict, or uws, which re-encodes messages) → mTLS → inbound sidecar (TLS listener, strict and
// node engines) → ws server. Messages and close codes pass, the app learns the caller's identity,
// and the inbound side's authorization refuses an upgrade to a path the caller may not use (its
// 403 travels back through the outbound sidecar unchanged).

import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { caSource, clientSideConfig, closeAll, newCa, serverSideConfig, startSidecar, WEB } from '../helpers/sidecar.js';
import { closed, expectRefusedBySidecar, nextMessage, openWs, send, startWsApp, type WsApp } from './helpers.js';

afterAll(closeAll);

describe.each([
  ['strict', 'strict'],
  ['node', 'strict'],
  ['strict', 'uws'],
] as const)('WebSocket across two sidecars (inbound engine %s, outbound engine %s)', (engine, outboundEngine) => {
  let app: WsApp;
  let url: (path: string) => string;

  it('starts', async () => {
    const ca = await newCa();
    app = await startWsApp();
    const serverCfg = serverSideConfig({ tls: caSource(ca), app: app.address, authorization: [{ from: [WEB], paths: ['/ws/*'] }] });
    (serverCfg['listeners'] as Array<Record<string, unknown>>)[0]!['engine'] = engine;
    const server = await startSidecar(serverCfg);
    const clientCfg = clientSideConfig({ tls: caSource(ca), upstream: `127.0.0.1:${server.port('inbound')}` });
    (clientCfg['listeners'] as Array<Record<string, unknown>>)[0]!['engine'] = outboundEngine;
    const client = await startSidecar(clientCfg);
    url = (path) => `ws://127.0.0.1:${client.port('outbound')}${path}`;
  });

  it('messages of every kind pass both ways; the app sees the caller identity', async () => {
    const ws = await openWs(url('/ws/chat'));
    const req = app.upgrades.at(-1)!;
    expect(req.headers['x-forwarded-client-cert']).toContain(`URI=${WEB}`);
    expect(req.headers['x-forwarded-proto']).toBe('https');

    const text = nextMessage(ws);
    await send(ws, 'across the mesh ✓');
    expect((await text).data.toString()).toBe('across the mesh ✓');

    const payload = randomBytes(1024 * 1024);
    const big = nextMessage(ws);
    await send(ws, payload, { binary: true });
    const got = await big;
    expect(got.binary).toBe(true);
    expect(createHash('sha256').update(got.data).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));

    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('mesh ping'));
    expect((await pong).toString()).toBe('mesh ping');

    const appSide = closed(app.sockets.at(-1)!);
    const clientSide = closed(ws);
    ws.close(4000, 'done here');
    expect(await appSide).toEqual({ code: 4000, reason: 'done here' });
    expect(await clientSide).toEqual({ code: 4000, reason: 'done here' });
  });

  it('the inbound side refuses an upgrade its authorization does not allow; the 403 reaches the client', async () => {
    await expectRefusedBySidecar(app, url('/admin/socket'), 'unauthorized');
  });
});
