// CSRs for the signer protocol: what buildCsr makes, parseCsr reads back (and OpenSSL agrees);
// parseCsr refuses anything that does not prove possession of the key or does not carry exactly
// one SPIFFE ID.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CsrError, buildCsr, parseCsr } from '../../src/tls/csr.js';
import { generateKeySync, type KeyType } from '../../src/tls/x509.js';
import { tempDir, hasOpenssl } from './helpers.js';

const ID = 'spiffe://cluster.local/ns/default/sa/web';
describe('buildCsr / parseCsr', () => {
  it.each<KeyType>(['ec-p256', 'rsa-2048'])('round trip with %s, and OpenSSL verifies it', (t) => {
    const { privateKey, publicKey } = generateKeySync(t);
    const pem = buildCsr(privateKey, publicKey, ID);
    const p = parseCsr(pem);
    expect(p.identity).toBe(ID);
    expect(p.keyType).toBe(t);
    expect(p.publicKey.export({ type: 'spki', format: 'der' })).toEqual(publicKey.export({ type: 'spki', format: 'der' }));
    if (hasOpenssl) {
      const f = path.join(tempDir(), 'x.csr');
      writeFileSync(f, pem);
      const out = execFileSync('openssl', ['req', '-in', f, '-noout', '-verify', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(out).toContain(`URI:${ID}`);
    }
  });

  it('refuses a CSR whose signature is not by its key (no proof of possession)', () => {
    const a = generateKeySync('ec-p256');
    const b = generateKeySync('ec-p256');
    // signed by b, claiming a's public key
    expect(() => parseCsr(buildCsr(b.privateKey, a.publicKey, ID))).toThrow(/does not verify/);
  });

  it('refuses a tampered CSR, junk, and a CSR without exactly one SPIFFE URI', () => {
    const { privateKey, publicKey } = generateKeySync('ec-p256');
    const pem = buildCsr(privateKey, publicKey, ID);
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    const i = der.indexOf(Buffer.from('sa/web'));
    der[i + 3] = 'x'.charCodeAt(0); // sa/wxb
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(() => parseCsr(tampered)).toThrow(CsrError);
    expect(() => parseCsr('hello')).toThrow(/not a PEM/);
    expect(() => parseCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n')).toThrow(CsrError);
    expect(() => parseCsr(buildCsr(privateKey, publicKey, 'https://example.com/x'))).toThrow(/not a SPIFFE ID/);
  });
});
