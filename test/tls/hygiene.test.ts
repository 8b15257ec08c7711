// Hygiene of the certificate sources: leaves never outlive their CA; private keys that group or
// others may access are refused (with how to fix it) unless explicitly allowed; files mode refuses
// an expired or not-yet-valid leaf at start, and keeps the current one (error logged and counted)
// when a replacement is expired.

import { chmodSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runCa } from '../../src/cli/ca.js';
import { CA_KEY_FILE, initCa, issueLeaf, loadCa, signLeaf } from '../../src/tls/ca.js';
import { createIssuer } from '../../src/tls/issuer_pool.js';
import { CertificateSource, type FilesSourceOptions } from '../../src/tls/rotation.js';
import { generateKeySync } from '../../src/tls/x509.js';
import { HOUR, makeCa, removeTempDirs, tempDir } from './helpers.js';

const ID = 'spiffe://cluster.local/ns/default/sa/web';
const sources: CertificateSource[] = [];
afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.close()));
});
afterAll(removeTempDirs);

describe('leaves are capped at the CA notAfter', () => {
  it('a 24 h leaf from a CA with 1 h left ends with the CA', async () => {
    const ca = await initCa(path.join(tempDir(), 'ca'), 'cluster.local', { validityDays: 1 / 24 });
    const leaf = issueLeaf(ca, { identity: ID, ttlHours: 24 });
    expect(leaf.notAfter.getTime()).toBe(ca.notAfter.getTime());
    expect(leaf.notAfter.getTime() - Date.now()).toBeLessThan(HOUR);
    // signing a key made elsewhere (the signer's path) is capped the same way
    const signed = signLeaf(ca, { identity: ID, ttlHours: 48, publicKey: generateKeySync('ec-p256').publicKey });
    expect(signed.notAfter.getTime()).toBe(ca.notAfter.getTime());
    expect(signed.keyPem).toBe('');
    // a short leaf is unaffected
    expect(issueLeaf(ca, { identity: ID, ttlHours: 0.1 }).notAfter.getTime()).toBeLessThan(ca.notAfter.getTime());
  });

  it('an expired CA issues nothing', async () => {
    const ca = await initCa(path.join(tempDir(), 'ca'), 'cluster.local', { validityDays: 1 / 24, notBefore: new Date(Date.now() - 2 * HOUR) });
    expect(() => issueLeaf(ca, { identity: ID })).toThrow(/expired at/);
  });
});

describe('private key permissions', () => {
  it('a CA key readable by group or others is refused with how to fix it, unless allowed', async () => {
    const ca = await makeCa();
    const keyFile = path.join(ca.dir, CA_KEY_FILE);
    chmodSync(keyFile, 0o640);
    await expect(loadCa(ca.dir)).rejects.toMatchObject({ code: 'insecure_permissions', message: expect.stringContaining(`run "chmod 600 ${keyFile}"`) });
    await expect(loadCa(ca.dir)).rejects.toThrow(/mode 0640/);
    expect((await loadCa(ca.dir, { allowInsecureKeyPermissions: true })).trustDomain).toBe('cluster.local');
    // a sidecar in ca mode does not start on it
    const inline = createIssuer({ caDir: ca.dir, inline: true });
    await expect(CertificateSource.open({ mode: 'ca', caDir: ca.dir, identity: ID, issuer: inline })).rejects.toThrow(/chmod 600/);
    const allowed = await CertificateSource.open({
      mode: 'ca',
      caDir: ca.dir,
      identity: ID,
      issuer: createIssuer({ caDir: ca.dir, inline: true, allowInsecureKeyPermissions: true }),
    });
    sources.push(allowed);
    expect(allowed.current().identity).toBe(ID);
    // the CLI says how to opt out there
    let err = '';
    const code = await runCa(['issue', '--dir', ca.dir, '--identity', ID, '--out', path.join(tempDir(), 'w')], {
      stdout: { write: () => true },
      stderr: { write: (s: string) => (err += s) },
    });
    expect(code).toBe(2);
    expect(err).toMatch(/chmod 600 .*--allow-insecure-key-permissions/);
    chmodSync(keyFile, 0o600);
    expect((await loadCa(ca.dir)).trustDomain).toBe('cluster.local');
  });

  it('files mode: tls.key accessible by group or others is refused at start and on reload', async () => {
    const { ca, files } = await filesSetup();
    chmodSync(files.keyPath, 0o644);
    await expect(CertificateSource.open(files)).rejects.toThrow(
      new RegExp(
        `tls.key ${files.keyPath} is accessible by group or others \\(mode 0644\\): run "chmod 600 ${files.keyPath}" \\(or set tls.allow_insecure_key_permissions: true`,
      ),
    );
    const allowed = await CertificateSource.open({ ...files, allowInsecureKeyPermissions: true });
    sources.push(allowed);
    chmodSync(files.keyPath, 0o600);
    const src = await CertificateSource.open(files);
    sources.push(src);
    // a replacement written with a loose mode is refused; the current one stays
    const before = src.current().serial;
    const next = issueLeaf(ca, { identity: ID });
    writeFileSync(`${files.keyPath}.tmp`, next.keyPem, { mode: 0o604 });
    chmodSync(`${files.keyPath}.tmp`, 0o604);
    renameSync(`${files.keyPath}.tmp`, files.keyPath);
    writeFileSync(files.certPath, next.certPem);
    await src.refresh();
    expect(src.current().serial).toBe(before);
    expect(src.info().last_error).toMatch(/chmod 600/);
  });
});

