// Raw TCP across the two-sidecar mTLS path (client sidecar's plaintext tcp listener → cluster with
// tls → server sidecar's mTLS tcp listener → app): half-close passes across the TLS hop, and a reset
// on either end arrives at the other end as a reset (the TLS hop resets its TCP connection).

import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, API, caSource, closeAll, mtlsServerConfig, newCa, spiffe, startSidecar, WEB, type Sidecar } from '../helpers/sidecar.js';
import { connectClient, halfCloseAndResetCases, startTcpApp, type TcpApp } from './helpers.js';

afterAll(closeAll);

describe('raw TCP across two sidecars over mTLS', () => {
  let app: TcpApp;
  let client: Sidecar;
  let server: Sidecar;
  let ca: Awaited<ReturnType<typeof newCa>>;

  it('starts', async () => {
    ca = await newCa();
    app = await startTcpApp();
    server = await startSidecar(mtlsServerConfig(caSource(ca), { protocol: 'tcp', cluster: 'app' }, [{ name: 'app', endpoints: [{ address: app.address }] }]));
    client = await startSidecar({
      node: { workers: 1, identity: WEB },
      tls: caSource(ca),
      listeners: [{ name: 'main', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'api' }],
      clusters: [{ name: 'api', tls: { identities: [API] }, endpoints: [{ address: `127.0.0.1:${server.port()}` }] }],
    });
  });

  // Across the TLS hop (a reset travels as an RST of the TCP connection under the TLS).
  halfCloseAndResetCases(
    () => client.port(),
    () => app,
  );

  it('a client sidecar that expects another server identity refuses the connection (identity_mismatch, counted); nothing reaches the app', async () => {
    const wary = await startSidecar({
      node: { workers: 1, identity: WEB },
      tls: caSource(ca),
      listeners: [{ name: 'main', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'api' }],
      clusters: [{ name: 'api', tls: { identities: [spiffe('not-the-server')] }, endpoints: [{ address: `127.0.0.1:${server.port()}` }] }],
    });
    const before = app.sockets.length;
    const c = await connectClient(wary.port());
    c.socket.write('must not arrive');
    // Closed by the sidecar (with unread bytes in its buffer the kernel answers with a reset).
    await c.closed;
    expect(c.received().length).toBe(0);
    await expect
      .poll(async () => ((await adminCall(wary, 'GET', '/stats')).json as { tcp: Array<{ refused: Record<string, number> }> }).tcp[0]?.refused, {
        timeout: 10_000,
      })
      .toEqual({ identity_mismatch: 1 });
    expect(app.sockets.length).toBe(before);
  });
});
