// Passthrough streams of an outbound original_destination listener (`outbound_policy: allow_any`,
// dataplane/original_dst.ts) are tcp connections like a tcp listener's: counted under cluster
// `passthrough` in /stats tcp and the outrigger_tcp_* metrics, one access log line each, and in
// flight for a drain (carried on during node.drain_timeout_ms, then closed). Host A runs the
// sidecar and the app (uid 1000, redirected to it); host B an echo server no cluster owns.

import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, tempDir } from '../helpers/live.js';
import { netnsUnavailable, type Host } from '../helpers/netns.js';
import { accessLogLines, parsePrometheus, sampleValue, startSidecar, type Sidecar } from '../helpers/sidecar.js';
import { tcpStatOf, type TcpStat } from '../tcp/helpers.js';
import { lanHosts, adminGet, APP_UID, appTcp, KEEP_LOOPBACK, natRules, redirectApp, startServers } from './origdst_helpers.js';

const why = netnsUnavailable();

/**
 * A connection the app user holds open to `address:port`: each line the test writes to `send`
 * goes out on it, `end` half-closes it; `received` is everything that came back.
 */
interface HeldConnection {
  send(text: string): void;
  end(): void;
  received(): string;
  readonly closed: Promise<void>;
}

function holdTcp(ns: Host, address: string, port: number): Promise<HeldConnection> {
  const script = `
const s = require('node:net').connect(${port}, ${JSON.stringify(address)});
s.on('connect', () => console.log('connected'));
s.on('data', (d) => process.stdout.write('<' + d + '>'));
s.on('error', () => {});
s.on('close', () => process.exit(0));
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => (l === 'END' ? s.end() : s.write(l)));`;
  const uid = String(APP_UID);
  const child: ChildProcess = ns.spawn('setpriv', ['--reuid', uid, '--regid', uid, '--clear-groups', process.execPath, '-e', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  const closed = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('connected\n')) {
        resolve({
          send: (text) => child.stdin!.write(`${text}\n`),
          end: () => child.stdin!.write('END\n'),
          received: () => out.slice('connected\n'.length).replace(/[<>]/g, ''),
          closed,
        });
      }
    });
    child.once('exit', (code) => reject(new Error(`app connection exited (${code}): ${out}`)));
  });
}

describe.skipIf(why !== null)(`original destination passthrough streams${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let a: Host;
  let b: Host;
  let sc: Sidecar;
  let log: string;

  beforeAll(async () => {
    [a, b] = await lanHosts(218, 'opa', 'opb');
    await startServers(b, '0.0.0.0', {}, { 7000: { name: 'echo' } });
    log = path.join(tempDir(), 'access.log');
    sc = await startSidecar(
      {
        node: { drain_timeout_ms: 1500 },
        admin: { address: '127.0.0.1:15000' },
        listeners: [{ name: 'out', address: '0.0.0.0:15001', original_destination: true, access_log: { path: log } }],
        clusters: [],
      },
      { netns: a },
    );
    await natRules(a, [KEEP_LOOPBACK, redirectApp(15001)]);
  }, 60_000);

  afterAll(closeAll);

  const passthroughStat = async (): Promise<TcpStat | undefined> => tcpStatOf(await adminGet(a, sc, '/stats'), 'out', 'passthrough');

  it('counts a passthrough stream, its bytes and its end in /stats and /metrics', async () => {
    expect(await appTcp(a, b.address, 7000, 'ping')).toBe('echo:ping');
    await expect
      .poll(passthroughStat, { timeout: 10_000 })
      .toMatchObject({ opened: 1, closed: 1, active: 0, by_destination_port: { '7000': 1 }, bytes_from_client: 4, bytes_from_upstream: 9 });
    const m = parsePrometheus((await adminGet(a, sc, '/metrics')) as string);
    expect(sampleValue(m, 'outrigger_tcp_bytes_total', { listener: 'out', cluster: 'passthrough', direction: 'from_upstream' })).toBe(9);
    expect(sampleValue(m, 'outrigger_tcp_connections_closed_total', { listener: 'out', cluster: 'passthrough' })).toBe(1);
  });

  it('a drain carries an open passthrough stream on, closes it when the grace period ends, and each stream gets its access log line', async () => {
    const held = await holdTcp(a, b.address, 7000);
    held.send('one');
    await expect.poll(() => held.received(), { timeout: 10_000 }).toBe('echo:one');
    const stopped = sc.stop();
    await sc.waitForLog((e) => e.msg === 'draining');
    held.send('two');
    await expect.poll(() => held.received(), { timeout: 10_000 }).toBe('echo:oneecho:two');
    expect(await stopped).toBe(0);
    // The drain waited for the stream and cut it off at the end of the grace period.
    expect(sc.entries().find((e) => e.msg === 'stopped')).toMatchObject({ unfinished: 1 });
    await held.closed;
    const lines = accessLogLines(log);
    const upstream = `${b.address}:7000`;
    expect(lines).toEqual([
      expect.objectContaining({
        listener: 'out',
        protocol: 'tcp',
        cluster: 'passthrough',
        upstream,
        destination_port: 7000,
        end: 'closed',
        bytes_from_client: 4,
      }),
      expect.objectContaining({ cluster: 'passthrough', upstream, end: 'closed_by_proxy', bytes_from_client: 6, bytes_from_upstream: 16 }),
    ]);
  });
});
