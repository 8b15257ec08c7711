// Real TLS handshakes on 127.0.0.1 with certificates the test issues: the inbound side refuses
// bad clients during the handshake, the outbound side checks the server's SPIFFE ID.

import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { IdentityMismatchError, clientSecureContext, clientTlsOptions, rememberSessions, serverTlsOptions } from '../../src/tls/contexts.js';
import type { TlsMaterial } from '../../src/tls/material.js';
import { HOUR, exchange, leafMaterial, makeCa, rawMaterial, removeTempDirs, startServer, type TestServer } from './helpers.js';

const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/api';
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/web';

const ca = await makeCa('cluster.local');
const otherCa = await makeCa('cluster.local'); // same trust domain name, different root key
const serverMaterial = leafMaterial(ca, { identity: SERVER_ID });
const clientMaterial = leafMaterial(ca, { identity: CLIENT_ID });
let server: TestServer;

beforeAll(async () => {
  server = await startServer(serverMaterial);
});
afterAll(async () => {
  await server.close();
  await removeTempDirs();
});

/** Client options that trust the server (our roots) but skip the identity check. */
function plainClient(m: Pick<TlsMaterial, 'certPem' | 'keyPem'> | null): tls.ConnectionOptions {
  return {
    port: server.port,
    ca: ca.trustBundlePem,
    ...(m !== null ? { cert: m.certPem, key: m.keyPem } : {}),
    checkServerIdentity: () => undefined,
  };
}

async function expectRefused(opts: tls.ConnectionOptions, alert: RegExp): Promise<void> {
  const refusedBefore = server.refused.length;
  const peersBefore = server.peers.length;
  const r = await exchange(opts);
  expect(r.ok).toBe(false);
  await expect.poll(() => server.refused.length).toBe(refusedBefore + 1); // the server's side of the refusal
  expect(server.peers.length).toBe(peersBefore); // never reached 'secureConnection'
  expect(server.refused.at(-1)).toMatch(alert);
  expect(server.received).not.toContain('ping');
}

describe('inbound: serverTlsOptions refuses at the handshake', () => {
  it('a client without a certificate', async () => {
    await expectRefused(plainClient(null), /^CERTIFICATE_REQUIRED$/);
  });

  it('a client with a certificate from another CA', async () => {
    await expectRefused(
      plainClient(rawMaterial(otherCa, { identity: CLIENT_ID }, otherCa.trustBundlePem)),
      /^UNABLE_TO_VERIFY_LEAF_SIGNATURE$|^UNABLE_TO_GET_ISSUER_CERT/,
    );
  });

  it('a client with an expired certificate', async () => {
    const expired = rawMaterial(ca, { identity: CLIENT_ID, notBefore: new Date(Date.now() - 3 * HOUR), ttlHours: 1 }, ca.trustBundlePem);
    await expectRefused(plainClient(expired), /^CERT_HAS_EXPIRED$/);
  });

  it('a client with a not-yet-valid certificate', async () => {
    const future = rawMaterial(ca, { identity: CLIENT_ID, notBefore: new Date(Date.now() + HOUR), ttlHours: 1 }, ca.trustBundlePem);
    await expectRefused(plainClient(future), /^CERT_NOT_YET_VALID$/);
  });

  it('accepts a valid client and reads its SPIFFE ID', async () => {
    const r = await exchange(plainClient(clientMaterial));
    expect(r).toMatchObject({ ok: true, reply: `hello ${CLIENT_ID}` });
    expect(server.peers.at(-1)).toBe(CLIENT_ID);
  });
});

