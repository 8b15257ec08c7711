// Routing by original destination, inbound (dataplane/original_dst.ts), on three hosts of a LAN
// (network namespaces). Host A's sidecar sends its app's intercepted connections to service VIPs
// over mTLS to B's address at the app's port; on B a PREROUTING REDIRECT hands them to the one
// inbound listener, which checks the peer's identity and authorization and sends each to the local
// app at 127.0.0.1:<original port> — HTTP on 8080 and 9090, and a tcp hop on 7000. Host C's
// sidecar, with an identity B does not allow, is refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from '../helpers/live.js';
import { API, newCa, spiffe, WEB, caSource } from '../helpers/mtls.js';
import { netnsUnavailable, type Host } from '../helpers/netns.js';
import { startSidecar } from '../helpers/sidecar.js';
import { lanHosts, appGet, appJson, appTcp, KEEP_LOOPBACK, natRules, redirectApp, startServers } from './origdst_helpers.js';

const why = netnsUnavailable();

const API_VIP = '10.96.0.20';
const ADMIN_VIP = '10.96.0.21';
const ECHO_VIP = '10.96.0.22';
const BATCH = spiffe('batch');

describe.skipIf(why !== null)(`original destination, inbound${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let a: Host;
  let c: Host;

  /** The client side: outbound HTTP and tcp listeners routing by VIP to B's app ports over mTLS. */
  const clientConfig = (identity: string, tls: Record<string, unknown>, server: string): Record<string, unknown> => ({
    node: { identity },
    admin: { address: '127.0.0.1:15000' },
    tls,
    listeners: [
      { name: 'out', address: '0.0.0.0:15001', original_destination: true, routes: [{ cluster: 'api' }] },
      { name: 'tcp', address: '0.0.0.0:15002', protocol: 'tcp', cluster: 'echo', original_destination: true },
    ],
    clusters: [
      { name: 'api', tls: { identity: API }, endpoints: [{ address: `${server}:8080` }], addresses: [`${API_VIP}:80`] },
      { name: 'admin-app', tls: { identity: API }, endpoints: [{ address: `${server}:9090` }], addresses: [`${ADMIN_VIP}:80`] },
      { name: 'echo', tls: { identity: API }, endpoints: [{ address: `${server}:7000` }], addresses: [`${ECHO_VIP}:7000`] },
    ],
  });
  const clientRules = [KEEP_LOOPBACK, redirectApp(15002, ['-d', ECHO_VIP]), redirectApp(15001)];

  beforeAll(async () => {
    let b: Host;
    [a, b, c] = await lanHosts(212, 'oia', 'oib', 'oic');
    const ca = await newCa();
    const tls = caSource(ca) as Record<string, unknown>;
    // B's apps listen on loopback only: reachable from the LAN only through the sidecar.
    await startServers(b, '127.0.0.1', { 8080: 'api', 9090: 'admin' }, { 7000: { name: 'echo' } });
    await startSidecar(
      {
        node: { identity: API },
        admin: { address: '127.0.0.1:15000' },
        tls,
        listeners: [
          {
            name: 'inbound',
            address: '0.0.0.0:15006',
            tls: { mode: 'mtls' },
            original_destination: true,
            authorization: [{ from: [WEB] }],
            // The route's cluster gives the settings; its endpoint is replaced by the local app's port.
            routes: [{ cluster: 'local' }],
            tcp_fallback: { cluster: 'local' },
          },
        ],
        clusters: [{ name: 'local', endpoints: [{ address: '127.0.0.1:1' }] }],
      },
      { netns: b },
    );
    await natRules(b, [['PREROUTING', '-i', 'eth0', '-p', 'tcp', '-m', 'multiport', '--dports', '8080,9090,7000', '-j', 'REDIRECT', '--to-ports', '15006']]);
    await startSidecar(clientConfig(WEB, tls, b.address), { netns: a });
    await natRules(a, clientRules);
    await startSidecar(clientConfig(BATCH, tls, b.address), { netns: c });
    await natRules(c, clientRules);
  }, 90_000);

  afterAll(closeAll);

  it('HTTP over mTLS reaches the local app at the original port, with the peer identity', async () => {
    expect(await appJson(a, `http://${API_VIP}/orders`)).toMatchObject({ app: 'api', port: 8080, path: '/orders' });
  });

  it('a second app port is reached through the same inbound listener', async () => {
    expect(await appJson(a, `http://${ADMIN_VIP}/admin`)).toMatchObject({ app: 'admin', port: 9090, path: '/admin' });
  });

  it('the tcp hop (ALPN outrigger-tcp/<port>) reaches the local app at its port', async () => {
    expect(await appTcp(a, ECHO_VIP, 7000, 'ping')).toBe('echo:ping');
  });

  it('an identity the inbound listener does not allow is refused: 403 for HTTP, a close for TCP', async () => {
    const r = await appGet(c, `http://${API_VIP}/orders`);
    expect(r.status).toBe(403);
    expect(r.headers.get('x-outrigger-error')).toBe('unauthorized');
    expect(await appTcp(c, ECHO_VIP, 7000, 'ping')).toBe('');
  });
});
