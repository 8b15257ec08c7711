// CertificateSource: ca mode re-issues at half the lifetime; files mode follows the files.

import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { issueLeaf } from '../../src/tls/ca.js';
import { clientTlsOptions } from '../../src/tls/contexts.js';
import { createIssuer } from '../../src/tls/issuer_pool.js';
import type { TlsMaterial } from '../../src/tls/material.js';
import { CertificateSource, certificateSourceOptions, nextRetryDelayMs } from '../../src/tls/rotation.js';
import { exchange, leafMaterial, makeCa, removeTempDirs, startServer, tempDir } from './helpers.js';

const ID = 'spiffe://cluster.local/ns/default/sa/web';
const sources: CertificateSource[] = [];
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});
afterAll(removeTempDirs);

function nextUpdate(src: CertificateSource, timeoutMs = 10_000): Promise<TlsMaterial> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no update in time')), timeoutMs);
    src.once('update', (m) => {
      clearTimeout(t);
      resolve(m);
    });
  });
}

describe('ca mode', () => {
  it('issues at open and re-issues at 50% of a short lifetime (piscina pool)', async () => {
    const ca = await makeCa();
    const ttlHours = 1.2 / 3600; // 1.2 s lifetime → rotation every 0.6 s
    const src = await CertificateSource.open({ mode: 'ca', caDir: ca.dir, identity: ID, ttlHours });
    sources.push(src);
    const first = src.current();
    expect(first.identity).toBe(ID);
    expect(first.nextRotation).not.toBeNull();
    // notAfter is rounded up to a whole second, so the half-life is 0.6–1.1 s here
    const half = (first.nextRotation?.getTime() ?? 0) - Date.now();
    expect(half).toBeLessThanOrEqual(1100);
    expect(first.nextRotation?.getTime()).toBeLessThan(first.notAfter.getTime());
    const seen: TlsMaterial[] = [];
    src.on('update', (m) => seen.push(m));
    await nextUpdate(src);
    await nextUpdate(src);
    expect(seen.length).toBeGreaterThanOrEqual(2);
    const serials = new Set([first.serial, ...seen.map((m) => m.serial)]);
    expect(serials.size).toBe(seen.length + 1);
    for (const m of seen) {
      expect(m.identity).toBe(ID);
      expect(m.trustBundlePem).toBe(ca.trustBundlePem);
      expect(m.nextRotation?.getTime()).toBeLessThan(m.notAfter.getTime());
    }
    const info = src.info();
    expect(info).toMatchObject({ source: 'ca', identity: ID, serial: src.current().serial, trust_roots: 1, last_error: null });
    expect(info.rotations).toBeGreaterThanOrEqual(2);
    expect(Date.parse(info.next_rotation ?? '')).toBeGreaterThan(Date.parse(info.not_before));
  });

  it('the rotated material works for a real handshake', async () => {
    const ca = await makeCa();
    const src = await CertificateSource.open({
      mode: 'ca',
      caDir: ca.dir,
      identity: ID,
      ttlHours: 2 / 3600,
      issuer: createIssuer({ caDir: ca.dir, inline: true }),
    });
    sources.push(src);
    const m = await nextUpdate(src);
    const server = await startServer(leafMaterial(ca, { identity: 'spiffe://cluster.local/ns/default/sa/api' }));
    try {
      const r = await exchange({ port: server.port, ...clientTlsOptions(m, 'spiffe://cluster.local/ns/default/sa/api') });
      expect(r).toMatchObject({ ok: true, reply: `hello ${ID}` });
    } finally {
      await server.close();
    }
  });

  it('refuses to open without a CA, and for an identity outside its trust domain', async () => {
    const inline = (dir: string) => createIssuer({ caDir: dir, inline: true });
    const empty = tempDir();
    await expect(CertificateSource.open({ mode: 'ca', caDir: empty, identity: ID, issuer: inline(empty) })).rejects.toMatchObject({ code: 'ca_missing' });
    const ca = await makeCa('other.td');
    await expect(CertificateSource.open({ mode: 'ca', caDir: ca.dir, identity: ID })).rejects.toMatchObject({ code: 'bad_request' });
  });
});

