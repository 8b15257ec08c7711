// Redis (Debian's redis-server) through the two-sidecar mTLS path: redis-cli / redis-benchmark →
// client sidecar (plaintext tcp listener) → cluster with tls → byte-recording relay → server
// sidecar (mTLS tcp listener, authorization by `from`) → redis-server. The relay proves that only
// TLS crosses between the sidecars; the server records the original destination port that the
// client sidecar put in ALPN; a sidecar with another identity is refused by the server.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { mtlsServerConfig } from '../helpers/configs.js';
import { adminCall, API, caSource, closeAll, deadPort, newCa, spiffe, startSidecar, tempDir, track, WEB, type Sidecar } from '../helpers/sidecar.js';
import { accessLogLines } from '../helpers/views.js';

afterAll(closeAll);

const run = promisify(execFile);

/** redis-server on a free port, no persistence; resolves once it accepts connections. */
async function startRedis(): Promise<number> {
  const port = await deadPort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track({ close: () => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : (child.once('exit', resolve), child.kill('SIGTERM')))) });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
  });
  return port;
}

/** A TCP relay to `target` that keeps every byte it carries, per connection and direction. */
interface Recorder {
  readonly port: number;
  readonly connections: Array<{ up: Buffer[]; down: Buffer[] }>;
}

async function startRecorder(target: number): Promise<Recorder> {
  const connections: Recorder['connections'] = [];
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (a) => {
    const rec = { up: [] as Buffer[], down: [] as Buffer[] };
    connections.push(rec);
    const b = net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true, noDelay: true });
    a.on('data', (d: Buffer) => rec.up.push(d));
    b.on('data', (d: Buffer) => rec.down.push(d));
    a.pipe(b);
    b.pipe(a);
    a.on('error', () => b.destroy());
    b.on('error', () => a.destroy());
    a.on('close', () => b.destroy());
    b.on('close', () => a.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  track({ close: () => new Promise((resolve) => server.close(resolve)) });
  return { port: (server.address() as net.AddressInfo).port, connections };
}

function clientSidecarConfig(tls: ReturnType<typeof caSource>, identity: string, upstreamPort: number): Record<string, unknown> {
  return {
    node: { workers: 2, identity },
    tls,
    listeners: [{ name: 'main', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'redis' }],
    clusters: [{ name: 'redis', tls: { identities: [API] }, endpoints: [{ address: `127.0.0.1:${upstreamPort}` }] }],
  };
}

describe('redis through two sidecars over mTLS', () => {
  let server: Sidecar;
  let client: Sidecar;
  let recorder: Recorder;
  let ca: Awaited<ReturnType<typeof newCa>>;
  let log: string;
  const value = `secret-value-${process.pid}-${Date.now()}`;

  it('starts redis, the server sidecar (mTLS tcp listener, TCP health check), the relay and the client sidecar', async () => {
    ca = await newCa();
    const redisPort = await startRedis();
    log = path.join(tempDir(), 'server-access.log');
    server = await startSidecar(
      mtlsServerConfig(
        caSource(ca),
        { protocol: 'tcp', cluster: 'redis', access_log: { path: log } },
        [{ name: 'redis', endpoints: [{ address: `127.0.0.1:${redisPort}` }], health_check: { tcp: {}, interval_ms: 200 } }],
        2,
      ),
    );
    recorder = await startRecorder(server.port());
    client = await startSidecar(clientSidecarConfig(caSource(ca), WEB, recorder.port));
    // The TCP health check of the redis cluster ran and passed.
    await expect
      .poll(async () => {
        const c = (await adminCall(server, 'GET', '/clusters')).json as {
          clusters: Array<{ endpoints: Array<{ health_check: { last_checked: string | null; healthy: boolean } | null }> }>;
        };
        return c.clusters[0]?.endpoints[0]?.health_check;
      })
      .toMatchObject({ healthy: true, last_checked: expect.any(String) });
  });

  it('redis-cli SET and GET round trips through the mesh', async () => {
    const port = String(client.port());
    expect((await run('redis-cli', ['-p', port, 'SET', 'mesh-key', value], { timeout: 20_000 })).stdout.trim()).toBe('OK');
    expect((await run('redis-cli', ['-p', port, 'GET', 'mesh-key'], { timeout: 20_000 })).stdout.trim()).toBe(value);
  });

  it('redis-benchmark (2000 requests, 10 connections, SET and GET) completes with its numbers', async () => {
    const { stdout } = await run('redis-benchmark', ['-p', String(client.port()), '-n', '2000', '-c', '10', '-t', 'set,get', '-q'], { timeout: 60_000 });
    const rates = [...stdout.matchAll(/^(SET|GET): ([\d.]+) requests per second/gm)].map((m) => [m[1], Number(m[2])] as const);
    console.log(`redis-benchmark through two sidecars: ${rates.map(([t, r]) => `${t} ${r} req/s`).join(', ')}`);
    expect(rates.map(([t]) => t)).toEqual(['SET', 'GET']);
    for (const [, r] of rates) expect(r).toBeGreaterThan(0);
  });

  it('only TLS crossed between the sidecars: every connection opens with a handshake record and the value never appears in clear', () => {
    expect(recorder.connections.length).toBeGreaterThanOrEqual(12);
    const needle = Buffer.from(value);
    for (const c of recorder.connections) {
      const up = Buffer.concat(c.up);
      const down = Buffer.concat(c.down);
      expect([up[0], up[1]]).toEqual([0x16, 0x03]);
      expect(up.includes(needle)).toBe(false);
      expect(down.includes(needle)).toBe(false);
      expect(up.includes(Buffer.from('mesh-key'))).toBe(false);
    }
  });

  it('a sidecar with another identity is refused by the server: the connection closes and is counted', async () => {
    const intruder = await startSidecar(clientSidecarConfig(caSource(ca), spiffe('intruder'), server.port()));
    const r = await run('redis-cli', ['-p', String(intruder.port()), 'GET', 'mesh-key'], { timeout: 20_000 }).catch(
      (e: { stdout: string; stderr: string }) => e,
    );
    expect(`${r.stdout}${r.stderr}`).not.toContain(value);
    await expect
      .poll(
        async () => ((await adminCall(server, 'GET', '/stats')).json as { tcp: Array<{ refused: Record<string, number> }> }).tcp[0]?.refused['unauthorized'],
        {
          timeout: 10_000,
        },
      )
      .toBeGreaterThanOrEqual(1);
  });

  it("the server's stats and access log record the original destination port the client sidecar sent", async () => {
    const stats = (await adminCall(server, 'GET', '/stats')).json as { tcp: Array<{ by_destination_port: Record<string, number>; opened: number }> };
    expect(Object.keys(stats.tcp[0]!.by_destination_port)).toEqual([String(client.port())]);
    expect(await server.stop()).toBe(0);
    const lines = accessLogLines(log);
    const served = lines.filter((l) => l['end'] !== 'unauthorized');
    expect(served.length).toBeGreaterThanOrEqual(12);
    for (const l of served) expect(l).toMatchObject({ protocol: 'tcp', peer: WEB, destination_port: client.port() });
    expect(lines.some((l) => l['end'] === 'unauthorized' && l['peer'] === spiffe('intruder'))).toBe(true);
  });
});
