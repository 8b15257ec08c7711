// The piscina issuer runs the built worker (dist/src/tls/sign_worker.js): `npx tsc` first.

import { X509Certificate } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CaError } from '../../src/tls/ca.js';
import { createIssuer } from '../../src/tls/issuer_pool.js';
import { makeCa, removeTempDirs } from './helpers.js';

afterAll(removeTempDirs);

describe('createIssuer', () => {
  it('issues EC and RSA leaves in pool threads, several at once', async () => {
    const ca = await makeCa('td');
    const issuer = createIssuer({ caDir: ca.dir, threads: 2 });
    try {
      const leaves = await Promise.all([
        issuer.issue({ identity: 'spiffe://td/ns/a/sa/one' }),
        issuer.issue({ identity: 'spiffe://td/ns/a/sa/two', keyType: 'rsa-2048' }),
        issuer.issue({ identity: 'spiffe://td/ns/a/sa/three', ttlHours: 1 }),
      ]);
      expect(leaves.map((l) => l.identity)).toEqual(['spiffe://td/ns/a/sa/one', 'spiffe://td/ns/a/sa/two', 'spiffe://td/ns/a/sa/three']);
      for (const l of leaves) {
        const cert = new X509Certificate(l.certPem);
        expect(cert.verify(ca.cert.publicKey)).toBe(true);
        expect(l.notAfter).toBeInstanceOf(Date);
        expect(l.trustBundlePem).toBe(ca.trustBundlePem);
      }
      expect(leaves[1]?.keyType).toBe('rsa-2048');
    } finally {
      await issuer.close();
    }
  });

  it('returns user mistakes as CaError with their code', async () => {
    const ca = await makeCa('td');
    const issuer = createIssuer({ caDir: ca.dir });
    try {
      const err = await issuer.issue({ identity: 'spiffe://elsewhere/ns/a/sa/b' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CaError);
      expect(err).toMatchObject({ code: 'bad_request' });
    } finally {
      await issuer.close();
    }
  });
});