describe('files mode', () => {
  async function setup() {
    const ca = await makeCa();
    const dir = tempDir();
    const files = { trustBundlePath: path.join(dir, 'ca.pem'), certPath: path.join(dir, 'web.pem'), keyPath: path.join(dir, 'web.key') };
    const write = (leaf: { certPem: string; keyPem: string }): void => {
      // replace atomically, the way secret managers do
      writeFileSync(`${files.keyPath}.tmp`, leaf.keyPem, { mode: 0o600 });
      writeFileSync(`${files.certPath}.tmp`, leaf.certPem);
      renameSync(`${files.keyPath}.tmp`, files.keyPath);
      renameSync(`${files.certPath}.tmp`, files.certPath);
    };
    writeFileSync(files.trustBundlePath, ca.trustBundlePem);
    write(issueLeaf(ca, { identity: ID }));
    return { ca, files, write };
  }

  it('loads the files and picks up a replaced certificate', async () => {
    const { ca, files, write } = await setup();
    const src = await CertificateSource.open({ mode: 'files', ...files, debounceMs: 50, pollMs: 300 });
    sources.push(src);
    expect(src.current()).toMatchObject({ identity: ID, nextRotation: null });
    expect(src.info()).toMatchObject({ source: 'files', next_rotation: null });
    const next = issueLeaf(ca, { identity: ID });
    const updated = nextUpdate(src);
    write(next);
    const m = await updated;
    expect(m.serial).toBe(next.serial);
    expect(src.current().serial).toBe(next.serial);
  });

  it('keeps the current material when a replacement is broken, and recovers', async () => {
    const { ca, files, write } = await setup();
    const src = await CertificateSource.open({ mode: 'files', ...files, debounceMs: 50, pollMs: 200 });
    sources.push(src);
    const before = src.current().serial;
    const errors: Error[] = [];
    src.on('error', (e) => errors.push(e));
    writeFileSync(files.certPath, issueLeaf(ca, { identity: ID }).certPem); // key no longer matches
    await expect.poll(() => errors.some((e) => /does not match/.test(e.message))).toBe(true);
    expect(src.current().serial).toBe(before);
    expect(src.info().last_error).toMatch(/does not match/);
    const good = issueLeaf(ca, { identity: ID });
    const updated = nextUpdate(src);
    write(good);
    expect((await updated).serial).toBe(good.serial);
    expect(src.info().last_error).toBeNull();
  });

  it('takes a new trust bundle with two roots', async () => {
    const { files } = await setup();
    const src = await CertificateSource.open({ mode: 'files', ...files, debounceMs: 50, pollMs: 300 });
    sources.push(src);
    const newRoot = await makeCa();
    const updated = nextUpdate(src);
    writeFileSync(files.trustBundlePath, src.current().trustBundlePem + newRoot.trustBundlePem);
    expect((await updated).trustBundlePem).toContain(newRoot.certPem.trim());
    expect(src.info().trust_roots).toBe(2);
  });

  it('fails to open on missing files or a foreign identity', async () => {
    const { files } = await setup();
    await expect(CertificateSource.open({ mode: 'files', ...files, keyPath: '/nonexistent/k' })).rejects.toThrow(/tls.key \/nonexistent\/k: no such file/);
    await expect(CertificateSource.open({ mode: 'files', ...files, expectedIdentity: 'spiffe://cluster.local/ns/x/sa/y' })).rejects.toThrow(/node.identity/);
  });
});

describe('certificateSourceOptions', () => {
  const trust = { federation: [], allowInsecureKeyPermissions: false };
  it('maps the compiled tls source', () => {
    expect(certificateSourceOptions({ mode: 'ca', dir: 'ca', ttlHours: 2, keyType: 'ec-p256', ...trust }, ID, '/etc/o')).toEqual({
      mode: 'ca',
      caDir: '/etc/o/ca',
      identity: ID,
      ttlHours: 2,
      keyType: 'ec-p256',
    });
    expect(certificateSourceOptions({ mode: 'files', trustBundle: 'b.pem', cert: 'c.pem', key: '/k', ...trust }, null, '/etc/o')).toEqual({
      mode: 'files',
      trustBundlePath: '/etc/o/b.pem',
      certPath: '/etc/o/c.pem',
      keyPath: '/k',
    });
    expect(
      certificateSourceOptions(
        {
          mode: 'files',
          trustBundle: 'b.pem',
          cert: 'c.pem',
          key: '/k',
          federation: [{ trustDomain: 'partner', bundle: 'p.pem' }],
          allowInsecureKeyPermissions: true,
        },
        null,
        '/etc/o',
      ),
    ).toMatchObject({ federation: [{ trustDomain: 'partner', bundlePath: '/etc/o/p.pem' }], allowInsecureKeyPermissions: true });
    expect(() => certificateSourceOptions({ mode: 'ca', dir: 'ca', ttlHours: 24, keyType: 'ec-p256', ...trust }, null)).toThrow(/node.identity/);
  });
});

describe('nextRetryDelayMs (after a failed renewal)', () => {
  /** The times of the tries after a failure at `failAtMs`, until `untilMs`. */
  function tries(o: { baseMs: number; capMs: number; notAfterMs: number; failAtMs: number; untilMs: number }): number[] {
    const at: number[] = [];
    let now = o.failAtMs;
    let delay = 0;
    while (now < o.untilMs) {
      delay = nextRetryDelayMs(delay, { baseMs: o.baseMs, capMs: o.capMs, leftMs: o.notAfterMs - now });
      now += delay;
      at.push(now);
    }
    return at;
  }

  it('doubles up to the cap while expiry is far', () => {
    const day = 86_400_000;
    expect(tries({ baseMs: 1000, capMs: 30_000, notAfterMs: day, failAtMs: day / 2, untilMs: day / 2 + 100_000 }).slice(0, 7)).toEqual(
      [1000, 3000, 7000, 15_000, 31_000, 61_000, 91_000].map((t) => day / 2 + t),
    );
  });

  it('tries at least every quarter of the time left, so no try is first made after expiry', () => {
    // A 12.6 s leaf renewed at half its life: doubling alone would try at 7.3, 9.3 and 13.3 s (expired at 12.6).
    const at = tries({ baseMs: 1000, capMs: 30_000, notAfterMs: 12_600, failAtMs: 6_300, untilMs: 12_600 });
    at.forEach((t, i) => {
      const from = at[i - 1] ?? 6_300;
      expect(t - from).toBeLessThanOrEqual(Math.max(1000, (12_600 - from) / 4));
    });
    expect(at.filter((t) => t > 9_300 && t < 12_600).length).toBeGreaterThanOrEqual(3);
  });

  it('keeps trying every baseMs once the certificate has expired', () => {
    expect(nextRetryDelayMs(30_000, { baseMs: 1000, capMs: 30_000, leftMs: -5000 })).toBe(1000);
  });
});
