// The gRPC bench's parts (bench/lib/grpc.ts): the sidecar configs compiled by outrigger's own
// loader, h2load's summary parsed from a real captured run, the markdown section's ratios, and the
// paced client against the real gRPC upstream.

import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { GRPC_PATH, GRPC_SIDECAR, parseH2load, renderGrpcMarkdown, type GrpcRun } from '../../bench/lib/grpc.js';
import { configsNamed, describeParser, describeSidecars, expectLatencies, nodeUpstreamAround, overRounds } from './section_helpers.js';

describeSidecars('gRPC', GRPC_SIDECAR, 'takes h2c or ALPN h2 on the strict engine and speaks HTTP/2 to its cluster', (c) => {
  expect(c.listeners[0]).toMatchObject({ engine: 'strict', protocol: 'auto' });
  expect(c.clusters[0]?.protocol).toBe('http2');
});

// Captured from: h2load -n 200 -c 2 -m 4 -d <one gRPC message> -H 'content-type: application/grpc'
// -H 'te: trailers' http://127.0.0.1:<bench/upstream/grpc_server>/bench.Echo/Unary
describeParser(
  'h2load',
  parseH2load,
  'h2load-grpc-unary.txt',
  { perSecond: 1524.33, succeeded: 200, failed: 0 },
  'starting benchmark...\nconnect to 127.0.0.1 port 1 failed\n',
  /unexpected h2load output/,
);

function run(config: string, round: number, cpu: number, p50: number, p99: number): GrpcRun {
  return { config, round, throughput: 1000, failed: 0, cpuMicrosPerCall: cpu, fixed: { p50, p99, p999: p99, max: p99, failed: 0, cpuMicrosPerCall: cpu } };
}

describe('the gRPC section', () => {
  it('divides CPU by nginx-grpc and subtracts direct latency, on medians over rounds', () => {
    const md = renderGrpcMarkdown({
      configs: configsNamed('direct', 'outrigger-grpc-1w', 'nginx-grpc'),
      skipped: [{ name: 'outrigger-grpc-mtls', reason: 'no CA' }],
      rate: 1000,
      runs: [
        ...overRounds(run, 'direct', [0, 100, 200], [0, 120, 260], [0, 110, 240]),
        ...overRounds(run, 'outrigger-grpc-1w', [60, 300, 700], [90, 310, 900], [75, 305, 800]),
        ...overRounds(run, 'nginx-grpc', [30, 150, 300], [20, 140, 280], [25, 145, 290]),
      ],
    });
    // medians: outrigger CPU 75 ÷ nginx 25 = 3.00; p50 305 − 110 = +195; p99 800 − 240 = +560
    expect(md).toMatch(/\| outrigger-grpc-1w \| 1000 \| 75\.0 \| 3\.00 \|.*\| \+195 \/ \+560 \| 0 \|/);
    expect(md).toMatch(/\| nginx-grpc \| 1000 \| 25\.0 \| 1\.00 \|.*\| \+35 \/ \+50 \| 0 \|/);
    expect(md).toContain('- skipped outrigger-grpc-mtls: no CA');
    expect(md).toContain('medians of 3 rounds');
  });
});

describe('the paced client against the gRPC upstream', () => {
  const upstream = nodeUpstreamAround('grpc-upstream', 'grpc_server.js');

  it('sends rate × seconds calls and counts each by its grpc-status', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      'dist/bench/h2_paced.js',
      `http://127.0.0.1:${upstream.port}${GRPC_PATH}`,
      '200',
      '1',
      '2',
    ]);
    const r = JSON.parse(stdout.trim()) as { requests: number; ok: number; failed: number; p50: number; p99: number; max: number };
    expect(r.requests).toBe(200);
    expect(r.ok).toBe(200);
    expect(r.failed).toBe(0);
    expectLatencies(r);
  });

  it('goes on, on a new connection, when the server sends GOAWAY (as nginx does after keepalive_requests)', async () => {
    // One connection; the server answers 20 calls on it, then sends GOAWAY.
    const server = http2.createServer();
    server.on('session', (session) => {
      let answered = 0;
      session.on('stream', (stream) => {
        stream.resume();
        stream.on('end', () => {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
          if (++answered === 20) session.goaway();
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port: goawayPort } = server.address() as { port: number };
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['dist/bench/h2_paced.js', `http://127.0.0.1:${goawayPort}${GRPC_PATH}`, '100', '1', '1']);
      const r = JSON.parse(stdout.trim()) as { requests: number; ok: number; failed: number };
      expect(r.requests).toBe(100);
      expect(r.ok + r.failed).toBe(100);
      // More than the first connection's 20: the client connected again after the GOAWAY.
      expect(r.ok).toBeGreaterThan(20);
    } finally {
      server.close();
    }
  });

  it('counts calls answered without grpc-status 0 as failed', async () => {
    // An HTTP/2 server that answers 200 with trailers grpc-status 14 (UNAVAILABLE).
    const server = http2.createServer();
    server.on('stream', (stream) => {
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '14' }));
        stream.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port: badPort } = server.address() as { port: number };
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['dist/bench/h2_paced.js', `http://127.0.0.1:${badPort}${GRPC_PATH}`, '50', '1', '1']);
      expect(JSON.parse(stdout.trim())).toMatchObject({ requests: 50, ok: 0, failed: 50 });
    } finally {
      server.close();
    }
  });
});
