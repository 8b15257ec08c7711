// The signing service (`outrigger ca serve`, in-process here) and the sidecar's signer mode:
// tokens allow only their identities, renewals work with the current certificate (and only for
// its own identity), CSRs must prove possession of the key, and a sidecar keeps its certificate
// through a signer outage — and never needs the root key.

import { X509Certificate } from 'node:crypto';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issueLeaf, type Ca } from '../../src/tls/ca.js';
import { buildCsr } from '../../src/tls/csr.js';
import { createKeyMaker } from '../../src/tls/issuer_pool.js';
import { CertificateSource, type SignerSourceOptions } from '../../src/tls/rotation.js';
import { Signer, SignerSetupError } from '../../src/tls/signer.js';
import { requestSignature, type SignerCredentials, type SignerEndpoint } from '../../src/tls/signer_client.js';
import { generateKeySync } from '../../src/tls/x509.js';
import { csrFor, signOutcome as outcome, writeTokenFile } from '../helpers/sidecar.js';
import { HOUR, makeCa, removeTempDirs, tempDir } from './helpers.js';

const TD = 'cluster.local';
const WEB = `spiffe://${TD}/ns/default/sa/web`;
const API = `spiffe://${TD}/ns/default/sa/api`;
const BATCH_ONE = `spiffe://${TD}/ns/batch/sa/one`;
const WEB_TOKEN = 'web-token-0123456789abcdef';
const BATCH_TOKEN = 'batch-token-0123456789abcdef';

let ca: Ca;
let dir: string;
let tokensFile: string;
const signers: Signer[] = [];
const sources: CertificateSource[] = [];
const logs: Array<Record<string, unknown>> = [];

function writeTokens(entries: Array<{ token: string; identities: string[] }>, mode = 0o600): void {
  writeFileSync(tokensFile, JSON.stringify({ tokens: entries }), { mode });
  chmodSync(tokensFile, mode);
}

async function startSigner(extra: Partial<Parameters<typeof Signer.start>[0]> = {}): Promise<Signer> {
  const s = await Signer.start({ caDir: ca.dir, host: '127.0.0.1', port: 0, tokensFile, inline: true, log: (e) => logs.push(e), ...extra });
  signers.push(s);
  return s;
}

beforeAll(async () => {
  ca = await makeCa(TD);
  dir = tempDir();
  tokensFile = path.join(dir, 'tokens.yaml');
  writeTokens([
    { token: WEB_TOKEN, identities: [WEB] },
    { token: BATCH_TOKEN, identities: [`spiffe://${TD}/ns/batch/*`] },
  ]);
});
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await Promise.all(signers.splice(0).map((s) => s.close()));
  await removeTempDirs();
});

function endpoint(s: Signer, token: string): SignerEndpoint {
  const tokenFile = writeTokenFile(path.join(tempDir(), 'token'), token);
  return { address: s.address, caBundlePath: path.join(ca.dir, 'ca.pem'), signerIdentity: s.identity, tokenFile };
}

