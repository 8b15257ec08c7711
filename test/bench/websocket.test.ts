// The WebSocket bench's parts (bench/lib/websocket.ts): the sidecar configs compiled by
// outrigger's own loader, the load client's line parsed from a real captured run, the markdown
// section's ratios, and the load client and probe against the real ws echo upstream and against
// servers that answer wrongly.

import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { parseWsLoad, probeWs, renderWsMarkdown, WS_SIDECAR, type WsRun } from '../../bench/lib/websocket.js';
import { configsNamed, describeParser, describeSidecars, expectLatencies, itRendersWithoutPeer, nodeUpstreamAround, overRounds } from './section_helpers.js';

const load = async (port: number, connections: number, inflight: number, size: number, seconds: number): Promise<ReturnType<typeof parseWsLoad>> => {
  const { stdout } = await promisify(execFile)(process.execPath, [
    'dist/bench/ws_load.js',
    `ws://127.0.0.1:${port}/`,
    String(connections),
    String(inflight),
    String(size),
    String(seconds),
  ]);
  return parseWsLoad(stdout);
};

describeSidecars('WebSocket', WS_SIDECAR, 'is on the strict engine with a route that tunnels WebSocket upgrades', (c) => {
  expect(c.listeners[0]?.engine).toBe('strict');
  expect(c.listeners[0]?.routes[0]?.websocket).not.toBeNull();
});

// Captured from: node dist/bench/ws_load.js ws://127.0.0.1:<bench/upstream/ws_server>/ 4 2 64 1
describeParser(
  'ws_load',
  parseWsLoad,
  'ws-load-64.txt',
  { messages: 27537, perSecond: 27491.881259201364, mismatched: 0, lost: 0, p50: 195, p99: 2231, max: 16001 },
  'ws_load: connect ECONNREFUSED 127.0.0.1:1\n',
  /unexpected ws_load output/,
);

function run(config: string, round: number, size: number, perSecond: number, cpu: number): WsRun {
  return {
    config,
    round,
    size,
    messages: perSecond,
    perSecond,
    mismatched: 0,
    lost: round === 2 ? 1 : 0,
    p50: 100 * round,
    p99: 300 * round,
    max: 900,
    cpuMicrosPerMessage: cpu,
  };
}

describe('the WebSocket section', () => {
  it('has a table row per size and config: medians over rounds, CPU ÷ nginx-ws, MB/s from the size', () => {
    const md = renderWsMarkdown({
      configs: configsNamed('direct', 'outrigger-ws-1w', 'nginx-ws'),
      skipped: [{ name: 'outrigger-ws-mtls', reason: 'no CA' }],
      failed: [{ config: 'nginx-ws', round: 2, reason: 'ws_load exited 1' }],
      connections: 16,
      inflight: 8,
      runs: [
        ...overRounds(run, 'direct', [64, 50_000, 0], [64, 40_000, 0], [64, 45_000, 0]),
        ...overRounds(run, 'outrigger-ws-1w', [64, 30_000, 12], [64, 20_000, 8], [64, 25_000, 9]),
        ...overRounds(run, 'nginx-ws', [64, 35_000, 3], [64, 36_000, 4], [64, 37_000, 5]),
        run('outrigger-ws-1w', 1, 16384, 5000, 100),
        run('nginx-ws', 1, 16384, 8000, 50),
      ],
    });
    // 64 B medians: outrigger 25000 msg/s (1.6 MB/s), CPU 9 ÷ nginx 4 = 2.25, p50 200, p99 600, one lost socket over the rounds
    expect(md).toMatch(/\| 64 B \| outrigger-ws-1w \| 25000 \| 1\.6 \| 9\.0 \| 2\.25 \| 200 \| 600 \| 1 \/ 0 \|/);
    expect(md).toMatch(/\| 64 B \| direct \| 45000 \| 2\.9 \| 0\.0 \| {2}\|/);
    // 16 KiB: one round each; direct has no 16 KiB run, so no row
    expect(md).toMatch(/\| 16 KiB \| outrigger-ws-1w \| 5000 \| 81\.9 \| 100\.0 \| 2\.00 \| 100 \| 300 \| 0 \/ 0 \|/);
    expect(md).not.toMatch(/\| 16 KiB \| direct \|/);
    expect(md).toContain('- skipped outrigger-ws-mtls: no CA');
    expect(md).toContain('- failed nginx-ws in round 2 (left out): ws_load exited 1');
    expect(md).toContain('16 sockets × 8 messages in flight; medians of 3 rounds');
  });

  itRendersWithoutPeer(
    { peer: 'nginx-ws', tool: 'nginx', ours: 'outrigger-ws-1w' },
    (base) => renderWsMarkdown({ ...base, connections: 16, inflight: 8, runs: [run('direct', 1, 64, 50_000, 0), run('outrigger-ws-1w', 1, 64, 25_000, 9)] }),
    /\| 64 B \| outrigger-ws-1w \| 25000 \| 1\.6 \| 9\.0 \| {2}\| 100 \| 300 \| 0 \/ 0 \|/,
  );
});

/** A ws server on 127.0.0.1:0 whose sockets `onSocket` drives; closed after the file's tests. */
async function startServer(
  onSocket: (ws: WebSocket) => void,
  onHttpUpgrade?: (socket: import('node:stream').Duplex) => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer();
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    if (onHttpUpgrade !== undefined) onHttpUpgrade(socket);
    else wss.handleUpgrade(req, socket, head, onSocket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('the load client and probe against the ws echo upstream', () => {
  const upstream = nodeUpstreamAround('ws-upstream', 'ws_server.js');

  it.each([64, 16 * 1024])('keeps messages of %i bytes echoing on every socket, each echo whole', async (size) => {
    const r = await load(upstream.port, 4, 2, size, 1);
    expect(r.messages).toBeGreaterThan(0);
    expect(r.mismatched).toBe(0);
    expect(r.lost).toBe(0);
    expect(r.perSecond).toBeGreaterThan(0);
    expectLatencies(r);
  });

  it('the probe passes through the upstream', async () => {
    expect(await probeWs(upstream.port)).toBeNull();
  });
});

describe('the load client and probe against servers that answer wrongly', () => {
  it('counts echoes of another length as mismatched', async () => {
    const s = await startServer((ws) => ws.on('message', () => ws.send(Buffer.alloc(3))));
    try {
      const r = await load(s.port, 2, 2, 64, 1);
      expect(r.messages).toBeGreaterThan(0);
      expect(r.mismatched).toBe(r.messages);
    } finally {
      await s.close();
    }
  });

  it('counts sockets the server closes inside the window as lost', async () => {
    // Echoes ten messages per socket, then closes it.
    const s = await startServer((ws) => {
      let n = 0;
      ws.on('message', (d: Buffer) => (++n <= 10 ? ws.send(d) : ws.close(1001)));
    });
    try {
      const r = await load(s.port, 3, 1, 64, 1);
      expect(r.messages).toBe(30);
      expect(r.lost).toBe(3);
    } finally {
      await s.close();
    }
  });

  it('the probe names a refused upgrade', async () => {
    const s = await startServer(
      () => {},
      (socket) => socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'),
    );
    try {
      expect(await probeWs(s.port)).toBe('probe: upgrade answered 403');
    } finally {
      await s.close();
    }
  });
});
