// The mesh with no application change, end to end, on three "hosts" (network namespaces on one
// LAN, test/helpers/netns.ts): each runs a sidecar installed with `outrigger iptables install`,
// and the apps are unmodified — curl, run as an ordinary user, calls the server by its service
// address (a virtual IP no host owns). The connection is caught by iptables, carried over mTLS to
// the server host, caught again there, authorized by SPIFFE identity and answered by the app on
// its own port. A capture on the server host's wire sees only TLS records. A third host's
// identity is refused; the client host's `registry_only` refuses an address no cluster owns while
// the server host's `allow_any` passes it; uninstall restores each host's rule set exactly.

import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from 'vitest';
import { closeAll, tempDir } from '../helpers/live.js';
import { newCa, spiffe } from '../helpers/mtls.js';
import { createLan, netnsUnavailable, type Host, type Lan } from '../helpers/netns.js';
import { CLI } from '../helpers/process.js';

const why = netnsUnavailable();

/** The uid the apps run as: anything but the sidecar's (root here), so their traffic is intercepted. */
const APP_UID = 1000;
const SERVICE_VIP = '10.96.0.10';
const OUTBOUND = 15001;
const INBOUND = 15006;
const ADMIN = '127.0.0.1:15000';

const WEB = spiffe('web');
const API = spiffe('api');
const BATCH = spiffe('batch');

/** A plain HTTP app: answers every request with who it is, the path and the Host it was asked for. */
const APP_JS = `
const http = require('node:http');
const [name, ...ports] = process.argv.slice(2);
for (const p of ports) {
  const [host, port] = p.split(':');
  http.createServer((req, res) => res.end(JSON.stringify({ app: name, port: Number(port), path: req.url, host: req.headers.host }))).listen(Number(port), host, () => console.log('listening ' + p));
}`;

interface Box extends Host {
  /** Runs curl as the app user; resolves with curl's exit code and output (`%{http_code}` last). */
  curl(url: string): Promise<{ code: number; body: string; status: number }>;
  /** `iptables-save -t nat` without counters and comments that change per run. */
  natRules(): Promise<string>;
}

function box(host: Host): Box {
  return {
    ...host,
    curl: async (url) => {
      const r = await host.try('setpriv', [
        '--reuid',
        String(APP_UID),
        '--regid',
        String(APP_UID),
        '--clear-groups',
        'curl',
        '-sS',
        '-m',
        '10',
        '-w',
        '\n%{http_code}',
        url,
      ]);
      const lines = r.stdout.trimEnd().split('\n');
      const status = Number(lines.pop());
      return { code: r.code, body: lines.join('\n'), status };
    },
    natRules: async () => {
      const { stdout } = await host.exec('iptables-save', ['-t', 'nat']);
      return stdout
        .split('\n')
        .filter((l) => !l.startsWith('#'))
        .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
        .join('\n');
    },
  };
}