describe('the signer: who may get which identity', () => {
  let signer: Signer;
  beforeAll(async () => {
    signer = await startSigner({ maxTtlHours: 2 });
  });

  it('a token gets the identities its patterns allow, nothing else', async () => {
    const web = endpoint(signer, WEB_TOKEN);
    const r = await requestSignature(web, csrFor(WEB).csrPem, 1, { kind: 'token' });
    expect(r.identity).toBe(WEB);
    const cert = new X509Certificate(r.certificate);
    expect(cert.subjectAltName).toBe(`URI:${WEB}`);
    expect(cert.verify(ca.cert.publicKey)).toBe(true);
    expect(r.trustBundle).toBe(ca.trustBundlePem);
    expect(await outcome(requestSignature(web, csrFor(API).csrPem, 1, { kind: 'token' }))).toBe('refused 403');
    const batch = endpoint(signer, BATCH_TOKEN);
    expect(await outcome(requestSignature(batch, csrFor(BATCH_ONE).csrPem, 1, { kind: 'token' }))).toBe('signed');
    expect(await outcome(requestSignature(batch, csrFor(`spiffe://${TD}/ns/batchx/sa/one`).csrPem, 1, { kind: 'token' }))).toBe('refused 403');
    expect(await outcome(requestSignature(batch, csrFor(WEB).csrPem, 1, { kind: 'token' }))).toBe('refused 403');
    expect(logs.some((l) => l['msg'] === 'refused' && String(l['reason']).includes(`does not allow ${API}`))).toBe(true);
  });

  it('unknown tokens and no credentials get 401; the leaf never outlives --max-ttl-hours', async () => {
    expect(await outcome(requestSignature(endpoint(signer, 'not-a-token-0123456789'), csrFor(WEB).csrPem, 1, { kind: 'token' }))).toBe('refused 401');
    const web = endpoint(signer, WEB_TOKEN);
    const long = await requestSignature(web, csrFor(WEB).csrPem, 100, { kind: 'token' });
    const hours = (Date.parse(new X509Certificate(long.certificate).validTo) - Date.now()) / HOUR;
    expect(hours).toBeLessThanOrEqual(2.01);
    expect(hours).toBeGreaterThan(1.9);
  });

  it('renewal: the current certificate gets the same identity again without a token — and only that one', async () => {
    const web = endpoint(signer, WEB_TOKEN);
    const first = csrFor(WEB);
    const cert = await requestSignature(web, first.csrPem, 1, { kind: 'token' });
    const creds: SignerCredentials = { kind: 'certificate', certPem: cert.certificate, keyPem: first.keyPem };
    const noToken = { ...web, tokenFile: '/nonexistent' };
    const renewed = await requestSignature(noToken, csrFor(WEB).csrPem, 1, creds);
    expect(renewed.identity).toBe(WEB);
    expect(renewed.serial).not.toBe(cert.serial);
    expect(logs.filter((l) => l['msg'] === 'signed').at(-1)?.['by']).toBe('certificate');
    expect(await outcome(requestSignature(noToken, csrFor(API).csrPem, 1, creds))).toBe('refused 403');
    // an expired certificate renews nothing
    const expired = issueLeaf(ca, { identity: WEB, notBefore: new Date(Date.now() - 3 * HOUR), ttlHours: 1 });
    expect(await outcome(requestSignature(noToken, csrFor(WEB).csrPem, 1, { kind: 'certificate', certPem: expired.certPem, keyPem: expired.keyPem }))).toBe(
      'refused 401',
    );
    // a certificate from another CA renews nothing either
    const other = await makeCa(TD);
    const stranger = issueLeaf(other, { identity: WEB });
    expect(await outcome(requestSignature(noToken, csrFor(WEB).csrPem, 1, { kind: 'certificate', certPem: stranger.certPem, keyPem: stranger.keyPem }))).toBe(
      'refused 401',
    );
  });

  it('a CSR must prove possession of its key and match what it asks for', async () => {
    const web = endpoint(signer, WEB_TOKEN);
    const a = generateKeySync('ec-p256');
    const b = generateKeySync('ec-p256');
    expect(await outcome(requestSignature(web, buildCsr(b.privateKey, a.publicKey, WEB), 1, { kind: 'token' }))).toBe('refused 400');
    expect(await outcome(requestSignature(web, 'junk', 1, { kind: 'token' }))).toBe('refused 400');
  });

  it('the sidecar checks the signer by its SPIFFE ID and the CA bundle', async () => {
    const web = endpoint(signer, WEB_TOKEN);
    const wrongId = await outcome(requestSignature({ ...web, signerIdentity: `spiffe://${TD}/somebody/else` }, csrFor(WEB).csrPem, 1, { kind: 'token' }));
    expect(wrongId).toBe('unreachable');
    const other = await makeCa(TD);
    expect(await outcome(requestSignature({ ...web, caBundlePath: path.join(other.dir, 'ca.pem') }, csrFor(WEB).csrPem, 1, { kind: 'token' }))).toBe(
      'unreachable',
    );
  });
});