async function filesSetup(leafReq: { notBefore?: Date; ttlHours?: number } = {}) {
  const ca = await makeCa();
  const dir = tempDir();
  const files: FilesSourceOptions = {
    mode: 'files',
    trustBundlePath: path.join(dir, 'bundle.pem'),
    certPath: path.join(dir, 'web.pem'),
    keyPath: path.join(dir, 'web.key'),
    debounceMs: 50,
    pollMs: 200,
  };
  const leaf = issueLeaf(ca, { identity: ID, ...leafReq });
  writeFileSync(files.trustBundlePath, ca.trustBundlePem);
  writeFileSync(files.keyPath, leaf.keyPem, { mode: 0o600 });
  writeFileSync(files.certPath, leaf.certPem);
  return { ca, files, leaf };
}

describe('files mode refuses leaves that are not valid now', () => {
  it('an expired leaf at start', async () => {
    const { files, leaf } = await filesSetup({ notBefore: new Date(Date.now() - 3 * HOUR), ttlHours: 1 });
    await expect(CertificateSource.open(files)).rejects.toThrow(`tls.cert ${files.certPath}: expired at ${leaf.notAfter.toISOString()}`);
  });

  it('a not-yet-valid leaf at start', async () => {
    const { files, leaf } = await filesSetup({ notBefore: new Date(Date.now() + HOUR), ttlHours: 1 });
    await expect(CertificateSource.open(files)).rejects.toThrow(`tls.cert ${files.certPath}: not valid before ${leaf.notBefore.toISOString()}`);
  });

  it('an expired replacement: the current leaf stays, the error is reported and counted', async () => {
    const { ca, files } = await filesSetup();
    const src = await CertificateSource.open(files);
    sources.push(src);
    const errors: Error[] = [];
    src.on('error', (e) => errors.push(e));
    const before = src.current().serial;
    expect(src.info().errors_total).toBe(0);
    const expired = issueLeaf(ca, { identity: ID, notBefore: new Date(Date.now() - 3 * HOUR), ttlHours: 1 });
    writeFileSync(`${files.keyPath}.tmp`, expired.keyPem, { mode: 0o600 });
    renameSync(`${files.keyPath}.tmp`, files.keyPath);
    writeFileSync(files.certPath, expired.certPem);
    await src.refresh();
    expect(src.current().serial).toBe(before);
    expect(errors.at(-1)?.message).toMatch(/expired at/);
    expect(src.info()).toMatchObject({ serial: before, last_error: expect.stringMatching(/expired at/) });
    expect(src.info().errors_total).toBeGreaterThanOrEqual(1);
  });
});