describe('outbound: clientTlsOptions checks the SPIFFE ID, not the DNS name', () => {
  it('fails with upstream_identity_mismatch before sending a byte', async () => {
    const before = server.received.length;
    const r = await exchange({ port: server.port, ...clientTlsOptions(clientMaterial, 'spiffe://cluster.local/ns/default/sa/other') });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(IdentityMismatchError);
    expect(r.error.message).toMatch(/^upstream_identity_mismatch: server is spiffe:\/\/cluster.local\/ns\/default\/sa\/api, expected/);
    expect((r.error as IdentityMismatchError).code).toBe('upstream_identity_mismatch');
    // A good client after it is served, and its "ping" is all the server has received since.
    const ok = await exchange({ port: server.port, ...clientTlsOptions(clientMaterial, SERVER_ID) });
    expect(ok.ok).toBe(true);
    expect(server.received.slice(before)).toBe('ping');
  });

  it('succeeds with the right identity, a list, or a pattern; any host name', async () => {
    for (const expected of [SERVER_ID, ['spiffe://cluster.local/ns/x/sa/y', SERVER_ID], 'spiffe://cluster.local/ns/default/*']) {
      const r = await exchange({ port: server.port, ...clientTlsOptions(clientMaterial, expected) });
      expect(r).toMatchObject({ ok: true, reply: `hello ${CLIENT_ID}` });
    }
    // a host name that matches nothing in the certificate is irrelevant
    const viaName = await exchange({
      host: 'localhost',
      port: server.port,
      servername: 'not-in-the-cert.example',
      ...clientTlsOptions(clientMaterial, SERVER_ID),
    });
    expect(viaName.ok).toBe(true);
  });

  it('still verifies the chain: a server from another CA fails even with the right identity', async () => {
    const rogue = await startServer(rawMaterial(otherCa, { identity: SERVER_ID }, ca.trustBundlePem));
    onTestFinished(() => rogue.close());
    const r = await exchange({ port: rogue.port, ...clientTlsOptions(clientMaterial, SERVER_ID) });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).not.toMatch(/upstream_identity_mismatch/);
  });

  it('shares one SecureContext per material', () => {
    const a = clientTlsOptions(clientMaterial, SERVER_ID);
    const b = clientTlsOptions({ ...clientMaterial }, 'spiffe://cluster.local/ns/x/sa/y');
    expect(a.secureContext).toBe(b.secureContext);
    expect(clientSecureContext(clientMaterial)).toBe(a.secureContext);
    const other = leafMaterial(ca, { identity: CLIENT_ID });
    expect(clientSecureContext(other)).not.toBe(a.secureContext);
  });

  it('resumes sessions per endpoint; both sides still see the peer identity', async () => {
    const endpoint = `127.0.0.1:${server.port}`;
    const connect = (): ReturnType<typeof exchange> =>
      exchange({ port: server.port, ...clientTlsOptions(clientMaterial, SERVER_ID, endpoint) }, (s) =>
        rememberSessions(s, clientMaterial, SERVER_ID, endpoint),
      );
    const first = await connect();
    expect(first).toMatchObject({ ok: true, resumed: false });
    const second = await connect();
    expect(second).toMatchObject({ ok: true, resumed: true, reply: `hello ${CLIENT_ID}` });
    expect(server.resumed.at(-1)).toBe(true);
    expect(server.peers.at(-1)).toBe(CLIENT_ID); // the server reads the ID on a resumed session
    // (node shows the client no server certificate on a resumed session: the identity was
    // checked when the session was made, and the cache key holds the expected identities)
    // different expectations never reuse that session (node skips checkServerIdentity on resumption)
    const bad = await exchange({ port: server.port, ...clientTlsOptions(clientMaterial, 'spiffe://cluster.local/ns/x/sa/y', endpoint) });
    expect(bad.ok).toBe(false);
  });

  it('a session is reused only with our own certificate: after a rotation, a full handshake with the new one', async () => {
    // A resumed session carries the client certificate it was made with: reusing it after our
    // rotation would present the old certificate (and its serial) to the server.
    const endpoint = `127.0.0.1:${server.port}`;
    const seen: string[] = [];
    const onConn = (s: tls.TLSSocket): void => void seen.push(s.getPeerX509Certificate()?.serialNumber ?? '-');
    server.server.on('secureConnection', onConn);
    onTestFinished(() => {
      server.server.off('secureConnection', onConn);
    });
    const before = leafMaterial(ca, { identity: CLIENT_ID });
    const after = leafMaterial(ca, { identity: CLIENT_ID }); // the same identity, a new key and serial
    const connect = (m: TlsMaterial): ReturnType<typeof exchange> =>
      exchange({ port: server.port, ...clientTlsOptions(m, SERVER_ID, endpoint) }, (s) => rememberSessions(s, m, SERVER_ID, endpoint));
    expect(await connect(before)).toMatchObject({ ok: true, resumed: false });
    expect(await connect(before)).toMatchObject({ ok: true, resumed: true }); // a session for this endpoint exists
    const rotated = await connect(after);
    expect(rotated).toMatchObject({ ok: true, resumed: false, reply: `hello ${CLIENT_ID}` });
    expect(server.resumed.at(-1)).toBe(false); // a full handshake on the server too
    expect(seen.at(-1)).toBe(after.serial); // which saw the new certificate
    expect(await connect(after)).toMatchObject({ ok: true, resumed: true }); // and the new certificate's own session resumes
    expect(seen).toEqual([before.serial, before.serial, after.serial, after.serial]);
  });
});