/** Starts `node CLI run -c <cfg>` inside `host` and waits for its admin API to say ready. */
/** Each sidecar's output so far, printed when a test fails. */
const LOGS: Array<() => string> = [];
async function startSidecar(host: Host, cfg: Record<string, unknown>): Promise<void> {
  const file = path.join(tempDir(), `${host.name}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  const child = host.spawn(process.execPath, [CLI, 'run', '-c', file]);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  LOGS.push(() => `--- ${host.name}\n${out}`);
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`sidecar in ${host.name} exited (${code}):\n${out}`))));
  await Promise.race([host.exec(process.execPath, [CLI, 'wait-ready', '--admin', ADMIN, '--timeout-ms', '20000']), exited]);
}

describe.skipIf(why !== null)(`three hosts, unmodified apps, interception and mTLS${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let lan: Lan;
  let client: Box;
  let server: Box;
  let third: Box;
  const before = new Map<string, string>();

  beforeAll(async () => {
    lan = await createLan(201);
    client = box(await lan.addHost('web', 1));
    server = box(await lan.addHost('api', 2));
    third = box(await lan.addHost('batch', 3));
    const ca = await newCa();
    const appFile = path.join(tempDir(), 'app.cjs');
    writeFileSync(appFile, APP_JS);
    // The apps: api on the server host (two ports, loopback only: reachable only through its sidecar);
    // an unmeshed service on the third host, port 9090, which the third host's rules leave alone.
    server.spawn(process.execPath, [appFile, 'api', '127.0.0.1:8080', '127.0.0.1:9091']);
    third.spawn(process.execPath, [appFile, 'legacy', `${third.address}:9090`]);

    for (const h of [client, server, third]) before.set(h.name, await h.natRules());
    const tls = { ca: { dir: ca.dir } };
    const inbound = (from: string[]): Record<string, unknown> => ({
      name: 'inbound',
      address: `0.0.0.0:${INBOUND}`,
      protocol: 'auto',
      original_destination: true,
      tls: { mode: 'mtls' },
      authorization: [{ from }],
      // Each connection goes to 127.0.0.1:<the port it was sent to>; the route's cluster gives the pool settings.
      routes: [{ match: { path_prefix: '/' }, cluster: 'local-app' }],
    });
    // No routes: a request to a service address goes to the cluster that owns it.
    const outbound = (policy: 'allow_any' | 'registry_only'): Record<string, unknown> => ({
      name: 'outbound',
      address: `127.0.0.1:${OUTBOUND}`,
      protocol: 'auto',
      original_destination: true,
      outbound_policy: policy,
    });
    const apiCluster = {
      name: 'api',
      addresses: [`${SERVICE_VIP}:8080`],
      tls: { mode: 'mtls', identity: API },
      endpoints: [{ address: `${server.address}:8080` }],
    };
    /** A host's sidecar: one worker of `identity`, its admin on ADMIN, certificates from the CA. */
    const hostConfig = (identity: string, listeners: Array<Record<string, unknown>>, clusters: Array<Record<string, unknown>>): Record<string, unknown> => ({
      node: { workers: 1, identity },
      admin: { address: ADMIN },
      tls,
      listeners,
      clusters,
    });
    await startSidecar(server, hostConfig(API, [inbound([WEB]), outbound('allow_any')], [{ name: 'local-app', endpoints: [{ address: '127.0.0.1:8080' }] }]));
    await startSidecar(client, hostConfig(WEB, [outbound('registry_only')], [apiCluster]));
    await startSidecar(third, hostConfig(BATCH, [outbound('registry_only')], [apiCluster]));
    for (const h of [client, server, third]) {
      const exclude = h === third ? ['--exclude-inbound-ports', '9090'] : [];
      await h.exec(process.execPath, [CLI, 'iptables', 'install', '--proxy-uid', '0', ...exclude]);
    }
  }, 120_000);

  afterAll(closeAll);
  beforeEach(() => onTestFailed(() => console.log(LOGS.map((l) => l()).join('\n'))));

  it('carries an unmodified client call to a service address over mTLS, authorized, to the app', async () => {
    const capture = await startCapture(lan, server);
    const r = await client.curl(`http://${SERVICE_VIP}:8080/hello`);
    expect(r).toMatchObject({ code: 0, status: 200 });
    expect(JSON.parse(r.body)).toMatchObject({ app: 'api', port: 8080, path: '/hello' });
    // TLS records crossed the wire (a handshake, then application data; tcpdump writes them as they come) ...
    await expect.poll(() => capture.bytes().includes(Buffer.from([0x17, 0x03, 0x03])), { timeout: 10_000 }).toBe(true);
    const wire = await capture.stop();
    // ... and nothing of the HTTP exchange in clear.
    for (const clear of ['GET /hello', 'HTTP/1.1', '"app":"api"', 'user-agent']) expect(wire.includes(Buffer.from(clear))).toBe(false);
  });

  it('refuses a caller whose identity the server does not authorize', async () => {
    const r = await third.curl(`http://${SERVICE_VIP}:8080/hello`);
    expect(r).toMatchObject({ code: 0, status: 403 });
    expect(r.body).not.toContain('"app":"api"');
  });

  it('registry_only refuses an address no cluster owns; allow_any passes it', async () => {
    const refused = await client.curl(`http://${third.address}:9090/x`);
    expect(refused).toMatchObject({ code: 0, status: 403 });
    expect(refused.body).toContain('destination_not_allowed');
    const passed = await server.curl(`http://${third.address}:9090/x`);
    expect(passed).toMatchObject({ code: 0, status: 200 });
    expect(JSON.parse(passed.body)).toMatchObject({ app: 'legacy', path: '/x' });
  });

  it('uninstall restores every host rule set exactly', async () => {
    for (const h of [client, server, third]) {
      expect(await h.natRules()).not.toBe(before.get(h.name));
      await h.exec(process.execPath, [CLI, 'iptables', 'uninstall']);
      expect(await h.natRules()).toBe(before.get(h.name));
    }
  });
});

/** tcpdump on `host`'s port of the LAN switch (its whole wire), raw packets to a file. */
async function startCapture(lan: Lan, host: Host): Promise<{ bytes(): Buffer; stop(): Promise<Buffer> }> {
  const file = path.join(tempDir(), `${host.name}.pcap`);
  const child = lan.switch.spawn('tcpdump', ['-i', lan.portOf(host), '--immediate-mode', '-U', '-s', '0', '-w', file, 'tcp']);
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening on')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`tcpdump exited (${code}): ${err}`)));
  });
  return {
    bytes: () => readFileSync(file),
    stop: async () => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGINT');
      await exited;
      return readFileSync(file);
    },
  };
}
