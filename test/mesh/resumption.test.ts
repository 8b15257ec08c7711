// "A peer is who its certificate says, now" (DESIGN.md §8) against TLS session resumption, on a
// real sidecar with two TLS listeners: `inbound` (mtls) and `public` (tls, no client
// certificate). A session ticket from one listener must never open the other, and a resumed
// session ends when the client certificate that made it expires.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import { adminCall, API, closeAll, directRequest, leaf, startMeshServer, WEB, type Sidecar, type Upstream as App } from '../helpers/sidecar.js';

let ca: Ca;
let app: App;
let server: Sidecar;

beforeAll(async () => {
  // Beside `inbound` (mtls), a `public` listener with plain TLS, same certificate.
  const publicListener = { name: 'public', address: '127.0.0.1:0', tls: { mode: 'tls' }, routes: [{ match: { path_prefix: '/' }, cluster: 'local-app' }] };
  ({ ca, app, server } = await startMeshServer({ identity: API, workers: 1, edit: (cfg) => void (cfg['listeners'] as unknown[]).push(publicListener) }));
});
afterAll(closeAll);

/** What a direct request got, without the session bytes (for assertion messages). */
function brief(r: Awaited<ReturnType<typeof directRequest>>): string {
  return r.ok ? `${r.status} ${r.body} (resumed: ${r.resumed})` : `error ${r.error}`;
}

/** Handshakes the sidecar refused on a listener, summed over workers (GET /stats security). */
async function refusedHandshakes(listener: string): Promise<number> {
  const a = await adminCall(server, 'GET', '/stats');
  const sec = (a.json.security as Array<{ listener: string; tls_handshake_failures?: number; handshake_failures?: number }>).find(
    (s) => s.listener === listener,
  );
  return sec?.tls_handshake_failures ?? sec?.handshake_failures ?? 0;
}

describe('session resumption never skips client verification', () => {
  it('a ticket from the tls listener does not open the mtls listener (cross-listener resumption)', async () => {
    // A client with no certificate gets a session on the `public` (tls) listener...
    const first = await directRequest(server.port('public'), { ca: ca.certPem }, { path: '/v1/public' });
    expect(first.ok, brief(first)).toBe(true);
    if (!first.ok) return;
    expect(first.status).toBe(200);
    expect(first.session).toBeDefined();
    // ...and the same ticket resumes there (so the ticket itself is good).
    const again = await directRequest(server.port('public'), { ca: ca.certPem }, { path: '/v1/public-again', session: first.session });
    expect(again.ok && again.resumed, brief(again)).toBe(true);

    // Presented to the `inbound` (mtls) listener, still without a certificate: refused.
    const before = app.requests.length;
    const failuresBefore = await refusedHandshakes('inbound');
    const attack = await directRequest(server.port('inbound'), { ca: ca.certPem }, { path: '/v1/attack', session: first.session });
    expect(attack.ok, `the mtls listener served a client without a certificate: ${brief(attack)}`).toBe(false);
    expect(app.requests.length).toBe(before);
    await expect.poll(() => refusedHandshakes('inbound')).toBeGreaterThan(failuresBefore);
  });

  it('a ticket from the mtls listener does not resume on the tls listener either (tickets are per listener)', async () => {
    const good = leaf(ca, WEB);
    const creds = { ca: ca.certPem, cert: good.certPem, key: good.keyPem };
    const first = await directRequest(server.port('inbound'), creds, { path: '/v1/a' });
    expect(first.ok && first.status === 200, brief(first)).toBe(true);
    if (!first.ok) return;
    const resumedHere = await directRequest(server.port('inbound'), creds, { path: '/v1/b', session: first.session });
    expect(resumedHere.ok && resumedHere.resumed, brief(resumedHere)).toBe(true);
    const elsewhere = await directRequest(server.port('public'), { ca: ca.certPem }, { path: '/v1/c', session: first.session });
    expect(elsewhere.ok, brief(elsewhere)).toBe(true);
    if (elsewhere.ok) expect(elsewhere.resumed).toBe(false); // a full handshake instead
  });

  it('a resumed session is refused once the client certificate has expired', async () => {
    // Valid for ~4 more seconds.
    const shortLived = leaf(ca, WEB, { notBefore: new Date(Date.now() - 60_000), ttlHours: 64 / 3600 });
    const creds = { ca: ca.certPem, cert: shortLived.certPem, key: shortLived.keyPem };
    const first = await directRequest(server.port('inbound'), creds, { path: '/v1/short' });
    expect(first.ok && first.status === 200, brief(first)).toBe(true);
    if (!first.ok) return;
    const resumed = await directRequest(server.port('inbound'), creds, { path: '/v1/short-resumed', session: first.session });
    expect(resumed.ok && resumed.resumed, brief(resumed)).toBe(true); // resumption works while valid
    // Once the certificate has expired, the same ticket no longer gets a request through.
    const late = () => directRequest(server.port('inbound'), creds, { path: '/v1/after-expiry', session: first.session });
    await expect.poll(async () => (await late()).ok, { timeout: 20_000, interval: 250 }).toBe(false);
    expect(Date.now()).toBeGreaterThan(shortLived.notAfter.getTime());
    const before = app.requests.length;
    expect((await late()).ok).toBe(false);
    expect(app.requests.length).toBe(before);
  });

  it('valid clients are still served, resumed or not', async () => {
    const good = leaf(ca, WEB);
    const creds = { ca: ca.certPem, cert: good.certPem, key: good.keyPem };
    const first = await directRequest(server.port('inbound'), creds, { path: '/v1/ok' });
    expect(first.ok && first.status === 200).toBe(true);
    if (!first.ok) return;
    const second = await directRequest(server.port('inbound'), creds, { path: '/v1/ok2', session: first.session });
    expect(second.ok && second.status === 200 && second.resumed, brief(second)).toBe(true);
    expect(app.requests.at(-1)?.url).toBe('/v1/ok2');
  });
});
