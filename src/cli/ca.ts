// `outrigger ca init | issue | inspect | serve`: the embedded CA from the command line, and the
// signing service that lets sidecars run without the root key. runCa takes the arguments after
// "ca" and returns an exit code: 0 ok, 2 for a user mistake (one line on stderr, no stack
// trace), 1 for anything unexpected. `serve` runs until SIGTERM / SIGINT.

import { X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { CaError, initCa, issueLeaf, loadCa, writeLeafFiles } from '../tls/ca.js';
import { certInfo, splitPemCertificates } from '../tls/cert_read.js';
import { KEY_TYPES, type KeyType } from '../tls/x509.js';
import { Signer, SignerSetupError } from '../tls/signer.js';
import { parseHostPort } from '../config/address.js';
import { firstEvent } from '../net/events.js';
import { parseArgsOr } from './args.js';

const HELP = `outrigger ca — the embedded certificate authority

Usage:
  outrigger ca init --dir DIR --trust-domain TD [--key-type T] [--validity-days N]
      create a root key (DIR/ca.key, mode 0600) and certificate (DIR/ca.pem); refuses to overwrite
  outrigger ca issue --dir DIR --identity spiffe://TD/ns/NS/sa/SA --out PREFIX [--ttl-hours N] [--key-type T]
      issue a leaf: PREFIX.pem (certificate) and PREFIX.key (key, mode 0600); never past the root's
      own expiry. DIR/ca.key must be private (mode 0600) unless --allow-insecure-key-permissions
  outrigger ca inspect FILE
      print identity, serial, validity and issuer of each certificate in FILE
  outrigger ca serve --dir DIR --address HOST:PORT --tokens FILE [--max-ttl-hours N] [--identity ID]
      the signing service (HTTPS): POST /v1/sign {"csr": PEM, "ttl_hours": N} with a bootstrap token
      (Authorization: Bearer ...; FILE binds each token to identity patterns) or, to renew, a client
      certificate for the same identity. Sidecars use it with tls: {signer: {...}} and never see
      DIR/ca.key. Its own certificate: spiffe://TD/outrigger/signer (or --identity). JSON log lines
      on stdout; SIGTERM/SIGINT stop it. Tokens FILE (mode 0600):
        tokens:
          - token: <at least 16 characters>
            identities: [spiffe://TD/ns/default/sa/web]

Key types: ${KEY_TYPES.join(', ')} (default ec-p256). Leaf TTL default: 24 hours (serve: at most
--max-ttl-hours, default 24). Root: 3650 days. Leaves never outlive the root. DIR/ca.key and the
tokens file must be private (mode 0600) unless --allow-insecure-key-permissions.
`;

export interface CaIo {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
}

class UsageError extends Error {}

type Spec = Record<string, { type: 'string' | 'boolean'; short?: string }>;
/** An option that takes a value, and one that is a flag. */
const VALUE = { type: 'string' } as const;
const FLAG = { type: 'boolean' } as const;

function parse(args: string[], options: Spec, positionals: number): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  const r = parseArgsOr({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals > 0, strict: true }, UsageError);
  if (r.positionals.length > positionals) throw new UsageError(`unexpected argument "${r.positionals[positionals]}"`);
  return { values: r.values, positionals: r.positionals };
}

function required(values: Record<string, string | boolean | undefined>, name: string, cmd: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`ca ${cmd} needs --${name}`);
  return v;
}

function positiveNumber(v: string | boolean | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n) || n <= 0)
    throw new UsageError(`--${name} must be a positive number, got "${String(v)}"`);
  return n;
}

function keyType(v: string | boolean | undefined): KeyType | undefined {
  if (v === undefined) return undefined;
  if (!KEY_TYPES.includes(v as KeyType)) throw new UsageError(`--key-type must be one of ${KEY_TYPES.join(', ')}, got "${String(v)}"`);
  return v as KeyType;
}

async function init(args: string[], io: CaIo): Promise<number> {
  const { values } = parse(args, { dir: VALUE, 'trust-domain': VALUE, 'key-type': VALUE, 'validity-days': VALUE }, 0);
  if (values['help'] === true) return help(io);
  const dir = required(values, 'dir', 'init');
  const td = required(values, 'trust-domain', 'init');
  const kt = keyType(values['key-type']);
  const days = positiveNumber(values['validity-days'], 'validity-days');
  const ca = await initCa(dir, td, { ...(kt !== undefined ? { keyType: kt } : {}), ...(days !== undefined ? { validityDays: days } : {}) });
  const info = certInfo(ca.cert);
  io.stdout.write(
    `created CA for trust domain ${ca.trustDomain} in ${dir}\n` +
      `  certificate: ${path.join(dir, 'ca.pem')} (${info.key}, valid until ${info.notAfter.toISOString()})\n` +
      `  key:         ${path.join(dir, 'ca.key')} (mode 0600)\n`,
  );
  return 0;
}

