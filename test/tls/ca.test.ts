import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaError, initCa, issueLeaf, loadCa, type Ca } from '../../src/tls/ca.js';
import { materialFromPem } from '../../src/tls/material.js';
import { peerSpiffeId } from '../../src/tls/spiffe.js';
import { buildCertificate, derToPem, encodeName, generateKeySync, randomSerial } from '../../src/tls/x509.js';
import { HOUR, makeCa, removeTempDirs, tempDir, hasOpenssl } from './helpers.js';

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

afterAll(removeTempDirs);

describe('initCa / loadCa', () => {
  it('creates a self-signed root with CA:true, keyCertSign and the trust-domain URI SAN, 10 years', async () => {
    const dir = path.join(tempDir(), 'ca');
    const ca = await initCa(dir, 'cluster.local');
    expect(ca.trustDomain).toBe('cluster.local');
    expect(ca.keyType).toBe('ec-p256');
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.subjectAltName).toBe('URI:spiffe://cluster.local');
    const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365.25 * 24 * HOUR);
    expect(years).toBeGreaterThan(9.9);
    expect(statSync(path.join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    const loaded = await loadCa(dir);
    expect(loaded.certPem).toBe(ca.certPem);
    expect(loaded.trustDomain).toBe('cluster.local');
    if (hasOpenssl) {
      const text = openssl(['x509', '-in', path.join(dir, 'ca.pem'), '-noout', '-text']);
      expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
      expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    }
  });

  it('refuses to overwrite an existing CA and names the file', async () => {
    const dir = path.join(tempDir(), 'ca');
    const first = await initCa(dir, 'td');
    await expect(initCa(dir, 'td')).rejects.toMatchObject({ code: 'ca_exists' });
    expect((await loadCa(dir)).certPem).toBe(first.certPem);
  });

  it('reports a missing or broken CA as a CaError', async () => {
    await expect(loadCa(tempDir())).rejects.toMatchObject({ code: 'ca_missing' });
    const dir = tempDir();
    writeFileSync(path.join(dir, 'ca.pem'), 'junk');
    writeFileSync(path.join(dir, 'ca.key'), 'junk');
    await expect(loadCa(dir)).rejects.toBeInstanceOf(CaError);
    await expect(initCa(tempDir(), 'Bad.Domain')).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('makes an RSA root when asked', async () => {
    const ca = await initCa(path.join(tempDir(), 'ca'), 'td', { keyType: 'rsa-2048' });
    expect(ca.keyType).toBe('rsa-2048');
    const leaf = issueLeaf(ca, { identity: 'spiffe://td/ns/a/sa/b' });
    expect(new X509Certificate(leaf.certPem).verify(ca.cert.publicKey)).toBe(true);
  });
});

describe('issueLeaf', () => {
  let ca: Ca;
  const id = 'spiffe://cluster.local/ns/default/sa/web';

  it('issues an EC P-256 X.509-SVID for 24 h by default', async () => {
    ca = await makeCa('cluster.local');
    const before = Date.now();
    const leaf = issueLeaf(ca, { identity: id });
    const cert = new X509Certificate(leaf.certPem);
    expect(leaf.identity).toBe(id);
    expect(leaf.keyType).toBe('ec-p256');
    expect(cert.subjectAltName).toBe(`URI:${id}`);
    expect(peerSpiffeId(cert)).toBe(id);
    expect(cert.ca).toBe(false);
    expect(cert.serialNumber).toBe(leaf.serial);
    expect(leaf.serial).toMatch(/^[0-7][0-9A-F]{31}$/);
    expect(cert.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(cert.checkIssued(ca.cert) && cert.verify(ca.cert.publicKey)).toBe(true);
    expect(Date.parse(cert.validFrom)).toBe(leaf.notBefore.getTime());
    expect(Date.parse(cert.validTo)).toBe(leaf.notAfter.getTime());
    expect(leaf.notBefore.getTime()).toBeLessThan(before); // backdated for clock skew
    expect(leaf.notAfter.getTime() - before).toBeGreaterThan(24 * HOUR - 2000);
    expect(leaf.notAfter.getTime() - before).toBeLessThan(24 * HOUR + 2000);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    // the pieces fit together as material
    expect(materialFromPem({ ...leaf, trustBundlePem: ca.trustBundlePem }).identity).toBe(id);
  });

  it('gives each leaf a fresh key and serial', () => {
    const a = issueLeaf(ca, { identity: id });
    const b = issueLeaf(ca, { identity: id });
    expect(a.serial).not.toBe(b.serial);
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  it('honours ttlHours, notBefore and rsa-2048', () => {
    const start = new Date(Date.now() + 2 * HOUR);
    const leaf = issueLeaf(ca, { identity: id, ttlHours: 0.5, notBefore: start, keyType: 'rsa-2048' });
    expect(leaf.notBefore.getTime()).toBe(Math.floor(start.getTime() / 1000) * 1000);
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBeGreaterThanOrEqual(0.5 * HOUR - 1000);
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
  });

  it('refuses identities outside the trust domain, invalid IDs and bad TTLs', () => {
    expect(() => issueLeaf(ca, { identity: 'spiffe://other/ns/a/sa/b' })).toThrow(/outside the CA's trust domain/);
    expect(() => issueLeaf(ca, { identity: 'spiffe://cluster.local' })).toThrow(/needs a path/);
    expect(() => issueLeaf(ca, { identity: 'spiffe://cluster.local/a//b' })).toThrow(CaError);
    expect(() => issueLeaf(ca, { identity: id, ttlHours: 0 })).toThrow(/ttl/);
    expect(() => issueLeaf(ca, { identity: id, ttlHours: Number.NaN })).toThrow(/ttl/);
  });

  it.runIf(hasOpenssl)('verifies with openssl for client and server purposes (EC and RSA)', () => {
    const dir = tempDir();
    for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
      const leaf = issueLeaf(ca, { identity: id, keyType });
      const file = path.join(dir, `${keyType}.pem`);
      writeFileSync(file, leaf.certPem);
      for (const purpose of ['sslclient', 'sslserver']) {
        expect(openssl(['verify', '-purpose', purpose, '-CAfile', path.join(ca.dir, 'ca.pem'), file])).toContain(': OK');
      }
      const text = openssl(['x509', '-in', file, '-noout', '-text']);
      expect(text).toMatch(/Key Usage: critical\s+Digital Signature/);
      if (keyType === 'rsa-2048') expect(text).toMatch(/Digital Signature, Key Encipherment/);
      expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
      expect(text).toMatch(/Authority Key Identifier/);
    }
  });

  it('reads the URI SAN the way node prints it, even when another SAN tries to smuggle one in', () => {
    // A certificate with a DNS SAN holding ", URI:spiffe://..." and no real URI SAN.
    const { publicKey } = generateKeySync('ec-p256');
    const der = buildCertificate({
      serial: randomSerial(),
      issuerName: ca.subjectName,
      subjectName: encodeName([{ shortName: 'CN', value: 'x' }]),
      notBefore: new Date(Date.now() - HOUR),
      notAfter: new Date(Date.now() + HOUR),
      publicKey,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'a, URI:spiffe://cluster.local/ns/forged/sa/x' }] }],
      authorityKeyId: ca.keyId,
      signingKey: ca.key,
    });
    const forged = new X509Certificate(derToPem(der));
    expect(forged.subjectAltName).toContain('"'); // node quotes it
    expect(peerSpiffeId(forged)).toBeNull();
  });

  it.runIf(hasOpenssl)('writes key files that openssl can read', () => {
    expect(existsSync(path.join(ca.dir, 'ca.key'))).toBe(true);
    expect(openssl(['pkey', '-in', path.join(ca.dir, 'ca.key'), '-noout', '-text'])).toContain('prime256v1');
  });
});
