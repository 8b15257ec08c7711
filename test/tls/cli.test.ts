// `outrigger ca` in-process through runCa: exit codes, messages, files and their modes.

import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCa } from '../../src/cli/ca.js';
import { removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

async function ca(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCa(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) } });
  return { code, out, err };
}

describe('outrigger ca', () => {
  const root = tempDir();
  const dir = path.join(root, 'ca');
  const prefix = path.join(root, 'certs', 'web');

  it('init → issue → inspect round trip', async () => {
    const init = await ca('init', '--dir', dir, '--trust-domain', 'cluster.local');
    expect(init).toMatchObject({ code: 0, err: '' });
    expect(init.out).toContain('created CA for trust domain cluster.local');
    expect(statSync(path.join(dir, 'ca.key')).mode & 0o777).toBe(0o600);

    const issue = await ca('issue', '--dir', dir, '--identity', 'spiffe://cluster.local/ns/default/sa/web', '--out', prefix, '--ttl-hours', '2');
    expect(issue).toMatchObject({ code: 0, err: '' });
    expect(statSync(`${prefix}.key`).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(readFileSync(`${prefix}.pem`));
    expect(cert.subjectAltName).toBe('URI:spiffe://cluster.local/ns/default/sa/web');
    expect(cert.verify(new X509Certificate(readFileSync(path.join(dir, 'ca.pem'))).publicKey)).toBe(true);
    const hours = (Date.parse(cert.validTo) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(1.9);
    expect(hours).toBeLessThan(2.1);

    const inspect = await ca('inspect', `${prefix}.pem`);
    expect(inspect.code).toBe(0);
    expect(inspect.out).toContain('identity:   spiffe://cluster.local/ns/default/sa/web');
    expect(inspect.out).toContain(`serial:     ${cert.serialNumber}`);
    expect(inspect.out).toMatch(/not before: \d{4}-\d\d-\d\dT/);
    expect(inspect.out).toMatch(/not after: {2}\S+ \(valid\)/);
    expect(inspect.out).toContain('issuer:     O=outrigger, CN=outrigger root cluster.local');
    expect((await ca('inspect', path.join(dir, 'ca.pem'))).out).toContain('identity:   spiffe://cluster.local');
  });

  it('re-issuing replaces the files and keeps the key private', async () => {
    const before = readFileSync(`${prefix}.pem`, 'utf8');
    const r = await ca('issue', '--dir', dir, '--identity', 'spiffe://cluster.local/ns/default/sa/web', '--out', prefix, '--key-type', 'rsa-2048');
    expect(r.code).toBe(0);
    expect(readFileSync(`${prefix}.pem`, 'utf8')).not.toBe(before);
    expect(statSync(`${prefix}.key`).mode & 0o777).toBe(0o600);
    expect(new X509Certificate(readFileSync(`${prefix}.pem`)).publicKey.asymmetricKeyType).toBe('rsa');
  });

  it.each([
    [['init', '--dir', 'DIR', '--trust-domain', 'cluster.local'], /already exists; refusing to overwrite/],
    [['init', '--dir', 'DIR'], /needs --trust-domain/],
    [['init', '--dir', 'NEW', '--trust-domain', 'Upper.Case'], /trust domain "Upper.Case" is invalid/],
    [['init', '--dir', 'NEW', '--trust-domain', 'td', '--key-type', 'dsa'], /--key-type must be one of/],
    [['issue', '--dir', 'DIR', '--identity', 'spiffe://other.td/ns/a/sa/b', '--out', 'OUT'], /outside the CA's trust domain/],
    [['issue', '--dir', 'DIR', '--identity', 'not-an-id', '--out', 'OUT'], /is not a SPIFFE ID/],
    [['issue', '--dir', 'DIR', '--identity', 'spiffe://cluster.local/ns/a/sa/b', '--out', 'OUT', '--ttl-hours', '0'], /--ttl-hours must be a positive number/],
    [['issue', '--dir', 'NEW', '--identity', 'spiffe://cluster.local/ns/a/sa/b', '--out', 'OUT'], /no CA in .*run "outrigger ca init"/],
    [['issue', '--dir', 'DIR', '--identity', 'spiffe://cluster.local/ns/a/sa/b'], /needs --out/],
    [['inspect', 'KEYFILE'], /not a certificate/],
    [['inspect', 'MISSING'], /no such file/],
    [['inspect'], /needs a FILE/],
    [['init', '--bogus'], /Unknown option '--bogus'/],
    [['frobnicate'], /unknown ca command "frobnicate"/],
    [[], /missing ca command/],
  ])('user mistake %j → exit 2 with one line', async (argv, message) => {
    const fresh = path.join(tempDir(), 'new');
    const sub = (a: string): string =>
      a === 'DIR'
        ? dir
        : a === 'NEW'
          ? fresh
          : a === 'OUT'
            ? path.join(root, 'x')
            : a === 'KEYFILE'
              ? `${prefix}.key`
              : a === 'MISSING'
                ? path.join(root, 'missing.pem')
                : a;
    const r = await ca(...argv.map(sub));
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/^outrigger ca: /);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('inspect refuses garbage between PEM markers', async () => {
    const f = path.join(root, 'bad.pem');
    writeFileSync(f, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const r = await ca('inspect', f);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unreadable/);
  });

  it('--help prints usage', async () => {
    const r = await ca('--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('outrigger ca init --dir DIR --trust-domain TD');
  });
});

describe('outrigger ca serve (usage)', () => {
  it('needs --dir, --address and --tokens; refuses a bad address and a missing CA with one line', async () => {
    const root = tempDir();
    expect(await ca('serve', '--address', '127.0.0.1:0', '--tokens', 'x')).toMatchObject({ code: 2, err: 'outrigger ca: ca serve needs --dir\n' });
    expect(await ca('serve', '--dir', root, '--tokens', 'x')).toMatchObject({ code: 2, err: 'outrigger ca: ca serve needs --address\n' });
    expect((await ca('serve', '--dir', root, '--address', 'signer.example:1', '--tokens', 'x')).err).toMatch(/^outrigger ca: --address: host "signer.example"/);
    const missing = await ca('serve', '--dir', path.join(root, 'nope'), '--address', '127.0.0.1:0', '--tokens', 'x');
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/no CA in/);
    expect((await ca('--help')).out).toContain('outrigger ca serve --dir DIR --address HOST:PORT --tokens FILE');
  });
});