describe('the signer refuses a bad setup at start', () => {
  it('a tokens file others may read, a malformed one, a pattern outside the trust domain', async () => {
    const bad = path.join(tempDir(), 'tokens.yaml');
    const tryStart = (file: string) => Signer.start({ caDir: ca.dir, host: '127.0.0.1', port: 0, tokensFile: file, inline: true }).then((s) => s.close());
    writeFileSync(bad, JSON.stringify({ tokens: [{ token: WEB_TOKEN, identities: [WEB] }] }), { mode: 0o644 });
    chmodSync(bad, 0o644);
    await expect(tryStart(bad)).rejects.toThrow(/chmod 600/);
    chmodSync(bad, 0o600);
    writeFileSync(bad, JSON.stringify({ tokens: [{ token: 'short', identities: [WEB] }] }));
    await expect(tryStart(bad)).rejects.toThrow(/at least 16 characters/);
    writeFileSync(bad, JSON.stringify({ tokens: [{ token: WEB_TOKEN, identities: ['spiffe://elsewhere/ns/a/sa/b'] }] }));
    await expect(tryStart(bad)).rejects.toThrow(/outside this CA's trust domain/);
    writeFileSync(bad, JSON.stringify({ tokens: [{ token: WEB_TOKEN, identities: [`spiffe://${TD}/ns/x*`] }] }));
    await expect(tryStart(bad)).rejects.toThrow(SignerSetupError);
  });
});

describe('signer mode (CertificateSource): the sidecar side', () => {
  function signerOptions(s: Signer, extra: Partial<SignerSourceOptions> = {}): SignerSourceOptions {
    const ep = endpoint(s, WEB_TOKEN);
    return {
      mode: 'signer',
      address: ep.address,
      caBundlePath: ep.caBundlePath,
      tokenFile: ep.tokenFile,
      identity: WEB,
      keyMaker: createKeyMaker({ inline: true }),
      ...extra,
    };
  }

  it('bootstraps with the token, renews at half the lifetime with its certificate, never holds the root key', async () => {
    const s = await startSigner();
    const src = await CertificateSource.open(signerOptions(s, { ttlHours: 2 / 3600 })); // 2 s leaves
    sources.push(src);
    const first = src.current();
    expect(first.identity).toBe(WEB);
    expect(src.info()).toMatchObject({ source: 'signer', identity: WEB, signer: { address: s.address, identity: s.identity }, warning: null });
    const before = logs.length;
    const next = await new Promise<typeof first>((resolve) => src.once('update', resolve));
    expect(next.serial).not.toBe(first.serial);
    expect(logs.slice(before).find((l) => l['msg'] === 'signed')?.['by']).toBe('certificate');
    // what is posted to workers: leaf, its key, trust bundle — never the root key
    const rootKey = ca.key.export({ type: 'pkcs8', format: 'pem' }).toString();
    const posted = JSON.stringify(structuredClone(src.current()));
    expect(posted).not.toContain(rootKey.split('\n')[1]);
    expect(posted).toContain(next.serial);
  });

  it('keeps its certificate through a signer outage, warns as the end nears, and renews when the signer is back', async () => {
    const s = await startSigner();
    const port = s.port;
    const src = await CertificateSource.open(signerOptions(s, { ttlHours: 4 / 3600, retryMs: 200 })); // 4 s leaves
    sources.push(src);
    const errors: Error[] = [];
    src.on('error', (e) => errors.push(e));
    const held = src.current();
    await s.close();
    // past the renewal time: the renewals fail, the current certificate stays
    await new Promise((r) => setTimeout(r, Math.max(0, held.nextRotation!.getTime() - Date.now()) + 700));
    expect(src.current().serial).toBe(held.serial);
    expect(errors.length).toBeGreaterThan(0);
    expect(src.info().last_error).toMatch(/unreachable/);
    expect(src.info().errors_total).toBeGreaterThan(0);
    // with less than a quarter of the lifetime left, /certs warns
    expect(src.warning(held.notAfter.getTime() - 500)).toMatch(/expires in \d+ s and renewal is failing/);
    expect(src.warning(held.notAfter.getTime() + 1)).toMatch(/expired at/);
    // the signer comes back on the same address: the next retry renews
    const back = await startSigner({ port });
    const renewed = await new Promise<ReturnType<typeof src.current>>((resolve) => src.once('update', resolve));
    expect(renewed.serial).not.toBe(held.serial);
    expect(src.info()).toMatchObject({ last_error: null, warning: null });
    await back.close();
  });

  it('does not start when the signer refuses or is unreachable (nothing to serve with)', async () => {
    const s = await startSigner();
    const opts = signerOptions(s, { identity: API }); // the web token does not allow api
    await expect(CertificateSource.open(opts)).rejects.toThrow(/403 forbidden/);
    await expect(CertificateSource.open({ ...signerOptions(s), address: '127.0.0.1:1' })).rejects.toThrow(/unreachable/);
  });
});
