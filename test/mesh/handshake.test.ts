// The server sidecar's inbound mTLS listener refuses bad client certificates during the TLS
// handshake (never with an HTTP answer), and the app behind it never hears of those clients.
// Real certificates issued by the test, a real sidecar process, node:https clients.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  API,
  closeAll,
  directRequest,
  handshakeOnly,
  HOUR_MS,
  leaf,
  newCa,
  startMeshServer,
  WEB,
  type DirectCreds,
  type Sidecar,
  type Upstream as App,
} from '../helpers/sidecar.js';

let ca: Ca;
let otherCa: Ca;
let app: App;
let server: Sidecar;
let inbound: number;

beforeAll(async () => {
  ({ ca, app, server, inbound } = await startMeshServer());
  otherCa = await newCa(); // same trust domain name, another root key
});
afterAll(closeAll);

/**
 * Asserts the refusal happens in the handshake: a connection that never sends a byte is closed
 * by the server, a request gets no HTTP answer at all, and the app receives nothing.
 */
async function expectRefusedAtHandshake(creds: DirectCreds, path: string): Promise<void> {
  const before = app.requests.length;
  const bare = await handshakeOnly(inbound, creds, 2000);
  expect(bare.outcome).toBe('closed');
  const r = await directRequest(inbound, creds, { path });
  expect(r.ok, `expected a refused handshake, got ${JSON.stringify(r)}`).toBe(false);
  if (!r.ok) expect(r.error).not.toBe('timeout');
  expect(app.requests.length).toBe(before); // no handshake, so no request could have been forwarded
}

describe('inbound mTLS listener of a running sidecar', () => {
  it('refuses a client without a certificate', async () => {
    await expectRefusedAtHandshake({ ca: ca.certPem }, '/v1/none');
    expect(app.requests.length).toBe(0);
  });

  it('refuses a client whose certificate is from another CA (same trust domain name)', async () => {
    const foreign = leaf(otherCa, WEB);
    await expectRefusedAtHandshake({ ca: ca.certPem, cert: foreign.certPem, key: foreign.keyPem }, '/v1/foreign');
    expect(app.requests.length).toBe(0);
  });

  it('refuses a client with an expired certificate', async () => {
    const expired = leaf(ca, WEB, { notBefore: new Date(Date.now() - 3 * HOUR_MS), ttlHours: 1 });
    expect(expired.notAfter.getTime()).toBeLessThan(Date.now());
    await expectRefusedAtHandshake({ ca: ca.certPem, cert: expired.certPem, key: expired.keyPem }, '/v1/expired');
    expect(app.requests.length).toBe(0);
  });

  it('refuses a client with a not-yet-valid certificate', async () => {
    const future = leaf(ca, WEB, { notBefore: new Date(Date.now() + HOUR_MS), ttlHours: 1 });
    expect(future.notBefore.getTime()).toBeGreaterThan(Date.now());
    await expectRefusedAtHandshake({ ca: ca.certPem, cert: future.certPem, key: future.keyPem }, '/v1/future');
    expect(app.requests.length).toBe(0);
  });

  it('serves a client with a valid certificate from our CA, presenting its own SPIFFE certificate', async () => {
    const good = leaf(ca, WEB);
    const creds = { ca: ca.certPem, cert: good.certPem, key: good.keyPem };
    expect((await handshakeOnly(inbound, creds, 300)).outcome).toBe('open'); // the same probe stays up for a valid client
    const r = await directRequest(inbound, creds, { path: '/v1/ok' });
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(r.status).toBe(200);
    expect(r.body).toBe('app GET /v1/ok');
    expect(r.serverCert?.subjectAltName).toBe(`URI:${API}`);
    expect(app.requests.length).toBe(1);
    expect(app.requests.map((s) => s.url)).toEqual(['/v1/ok']);
  });

  it('keeps serving valid clients after the refusals (a refusal does not hurt the listener)', async () => {
    const good = leaf(ca, WEB);
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => directRequest(inbound, { ca: ca.certPem, cert: good.certPem, key: good.keyPem }, { path: `/v1/again/${i}` })),
    );
    expect(results.map((r) => (r.ok ? r.status : r.error))).toEqual([200, 200, 200, 200, 200]);
    expect(server.exited()).toBe(false);
  });
});
