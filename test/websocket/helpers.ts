// The WebSocket tests' app and clients: a real `ws` server behind node:http (it answers upgrades
// by path: /refuse is answered 403 by the app itself, anything else is accepted and echoes), the
// sidecar config that leads to it, a client that collects what it receives, the check of an
// upgrade the sidecar refuses, and the flood a slow peer holds back.

import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'vitest';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import { config, track } from '../helpers/sidecar.js';

export interface WsApp {
  readonly port: number;
  readonly address: string;
  readonly wss: WebSocketServer;
  /** Heads of the upgrade requests the app received, in order. */
  readonly upgrades: http.IncomingMessage[];
  /** Server-side sockets, in the order they opened. */
  readonly sockets: WebSocket[];
  close(): Promise<void>;
}

/** Starts the app: every message is echoed back as it came (text as text, binary as binary), except when `echo` is false. */
export async function startWsApp(o: { echo?: boolean } = {}): Promise<WsApp> {
  const server = http.createServer((_req, res) => res.end('plain http'));
  const wss = new WebSocketServer({ noServer: true, maxPayload: 128 * 1024 * 1024 });
  const upgrades: http.IncomingMessage[] = [];
  const sockets: WebSocket[] = [];
  server.on('upgrade', (req, socket, head) => {
    upgrades.push(req);
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 11\r\nx-app: refused\r\n\r\nnot for you');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.push(ws);
      if (o.echo !== false) ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data as Buffer, { binary: isBinary }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const app: WsApp = {
    port,
    address: `127.0.0.1:${port}`,
    wss,
    upgrades,
    sockets,
    close: async () => {
      for (const s of wss.clients) s.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  track(app);
  return app;
}

/** One listener `main` (engine `engine`) with `routes` (default: everything to the app), cluster `app`. */
export function wsConfig(app: WsApp, engine: 'strict' | 'node' | 'uws', routes?: Array<Record<string, unknown>>): Record<string, unknown> {
  return config(routes ?? [{ name: 'ws', match: { path_prefix: '/' }, cluster: 'app' }], [{ name: 'app', endpoints: [{ address: app.address }] }], {
    listener: { engine },
  });
}

/** A client socket, open (rejects with the refusal when the upgrade is answered otherwise). */
export function openWs(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { maxPayload: 128 * 1024 * 1024, ...options });
  track({
    close: () => {
      ws.terminate();
      return Promise.resolve();
    },
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** The refusal of an upgrade the client expected to open: its status, headers and body. */
export function refusalOf(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    ws.once('error', (e) => reject(e));
  });
}

/** The next message on `ws`, with whether it was binary. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: RawData, binary: boolean) => resolve({ data: data as Buffer, binary }));
    ws.once('close', (code) => reject(new Error(`closed (${code}) before a message`)));
  });
}

/** The close code and reason `ws` sees. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() })));
}

/** `ws.send` as a promise (resolves when the bytes were handed to the socket). */
export function send(ws: WebSocket, data: string | Buffer, opts: { binary?: boolean; fin?: boolean } = {}): Promise<void> {
  return new Promise((resolve, reject) => ws.send(data, opts, (e) => (e ? reject(e) : resolve())));
}

/** An upgrade to `url` that the sidecar itself refuses: 403 with x-outrigger-error `error`, and `app` never sees it. */
export async function expectRefusedBySidecar(app: WsApp, url: string, error: string): Promise<void> {
  const before = app.upgrades.length;
  const r = await refusalOf(url);
  expect(r.status).toBe(403);
  expect(r.headers['x-outrigger-error']).toBe(error);
  expect(app.upgrades.length).toBe(before);
}

/** The TCP socket under `ws`: a test pauses its reading to play a slow peer. */
export function socketOf(ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket;
}

/** The chunks a writer sent, and how many of those sends have completed so far. */
export interface Flood {
  readonly sent: number;
  acked(): number;
}

/**
 * Sends `chunk` from `writer` (one per turn of the event loop) until `heldBytes` wait in its own
 * buffer: the far side has stopped reading and the path between holds no more.
 */
export async function sendUntilHeldBack(writer: WebSocket, chunk: Buffer, heldBytes: number): Promise<Flood> {
  let sent = 0;
  let acked = 0;
  while (writer.bufferedAmount < heldBytes) {
    writer.send(chunk, { binary: true }, () => acked++);
    sent++;
    await new Promise((r) => setImmediate(r));
  }
  return { sent, acked: () => acked };
}

/** Resolves with `count` once `reader` has received that many messages, each checked to be `chunk`. */
export function receiveCopies(reader: WebSocket, chunk: Buffer, count: number): Promise<number> {
  let received = 0;
  return new Promise((resolve) =>
    reader.on('message', (d: Buffer) => {
      expect(d.equals(chunk)).toBe(true);
      if (++received === count) resolve(received);
    }),
  );
}
