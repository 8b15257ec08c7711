// Reloads of an inbound original_destination listener (dataplane/original_dst.ts LocalApps): the
// local app's pooled connections survive a reload that keeps the listener's route clusters (a
// change to the listener itself, a cluster added), and drain when the route cluster changes.
// Host A's app calls a service VIP; A's sidecar sends it over mTLS to B, where a REDIRECT hands it
// to the inbound listener, which sends it to B's app at 127.0.0.1:8080. B's app answers with the
// number of connections it has accepted so far.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from '../helpers/live.js';
import { API, caSource, newCa, WEB } from '../helpers/mtls.js';
import { netnsUnavailable, type Host } from '../helpers/netns.js';
import { startSidecar, type Sidecar } from '../helpers/sidecar.js';
import { lanHosts, appJson, KEEP_LOOPBACK, natRules, redirectApp } from './origdst_helpers.js';

const why = netnsUnavailable();

const API_VIP = '10.96.0.20';

/** B's app on 127.0.0.1:8080: answers every request with the count of connections it accepted. */
async function startCountingApp(host: Host): Promise<void> {
  const script = `
let accepted = 0;
const server = require('node:http').createServer((req, res) => res.end(JSON.stringify({ accepted })));
server.on('connection', () => accepted++);
server.keepAliveTimeout = 600000;
server.listen(8080, '127.0.0.1', () => console.log('listening'));`;
  const child = host.spawn(process.execPath, ['-e', script]);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
    child.once('exit', (code) => reject(new Error(`app exited (${code})`)));
  });
}

describe.skipIf(why !== null)(`original destination, inbound, on reload${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let a: Host;
  let b: Host;
  let server: Sidecar;
  let inbound: Record<string, unknown>;

  /** B's sidecar config: the inbound listener `in`, its route cluster `local` (whose settings the local app's pool takes). */
  const serverConfig = (tls: Record<string, unknown>, extraClusters: readonly Record<string, unknown>[] = []): Record<string, unknown> => ({
    node: { identity: API },
    admin: { address: '127.0.0.1:15000' },
    tls,
    listeners: [inbound],
    clusters: [{ name: 'local', endpoints: [{ address: '127.0.0.1:1' }] }, ...extraClusters],
  });
  let tls: Record<string, unknown>;

  /** PUT /config on B's sidecar, from inside its namespace. */
  async function reload(cfg: Record<string, unknown>): Promise<void> {
    const r = await b.exec('curl', [
      '-sS',
      '-m',
      '10',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-X',
      'PUT',
      '-H',
      `authorization: Bearer ${server.token}`,
      '-H',
      'content-type: application/json',
      '--data',
      JSON.stringify(cfg),
      `${server.admin}/config`,
    ]);
    expect(r.stdout).toBe('200');
  }

  /** How many connections B's app had accepted when it answered A's app. */
  async function accepted(): Promise<number> {
    return (await appJson<{ accepted: number }>(a, `http://${API_VIP}/`)).accepted;
  }

  beforeAll(async () => {
    [a, b] = await lanHosts(217, 'ora', 'orb');
    tls = caSource(await newCa());
    await startCountingApp(b);
    inbound = { name: 'in', address: '0.0.0.0:15006', tls: { mode: 'mtls' }, original_destination: true, routes: [{ cluster: 'local' }] };
    server = await startSidecar(serverConfig(tls), { netns: b });
    await natRules(b, [['PREROUTING', '-i', 'eth0', '-p', 'tcp', '--dport', '8080', '-j', 'REDIRECT', '--to-ports', '15006']]);
    await startSidecar(
      {
        node: { identity: WEB },
        admin: { address: '127.0.0.1:15000' },
        tls,
        listeners: [{ name: 'out', address: '0.0.0.0:15001', original_destination: true, routes: [{ cluster: 'api' }] }],
        clusters: [{ name: 'api', tls: { identity: API }, endpoints: [{ address: `${b.address}:8080` }], addresses: [`${API_VIP}:80`] }],
      },
      { netns: a },
    );
    await natRules(a, [KEEP_LOOPBACK, redirectApp(15001)]);
  }, 90_000);

  afterAll(closeAll);

  it('keeps the local app connection through a reload that keeps the route cluster', async () => {
    expect(await accepted()).toBe(1);
    // The inbound listener changes (x_forwarded_for), and a cluster it does not use is added.
    inbound['x_forwarded_for'] = 'off';
    await reload(serverConfig(tls, [{ name: 'unused', endpoints: [{ address: '127.0.0.1:2' }] }]));
    expect(await accepted()).toBe(1);
  });

  it('drains it when the route cluster changes', async () => {
    await reload(changedLocal());
    expect(await accepted()).toBe(2);
  });

  /** The same config with the route cluster's pool settings changed. */
  function changedLocal(): Record<string, unknown> {
    const cfg = serverConfig(tls, [{ name: 'unused', endpoints: [{ address: '127.0.0.1:2' }] }]);
    (cfg['clusters'] as Array<Record<string, unknown>>)[0]!['connect_timeout_ms'] = 2500;
    return cfg;
  }
});
