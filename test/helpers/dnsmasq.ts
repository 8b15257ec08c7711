// A real DNS server for the discovery tests: Debian's dnsmasq on a loopback port, answering only
// from what the test gives it (a hosts directory it re-reads on change, SRV records on its
// command line) with a TTL of 1 s, and NXDOMAIN for any other name under mesh.local.
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';

export interface Dnsmasq {
  /** `127.0.0.1:PORT`, for `resolvers`. */
  readonly address: string;
  readonly port: number;
  /** Replaces the hosts file (`ip name` lines); dnsmasq re-reads it (inotify). */
  setHosts(lines: readonly string[]): void;
  /** Stops the server (its port then refuses queries). */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same records. */
  restart(): Promise<void>;
}

export interface DnsmasqOptions {
  /** `--srv-host` values: `_svc._tcp.name,target,port,priority,weight`. */
  readonly srv?: readonly string[];
  /** `--host-record` values: `name,ip[,ip]`. */
  readonly hostRecords?: readonly string[];
  /** Initial hosts file lines. */
  readonly hosts?: readonly string[];
  /** `--server` values: `/domain/ip#port` forwards that domain's queries there (e.g. to a server that never answers). */
  readonly servers?: readonly string[];
}

export async function startDnsmasq(o: DnsmasqOptions = {}): Promise<Dnsmasq> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'outrigger-dns-'));
  const hostsDir = path.join(dir, 'hosts.d');
  mkdirSync(hostsDir);
  const setHosts = (lines: readonly string[]): void => {
    // Written beside, then renamed in: dnsmasq never reads a half-written file.
    const tmp = path.join(dir, 'hosts.tmp');
    writeFileSync(tmp, lines.map((l) => `${l}\n`).join(''));
    renameSync(tmp, path.join(hostsDir, 'hosts'));
  };
  setHosts(o.hosts ?? []);
  const port = await freeUdpPort();
  const args = [
    '--no-daemon',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    `--hostsdir=${hostsDir}`,
    '--local-ttl=1',
    '--local=/mesh.local/',
    '--conf-file=/dev/null',
    '--pid-file=',
    '--user=root',
    ...(o.srv ?? []).map((s) => `--srv-host=${s}`),
    ...(o.hostRecords ?? []).map((h) => `--host-record=${h}`),
    ...(o.servers ?? []).map((x) => `--server=${x}`),
  ];
  let child: ChildProcess | null = null;
  const start = async (): Promise<void> => {
    const c = spawn('dnsmasq', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    let stderr = '';
    c.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    // Up once it answers a query (any answer, NXDOMAIN included, means it listens).
    const r = new Resolver({ timeout: 200, tries: 1 });
    r.setServers([`127.0.0.1:${port}`]);
    await expect
      .poll(
        async () => {
          if (c.exitCode !== null) throw new Error(`dnsmasq exited ${c.exitCode}: ${stderr}`);
          return r.resolve4('probe.mesh.local').then(
            () => 'answered',
            (e: NodeJS.ErrnoException) => e.code,
          );
        },
        { timeout: 10_000, interval: 50 },
      )
      .toBe('ENOTFOUND');
  };
  const stop = async (): Promise<void> => {
    const c = child;
    child = null;
    if (c === null || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  };
  await start();
  return { address: `127.0.0.1:${port}`, port, setHosts, stop, restart: start };
}

/**
 * A port free now on 127.0.0.1 for both UDP and TCP: dnsmasq binds the same number for both, and
 * a UDP port alone can be some TCP socket's ("Address already in use" at dnsmasq's start).
 */
async function freeUdpPort(): Promise<number> {
  for (;;) {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const { port } = s.address();
    const tcpFree = await new Promise<boolean>((resolve) => {
      const t = net.createServer();
      t.once('error', () => resolve(false));
      t.listen(port, '127.0.0.1', () => t.close(() => resolve(true)));
    });
    await new Promise<void>((r) => s.close(() => r()));
    if (tcpFree) return port;
  }
}
