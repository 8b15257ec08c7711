// Routing by original destination, outbound (dataplane/original_dst.ts), on two hosts of a LAN
// (network namespaces): host A runs the sidecar (as root) and the apps (as uid 1000, whose TCP a
// REDIRECT rule sends to the sidecar); host B runs the services. An app dials service VIPs that
// no host owns, and addresses no cluster owns; what reaches B, and what the app gets back, shows
// where each connection went.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from '../helpers/live.js';
import { netnsUnavailable, type Host } from '../helpers/netns.js';
import { startSidecar, type Sidecar } from '../helpers/sidecar.js';
import { lanHosts, adminGet, appGet, appJson, appTcp, destinationKinds, KEEP_LOOPBACK, natRules, redirectApp, startServers } from './origdst_helpers.js';

const why = netnsUnavailable();

const API_VIP = '10.96.0.10';
const WEB_VIP = '10.96.0.12';
const ECHO_VIP = '10.96.0.11';

describe.skipIf(why !== null)(`original destination, outbound${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let a: Host;
  let b: Host;
  let sc: Sidecar;

  beforeAll(async () => {
    [a, b] = await lanHosts(211, 'oda', 'odb');
    await startServers(
      b,
      '0.0.0.0',
      { 8080: 'api', 8081: 'web', 9999: 'outside', 9998: 'forbidden' },
      {
        7000: { name: 'echo' },
        7001: { name: 'default' },
        9997: { name: 'forbidden-tcp', greet: true },
      },
    );
    const B = b.address;
    sc = await startSidecar(
      {
        admin: { address: '127.0.0.1:15000' },
        listeners: [
          {
            name: 'out',
            address: '0.0.0.0:15001',
            original_destination: true,
            routes: [
              // Within api's VIP: Host and path still choose the route.
              { name: 'teapot', match: { host: 'tea.svc', path_prefix: '/teapot' }, cluster: 'api', fault: { abort: { status: 418 } } },
              // Matches every request first, but sends to web: never used for a connection to api's VIP.
              { name: 'all-to-web', cluster: 'web' },
            ],
          },
          { name: 'tcp', address: '0.0.0.0:15002', protocol: 'tcp', cluster: 'echo-default', original_destination: true },
          {
            name: 'strict-out',
            address: '0.0.0.0:15003',
            original_destination: true,
            outbound_policy: 'registry_only',
            routes: [{ cluster: 'api' }],
            tcp_fallback: { cluster: 'echo-default', detect_timeout_ms: 300 },
          },
        ],
        clusters: [
          { name: 'api', endpoints: [{ address: `${B}:8080` }], addresses: [`${API_VIP}:80`] },
          { name: 'web', endpoints: [{ address: `${B}:8081` }], addresses: [`${WEB_VIP}:80`] },
          { name: 'echo', endpoints: [{ address: `${B}:7000` }], addresses: [`${ECHO_VIP}:7000`] },
          { name: 'echo-default', endpoints: [{ address: `${B}:7001` }] },
        ],
      },
      { netns: a },
    );
    await natRules(a, [
      KEEP_LOOPBACK,
      redirectApp(15002, ['-d', ECHO_VIP]),
      redirectApp(15003, ['--dport', '9998']),
      redirectApp(15003, ['--dport', '9997']),
      redirectApp(15001),
    ]);
  }, 60_000);

  afterAll(closeAll);

  it('HTTP to a service VIP reaches its cluster, routed by Host and path among the routes to that cluster only', async () => {
    expect(await appJson(a, `http://${API_VIP}/hello`)).toMatchObject({ app: 'api', port: 8080, path: '/hello' });
    const tea = await appGet(a, `http://${API_VIP}/teapot`, 'tea.svc');
    expect(tea.status).toBe(418);
    expect(tea.headers.get('x-outrigger-error')).toBe('fault_injected');
    // Same path, another Host: the teapot route does not match, the catch-all sends it to api (not to web's route).
    expect(await appJson(a, `http://${API_VIP}/teapot`, 'coffee.svc')).toMatchObject({ app: 'api', path: '/teapot', host: 'coffee.svc' });
    expect(await appJson(a, `http://${WEB_VIP}/w`)).toMatchObject({ app: 'web', port: 8081, path: '/w' });
    // HTTP/2 with prior knowledge on the same port (protocol: auto) is routed by the destination too.
    expect(await appJson(a, `http://${API_VIP}/h2`, undefined, ['--http2-prior-knowledge'])).toMatchObject({ app: 'api', path: '/h2' });
    await expect.poll(() => destinationKinds(a, sc, 'out'), { timeout: 10_000 }).toMatchObject({ cluster: 5 });
  });

  it('TCP to a service VIP through a tcp listener goes to the owning cluster, not the listener’s own', async () => {
    expect(await appTcp(a, ECHO_VIP, 7000, 'ping')).toBe('echo:ping');
    await expect.poll(() => destinationKinds(a, sc, 'tcp'), { timeout: 10_000 }).toEqual({ cluster: 1 });
  });

  it('allow_any passes an unknown destination through unchanged', async () => {
    const r = await appGet(a, `http://${b.address}:9999/elsewhere`, 'outside.example');
    expect(r.status).toBe(200);
    // No proxy in between: the request arrives as sent (no x-forwarded-for added by an HTTP hop).
    expect(JSON.parse(r.body)).toEqual({ app: 'outside', port: 9999, path: '/elsewhere', host: 'outside.example' });
    expect(r.headers.has('x-outrigger-error')).toBe(false);
    await expect.poll(() => destinationKinds(a, sc, 'out'), { timeout: 10_000 }).toMatchObject({ passthrough: 1 });
  });

  it('registry_only refuses an unknown destination: 403 destination_not_allowed for HTTP, a close for opaque TCP; counted and logged', async () => {
    const r = await appGet(a, `http://${b.address}:9998/x`);
    expect(r.status).toBe(403);
    expect(r.headers.get('x-outrigger-error')).toBe('destination_not_allowed');
    expect(JSON.parse(r.body)).toMatchObject({ error: 'destination_not_allowed' });
    // The server greets on connect: had the connection been passed through, the app would have read that.
    expect(await appTcp(a, b.address, 9997, 'PING\r\n')).toBe('');
    await expect.poll(() => destinationKinds(a, sc, 'strict-out'), { timeout: 10_000 }).toEqual({ refused: 2 });
    const metrics = (await adminGet(a, sc, '/metrics')) as string;
    expect(metrics).toMatch(/outrigger_original_destination_connections_total\{listener="strict-out",kind="refused"\} 2/);
    const logged = sc.entries().filter((e) => e.msg === 'original destination refused (outbound_policy: registry_only)');
    expect(logged.map((e) => e['destination']).sort()).toEqual([`${b.address}:9997`, `${b.address}:9998`]);
  });
});
