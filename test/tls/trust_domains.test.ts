// Per-trust-domain roots (SPIFFE bundle semantics), with real handshakes: a root vouches only
// for the trust domain it is configured for. Our own bundle vouches for our trust domain;
// federated bundles for theirs; a root of trust domain A cannot vouch for an identity in B —
// inbound (inboundPeer after the handshake) and outbound (clientTlsOptions' identity check).

import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { caFromPem, issueLeaf, type Ca } from '../../src/tls/ca.js';
import { IdentityMismatchError, clientTlsOptions, inboundPeer, serverTlsOptions, type InboundPeer } from '../../src/tls/contexts.js';
import { materialFromPem, type TlsMaterial } from '../../src/tls/material.js';
import { trustDomainProblem } from '../../src/tls/trust_domains.js';
import { buildCertificate, derToPem, encodeName, generateKeySync, randomSerial, subjectKeyId } from '../../src/tls/x509.js';
import { API as ME, forgedLeaf, PARTNER, partnerSpiffe, TRUST_DOMAIN as OURS, WEB } from '../helpers/mtls.js';
import { exchange, makeCa, rawMaterial, removeTempDirs, startServer, tempDir } from './helpers.js';

const PARTNER_CLIENT = partnerSpiffe('client');

const ours = await makeCa(OURS);
const partner = await makeCa(PARTNER);
/** A CA whose root says "partner.example" too but is not the federated one. */
const impostor = await makeCa(PARTNER);
/** Our server material: own bundle = our root; federation: partner.example → partner root. */
const federated = federatedMaterial(ME);
afterAll(removeTempDirs);

/** Material for `identity` from our root, trusting our root for our trust domain and the partner root for the partner's. */
function federatedMaterial(identity: string): TlsMaterial {
  const l = issueLeaf(ours, { identity });
  return materialFromPem({
    certPem: l.certPem,
    keyPem: l.keyPem,
    trustBundlePem: ours.trustBundlePem,
    federation: [{ trustDomain: PARTNER, rootsPem: partner.trustBundlePem }],
  });
}

describe('material', () => {
  it('lists our trust domain first, then federated ones; TLS trusts every root', () => {
    expect(federated.trustDomains.map((t) => t.trustDomain)).toEqual([OURS, PARTNER]);
    expect(federated.trustBundlePem).toContain(ours.certPem.trim());
    expect(federated.trustBundlePem).toContain(partner.certPem.trim());
  });

  it('refuses to federate our own trust domain, or one twice', () => {
    const leaf = issueLeaf(ours, { identity: ME });
    expect(() => materialFromPem({ ...leaf, trustBundlePem: ours.trustBundlePem, federation: [{ trustDomain: OURS, rootsPem: partner.certPem }] })).toThrow(
      /our own trust domain/,
    );
    expect(() =>
      materialFromPem({
        ...leaf,
        trustBundlePem: ours.trustBundlePem,
        federation: [
          { trustDomain: PARTNER, rootsPem: partner.certPem },
          { trustDomain: PARTNER, rootsPem: partner.certPem },
        ],
      }),
    ).toThrow(/appears twice/);
  });
});

interface Srv {
  readonly port: number;
  readonly verdicts: InboundPeer[];
  close(): Promise<void>;
}