async function issue(args: string[], io: CaIo): Promise<number> {
  const { values } = parse(args, { dir: VALUE, identity: VALUE, out: VALUE, 'ttl-hours': VALUE, 'key-type': VALUE, 'allow-insecure-key-permissions': FLAG }, 0);
  if (values['help'] === true) return help(io);
  const dir = required(values, 'dir', 'issue');
  const identity = required(values, 'identity', 'issue');
  const out = required(values, 'out', 'issue');
  const ttlHours = positiveNumber(values['ttl-hours'], 'ttl-hours');
  const kt = keyType(values['key-type']);
  const ca = await loadCa(dir, {
    allowInsecureKeyPermissions: values['allow-insecure-key-permissions'] === true,
    optOut: 'pass --allow-insecure-key-permissions',
  });
  const leaf = issueLeaf(ca, { identity, ...(ttlHours !== undefined ? { ttlHours } : {}), ...(kt !== undefined ? { keyType: kt } : {}) });
  await mkdir(path.dirname(path.resolve(out)), { recursive: true });
  const files = await writeLeafFiles(out, leaf);
  io.stdout.write(
    `issued ${leaf.identity}\n` +
      `  serial:    ${leaf.serial}\n` +
      `  not after: ${leaf.notAfter.toISOString()}\n` +
      `  wrote:     ${files.cert}, ${files.key} (mode 0600)\n`,
  );
  return 0;
}

async function inspect(args: string[], io: CaIo): Promise<number> {
  const { values, positionals } = parse(args, {}, 1);
  if (values['help'] === true) return help(io);
  const file = positionals[0];
  if (file === undefined) throw new UsageError('ca inspect needs a FILE');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const blocks = splitPemCertificates(text);
  if (blocks.length === 0) throw new UsageError(`${file}: not a certificate (no PEM CERTIFICATE block)`);
  const parts: string[] = [];
  for (const [i, pem] of blocks.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch (e) {
      throw new UsageError(`${file}: certificate ${i + 1} is unreadable (${(e as Error).message})`);
    }
    const c = certInfo(cert);
    const now = Date.now();
    const state = now < c.notBefore.getTime() ? 'not yet valid' : now > c.notAfter.getTime() ? 'expired' : 'valid';
    parts.push(
      `identity:   ${c.identity ?? '(none)'}\n` +
        `serial:     ${c.serial}\n` +
        `not before: ${c.notBefore.toISOString()}\n` +
        `not after:  ${c.notAfter.toISOString()} (${state})\n` +
        `issuer:     ${c.issuer}\n` +
        `subject:    ${c.subject}\n` +
        `key:        ${c.key}${c.isCa ? ' (CA)' : ''}\n` +
        `sha256:     ${c.fingerprint256}\n`,
    );
  }
  io.stdout.write(parts.join('\n'));
  return 0;
}

async function serve(args: string[], io: CaIo): Promise<number> {
  const { values } = parse(
    args,
    { dir: VALUE, address: VALUE, tokens: VALUE, 'max-ttl-hours': VALUE, identity: VALUE, 'allow-insecure-key-permissions': FLAG },
    0,
  );
  if (values['help'] === true) return help(io);
  const dir = required(values, 'dir', 'serve');
  const address = required(values, 'address', 'serve');
  const tokensFile = required(values, 'tokens', 'serve');
  const hp = parseHostPort(address, true);
  if (!hp.ok) throw new UsageError(`--address: ${hp.message}`);
  const maxTtlHours = positiveNumber(values['max-ttl-hours'], 'max-ttl-hours');
  const identity = values['identity'];
  const log = (entry: Record<string, unknown>): void => void io.stdout.write(`${JSON.stringify(entry)}\n`);
  const signer = await Signer.start({
    caDir: dir,
    host: hp.value.host,
    port: hp.value.port,
    tokensFile: path.resolve(tokensFile),
    ...(maxTtlHours !== undefined ? { maxTtlHours } : {}),
    ...(typeof identity === 'string' ? { identity } : {}),
    allowInsecureKeyPermissions: values['allow-insecure-key-permissions'] === true,
    log,
  });
  log({
    time: new Date().toISOString(),
    level: 'info',
    msg: 'signer ready',
    address: signer.address,
    identity: signer.identity,
    trust_domain: signer.trustDomain,
  });
  await firstEvent(process, ['SIGTERM', 'SIGINT']);
  await signer.close();
  log({ time: new Date().toISOString(), level: 'info', msg: 'signer stopped', signed: signer.signed, refused: signer.refused });
  return 0;
}

function help(io: CaIo): number {
  io.stdout.write(HELP);
  return 0;
}

const COMMANDS: Record<string, (args: string[], io: CaIo) => Promise<number>> = { init, issue, inspect, serve };

/** Run `outrigger ca ...`; `argv` is what follows "ca". */
export async function runCa(argv: string[], io: CaIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    if (cmd === undefined) throw new UsageError('missing ca command (init, issue, inspect, serve); see outrigger ca --help');
    if (cmd === '--help' || cmd === '-h' || cmd === 'help') return help(io);
    const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
    if (command === undefined) throw new UsageError(`unknown ca command "${cmd}" (init, issue, inspect, serve)`);
    return await command(rest, io);
  } catch (e) {
    if (e instanceof UsageError || e instanceof CaError || e instanceof SignerSetupError) {
      io.stderr.write(`outrigger ca: ${e.message}\n`);
      return 2;
    }
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string' && typeof err.path === 'string') {
      io.stderr.write(`outrigger ca: ${err.path}: ${err.message}\n`); // EACCES, ENOTDIR, ...: the user's filesystem, not a bug
      return 2;
    }
    io.stderr.write(`outrigger ca: unexpected error: ${err.message}\n`);
    return 1;
  }
}
