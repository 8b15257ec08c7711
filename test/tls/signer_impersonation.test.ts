// Posing as the signer (issue 11 audit, /tmp/audit/attack3.mjs): whoever holds a certificate
// for the signer's SPIFFE ID can capture sidecars' bootstrap tokens and hand them a leaf and a
// trust bundle of another CA. Both ends refuse that now:
//   - the signer never issues its own identity, nor anything under spiffe://<td>/outrigger/, to
//     any token (whatever its patterns) or certificate, and says so when the tokens file loads;
//   - the sidecar accepts a signed answer only when the leaf chains to tls.signer.ca_bundle, is
//     for the ID it asked for and the key of its CSR, and every root of the returned
//     trust_bundle is in ca_bundle (the signer may drop roots, never add one).
// Real HTTPS on 127.0.0.1, certificates issued here.

import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issueLeaf, signLeaf, type Ca } from '../../src/tls/ca.js';
import { parseCsr } from '../../src/tls/csr.js';
import { createKeyMaker } from '../../src/tls/issuer_pool.js';
import { CertificateSource, type SignerSourceOptions } from '../../src/tls/rotation.js';
import { Signer, SignerSetupError } from '../../src/tls/signer.js';
import { requestSignature, type SignerEndpoint } from '../../src/tls/signer_client.js';
import { generateKeySync } from '../../src/tls/x509.js';
import { csrFor, signOutcome as outcome, startFakeSigner, writeTokenFile, writeTokensFile, type FakeAnswer } from '../helpers/sidecar.js';
import { makeCa, removeTempDirs, tempDir } from './helpers.js';

const TD = 'cluster.local';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const SIGNER_ID = `spiffe://${TD}/outrigger/signer`;
const BROAD_TOKEN = 'broad-token-0123456789abcdef';
const WEB_TOKEN = 'web-token-0123456789abcdef';

let ca: Ca;
let evil: Ca;
let tokensFile: string;
const logs: Array<Record<string, unknown>> = [];
const closers: Array<() => Promise<unknown>> = [];

function tokenFile(token: string): string {
  return writeTokenFile(path.join(tempDir(), 'token'), token);
}

beforeAll(async () => {
  ca = await makeCa(TD);
  evil = await makeCa(TD);
  // As the auditor's tokens file: one token for the whole trust domain, one for web only.
  tokensFile = writeTokensFile(path.join(tempDir(), 'tokens.yaml'), [
    { token: BROAD_TOKEN, identities: [`spiffe://${TD}/*`] },
    { token: WEB_TOKEN, identities: [WEB] },
  ]);
});
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});
afterAll(removeTempDirs);

describe('the signer never issues its own identity (or anything under outrigger/)', () => {
  it('a token whose pattern covers it gets 403; so does the signer identity renewing itself; the load warns', async () => {
    logs.length = 0;
    const s = await Signer.start({ caDir: ca.dir, host: '127.0.0.1', port: 0, tokensFile, inline: true, log: (e) => logs.push(e) });
    closers.push(() => s.close());
    expect(s.identity).toBe(SIGNER_ID);
    const ep: SignerEndpoint = { address: s.address, caBundlePath: path.join(ca.dir, 'ca.pem'), signerIdentity: s.identity, tokenFile: tokenFile(BROAD_TOKEN) };
    // the attack's first step (attack2/attack3): the broad token asks for the signer's identity
    const stolen = requestSignature(ep, csrFor(SIGNER_ID).csrPem, 1, { kind: 'token' });
    await expect(stolen).rejects.toMatchObject({ kind: 'refused', status: 403 });
    await expect(stolen).rejects.toThrow(/reserved/);
    expect(await outcome(requestSignature(ep, csrFor(`spiffe://${TD}/outrigger/other`).csrPem, 1, { kind: 'token' }))).toBe('refused 403');
    expect(await outcome(requestSignature(ep, csrFor(`spiffe://${TD}/outrigger`).csrPem, 1, { kind: 'token' }))).toBe('refused 403');
    // the same token still gets ordinary workload identities
    expect(await outcome(requestSignature(ep, csrFor(WEB).csrPem, 1, { kind: 'token' }))).toBe('signed');
    // a certificate for the signer identity (from the CA directly) cannot renew into it either
    const own = issueLeaf(ca, { identity: SIGNER_ID, ttlHours: 1 });
    const noToken = { ...ep, tokenFile: '/nonexistent' };
    expect(await outcome(requestSignature(noToken, csrFor(SIGNER_ID).csrPem, 1, { kind: 'certificate', certPem: own.certPem, keyPem: own.keyPem }))).toBe(
      'refused 403',
    );
    expect(logs.some((l) => l['msg'] === 'refused' && String(l['reason']).includes(SIGNER_ID))).toBe(true);
    // the tokens file's broad pattern was pointed out when it loaded
    const warned = logs.find((l) => l['msg'] === 'token pattern covers reserved identities');
    expect(warned).toMatchObject({ level: 'warn', pattern: `spiffe://${TD}/*` });
    expect(String(warned?.['detail'])).toContain(SIGNER_ID);
  });

  it('a pattern that can only match reserved identities is refused at start', async () => {
    const bad = path.join(tempDir(), 'tokens.yaml');
    const tryStart = (): Promise<void> => Signer.start({ caDir: ca.dir, host: '127.0.0.1', port: 0, tokensFile: bad, inline: true }).then((s) => s.close());
    for (const p of [SIGNER_ID, `spiffe://${TD}/outrigger/*`]) {
      writeFileSync(bad, JSON.stringify({ tokens: [{ token: WEB_TOKEN, identities: [WEB, p] }] }), { mode: 0o600 });
      await expect(tryStart()).rejects.toThrow(SignerSetupError);
      await expect(tryStart()).rejects.toThrow(/reserved/);
    }
    // a custom --identity outside outrigger/ is just as reserved
    const custom = `spiffe://${TD}/ns/infra/sa/signer`;
    writeFileSync(bad, JSON.stringify({ tokens: [{ token: WEB_TOKEN, identities: [custom] }] }), { mode: 0o600 });
    await expect(Signer.start({ caDir: ca.dir, host: '127.0.0.1', port: 0, tokensFile: bad, inline: true, identity: custom })).rejects.toThrow(/reserved/);
  });
});