describe('trust bundles with several roots (root rotation overlap)', () => {
  it('accepts leaves from both roots and refuses a third', async () => {
    const newRoot = await makeCa('cluster.local');
    const thirdRoot = await makeCa('cluster.local');
    const bundle = ca.trustBundlePem + newRoot.trustBundlePem;
    const srv = await startServer(leafMaterial(newRoot, { identity: SERVER_ID }, bundle));
    onTestFinished(() => srv.close());
    for (const issuer of [ca, newRoot]) {
      const m = leafMaterial(issuer, { identity: CLIENT_ID }, bundle);
      const r = await exchange({ port: srv.port, ...clientTlsOptions(m, SERVER_ID) });
      expect(r).toMatchObject({ ok: true, reply: `hello ${CLIENT_ID}` });
    }
    // a client that still trusts only the old root cannot verify the new server leaf
    const oldOnly = leafMaterial(ca, { identity: CLIENT_ID });
    expect((await exchange({ port: srv.port, ...clientTlsOptions(oldOnly, SERVER_ID) })).ok).toBe(false);
    const stranger = rawMaterial(thirdRoot, { identity: CLIENT_ID }, bundle);
    expect((await exchange({ port: srv.port, ...clientTlsOptions(stranger, SERVER_ID) })).ok).toBe(false);
  });
});

describe('server rotation with setSecureContext', () => {
  it('new connections see the new leaf at once; a new trust bundle invalidates old tickets', async () => {
    const first = leafMaterial(ca, { identity: SERVER_ID });
    const seed = Buffer.alloc(32, 7);
    const srv = await startServer(first, { ticketKeySeed: seed });
    const serials: string[] = [];
    const endpoint = `127.0.0.1:${srv.port}`;
    const connect = (): ReturnType<typeof exchange> =>
      exchange({ port: srv.port, ...clientTlsOptions(clientMaterial, SERVER_ID, endpoint) }, (s) => {
        rememberSessions(s, clientMaterial, SERVER_ID, endpoint);
        s.once('secureConnect', () => serials.push(s.getPeerX509Certificate()?.serialNumber ?? 'resumed'));
      });
    onTestFinished(() => srv.close());
    expect((await connect()).ok).toBe(true);
    expect(await connect()).toMatchObject({ ok: true, resumed: true });
    // same trust bundle, new leaf: tickets stay valid, so force a full handshake with a fresh endpoint key
    const second = leafMaterial(ca, { identity: SERVER_ID });
    srv.server.setSecureContext(serverTlsOptions(second, { ticketKeySeed: seed }));
    const fresh = await exchange({ port: srv.port, ...clientTlsOptions(clientMaterial, SERVER_ID) }, (s) =>
      s.once('secureConnect', () => serials.push(s.getPeerX509Certificate()?.serialNumber ?? 'resumed')),
    );
    expect(fresh.ok).toBe(true);
    expect(serials.at(-1)).toBe(second.serial);
    expect(serials[0]).toBe(first.serial);
    // a changed trust bundle changes the ticket keys: the remembered session no longer resumes
    const newRoot = await makeCa('cluster.local');
    srv.server.setSecureContext(serverTlsOptions({ ...second, trustBundlePem: ca.trustBundlePem + newRoot.trustBundlePem }, { ticketKeySeed: seed }));
    expect(await connect()).toMatchObject({ ok: true, resumed: false });
  });
});