/** An mtls server that checks every connection like an outrigger listener does. */
async function serve(m: TlsMaterial): Promise<Srv> {
  const verdicts: InboundPeer[] = [];
  const server = tls.createServer(serverTlsOptions(m, { listener: 'inbound' }));
  server.on('secureConnection', (s: tls.TLSSocket) => {
    const v = inboundPeer(s, m);
    verdicts.push(v);
    if (!v.ok) {
      s.destroy();
      return;
    }
    s.on('data', () => s.write(`hello ${v.identity}\n`));
    s.on('error', () => {});
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, verdicts, close: () => new Promise((r) => server.close(() => r())) };
}

function client(issuer: Ca, identity: string): tls.ConnectionOptions {
  const l = issueLeaf(issuer, { identity });
  return { cert: l.certPem, key: l.keyPem, ca: ours.trustBundlePem, checkServerIdentity: () => undefined };
}

describe('inbound: the root must vouch for the client ID’s trust domain', () => {
  let srv: Srv;
  beforeAll(async () => {
    srv = await serve(federated);
  });
  afterAll(() => srv.close());

  it('accepts our workloads from our root and partner workloads from the federated partner root', async () => {
    expect(await exchange({ port: srv.port, ...client(ours, WEB) })).toMatchObject({ ok: true, reply: `hello ${WEB}` });
    expect(await exchange({ port: srv.port, ...client(partner, PARTNER_CLIENT) })).toMatchObject({ ok: true, reply: `hello ${PARTNER_CLIENT}` });
  });

  it('refuses a partner-root leaf claiming one of our identities (A cannot vouch for B)', async () => {
    // The partner CA is a CA like any other: it signs what it is asked to.
    const forged = forgedLeaf(partner, WEB);
    const r = await exchange({ port: srv.port, cert: forged.certPem, key: forged.keyPem, ca: ours.trustBundlePem, checkServerIdentity: () => undefined });
    expect(r.ok).toBe(false);
    expect(srv.verdicts.at(-1)).toEqual({ ok: false, reason: 'TRUST_DOMAIN_MISMATCH' });
  });

  it('refuses our-root leaves claiming a partner identity, and an impostor root for the partner trust domain', async () => {
    const forged = forgedLeaf(ours, PARTNER_CLIENT);
    expect(
      (await exchange({ port: srv.port, cert: forged.certPem, key: forged.keyPem, ca: ours.trustBundlePem, checkServerIdentity: () => undefined })).ok,
    ).toBe(false);
    expect(srv.verdicts.at(-1)).toEqual({ ok: false, reason: 'TRUST_DOMAIN_MISMATCH' });
    // the impostor is not in our bundle at all: OpenSSL refuses it in the handshake
    const before = srv.verdicts.length;
    expect((await exchange({ port: srv.port, ...client(impostor, PARTNER_CLIENT) })).ok).toBe(false);
    expect(srv.verdicts.length).toBe(before);
  });

  it('without federation, a root merely present in the trust bundle vouches only for our trust domain', async () => {
    const leaf = issueLeaf(ours, { identity: ME });
    // Both roots in one trust bundle (how federation was done before): the partner root is trusted by TLS...
    const merged = materialFromPem({ certPem: leaf.certPem, keyPem: leaf.keyPem, trustBundlePem: ours.trustBundlePem + partner.trustBundlePem });
    expect(merged.trustDomains.map((t) => t.trustDomain)).toEqual([OURS]);
    const s = await serve(merged);
    onTestFinished(() => s.close());
    // ...but it vouches for nobody: a partner workload is refused, ours are fine.
    expect((await exchange({ port: s.port, ...client(partner, PARTNER_CLIENT) })).ok).toBe(false);
    expect(s.verdicts.at(-1)).toEqual({ ok: false, reason: 'TRUST_DOMAIN_MISMATCH' });
    expect((await exchange({ port: s.port, ...client(ours, WEB) })).ok).toBe(true);
  });
});

describe('outbound: the server ID’s trust domain must be vouched for by its root', () => {
  it('accepts a partner server from the partner root; refuses a partner-root server claiming our identity', async () => {
    const me = federatedMaterial(WEB);
    // Servers trust both roots for our client.
    const serverBundle = ours.trustBundlePem + partner.trustBundlePem;
    const partnerApi = partnerSpiffe('api');
    const goodSrv = await startServer(rawMaterial(partner, { identity: partnerApi }, serverBundle));
    onTestFinished(() => goodSrv.close());
    // a partner-root leaf claiming our API identity, presented as if our root had issued it
    const badSrv = await startServer(rawMaterial({ ...partner, trustDomain: OURS }, { identity: ME }, serverBundle));
    onTestFinished(() => badSrv.close());
    expect(await exchange({ port: goodSrv.port, ...clientTlsOptions(me, partnerApi) })).toMatchObject({ ok: true });
    const r = await exchange({ port: badSrv.port, ...clientTlsOptions(me, ME) });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(IdentityMismatchError);
    expect(r.error.message).toBe(`upstream_identity_mismatch: server claims ${ME}, but ${ME} is not vouched for by a root of trust domain "${OURS}"`);
  });
});

describe('chains with an intermediate CA', () => {
  it('walks up through CA certificates the peer sent, by signature', () => {
    // partner root → intermediate (CA) → leaf
    const { privateKey, publicKey } = generateKeySync('ec-p256');
    const interName = encodeName([{ shortName: 'CN', value: 'partner intermediate' }]);
    const interDer = buildCertificate({
      serial: randomSerial(),
      issuerName: partner.subjectName,
      subjectName: interName,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3_600_000),
      publicKey,
      extensions: [
        { name: 'basicConstraints', critical: true, cA: true },
        { name: 'keyUsage', critical: true, keyCertSign: true },
        { name: 'subjectAltName', altNames: [{ type: 6, value: `spiffe://${PARTNER}` }] },
      ],
      authorityKeyId: partner.keyId,
      signingKey: partner.key,
    });
    const interPem = derToPem(interDer);
    const interCa = caFromPem(path.join(tempDir(), 'inter'), interPem, privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    expect(subjectKeyId(publicKey)).toEqual(interCa.keyId);
    const leaf = new X509Certificate(issueLeaf(interCa, { identity: PARTNER_CLIENT }).certPem);
    const inter = new X509Certificate(interPem);
    expect(trustDomainProblem(federated, PARTNER_CLIENT, leaf, () => [])).toMatch(/not vouched for/); // the intermediate is needed
    expect(trustDomainProblem(federated, PARTNER_CLIENT, leaf, () => [inter])).toBeNull();
    // the same chain claiming our trust domain: the partner root does not vouch for it
    const forged = new X509Certificate(forgedLeaf(interCa, WEB).certPem);
    expect(trustDomainProblem(federated, WEB, forged, () => [inter])).toBe(`${WEB} is not vouched for by a root of trust domain "${OURS}"`);
    // no SPIFFE ID: never vouched for
    expect(trustDomainProblem(federated, null, leaf)).toMatch(/no SPIFFE ID/);
  });
});