/**
 * A fake signer presenting a genuine certificate for the signer identity (as a thief would hold
 * one); it records the Authorization header and answers each CSR with `answer`.
 */
function fakeSigner(answer: (csrPem: string) => FakeAnswer): Promise<{ address: string; captured: string[] }> {
  return startFakeSigner({ ca, identity: SIGNER_ID, answer });
}

function sidecarOptions(address: string, caBundlePath = path.join(ca.dir, 'ca.pem')): SignerSourceOptions {
  return { mode: 'signer', address, caBundlePath, tokenFile: tokenFile(WEB_TOKEN), identity: WEB, keyMaker: createKeyMaker({ inline: true }) };
}

async function openOutcome(opts: SignerSourceOptions): Promise<string> {
  try {
    const src = await CertificateSource.open(opts);
    closers.push(() => src.close());
    return `adopted ${src.current().serial}`;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('the sidecar accepts only what its ca_bundle vouches for', () => {
  it('attack3: a leaf and trust bundle of another CA are refused (the sidecar does not start)', async () => {
    const fake = await fakeSigner((csrPem) => {
      const leaf = signLeaf(evil, { identity: parseCsr(csrPem).identity, publicKey: parseCsr(csrPem).publicKey, ttlHours: 1 });
      return { certificate: leaf.certPem, trust_bundle: evil.trustBundlePem };
    });
    const r = await openOutcome(sidecarOptions(fake.address));
    expect(fake.captured).toHaveLength(1); // it did get to ask (the signer end is what keeps such a certificate away)
    expect(r).toMatch(/not in tls\.signer\.ca_bundle|does not chain to tls\.signer\.ca_bundle/);
  });

  it('a leaf of another CA with the genuine bundle, or a genuine leaf with an extra root, is refused', async () => {
    const evilLeaf = await fakeSigner((csrPem) => ({
      certificate: signLeaf(evil, { identity: WEB, publicKey: parseCsr(csrPem).publicKey, ttlHours: 1 }).certPem,
      trust_bundle: ca.trustBundlePem,
    }));
    expect(await openOutcome(sidecarOptions(evilLeaf.address))).toMatch(/does not chain to tls\.signer\.ca_bundle/);
    const extraRoot = await fakeSigner((csrPem) => ({
      certificate: signLeaf(ca, { identity: WEB, publicKey: parseCsr(csrPem).publicKey, ttlHours: 1 }).certPem,
      trust_bundle: ca.trustBundlePem + evil.trustBundlePem,
    }));
    expect(await openOutcome(sidecarOptions(extraRoot.address))).toMatch(/trust_bundle holds a root that is not in tls\.signer\.ca_bundle/);
  });

  it('a leaf for another key than the CSR, or for another identity, is refused', async () => {
    const otherKey = await fakeSigner(() => ({
      certificate: signLeaf(ca, { identity: WEB, publicKey: generateKeySync('ec-p256').publicKey, ttlHours: 1 }).certPem,
      trust_bundle: ca.trustBundlePem,
    }));
    expect(await openOutcome(sidecarOptions(otherKey.address))).toMatch(/a public key that is not the one in our CSR/);
    const otherId = await fakeSigner((csrPem) => ({
      certificate: signLeaf(ca, { identity: `spiffe://${TD}/ns/default/sa/api`, publicKey: parseCsr(csrPem).publicKey, ttlHours: 1 }).certPem,
      trust_bundle: ca.trustBundlePem,
      identity: WEB,
    }));
    expect(await openOutcome(sidecarOptions(otherId.address))).toMatch(/is for spiffe:\/\/cluster\.local\/ns\/default\/sa\/api, we asked for/);
  });

  it('roots vouched for by ca_bundle are accepted: the genuine answer, and a new root listed in ca_bundle (root rotation)', async () => {
    const genuine = await fakeSigner((csrPem) => ({
      certificate: signLeaf(ca, { identity: WEB, publicKey: parseCsr(csrPem).publicKey, ttlHours: 1 }).certPem,
      trust_bundle: ca.trustBundlePem,
    }));
    expect(await openOutcome(sidecarOptions(genuine.address))).toMatch(/^adopted /);
    // the operator put the new root in ca_bundle first: then the signer may hand it out
    const both = path.join(tempDir(), 'ca_bundle.pem');
    writeFileSync(both, ca.certPem + evil.certPem);
    const rotating = await fakeSigner((csrPem) => ({
      certificate: signLeaf(ca, { identity: WEB, publicKey: parseCsr(csrPem).publicKey, ttlHours: 1 }).certPem,
      trust_bundle: ca.certPem + evil.certPem,
    }));
    const src = await CertificateSource.open(sidecarOptions(rotating.address, both));
    closers.push(() => src.close());
    expect(src.info().trust_roots).toBe(2);
    expect(new X509Certificate(src.current().certPem).verify(ca.cert.publicKey)).toBe(true);
  });
});
