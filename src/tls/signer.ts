// `outrigger ca serve`: the signing service, so that sidecars never hold a root key. It holds the
// CA directory, serves HTTPS with a leaf of its own (`spiffe://<td>/outrigger/signer`, re-issued
// at half its lifetime) and signs CSRs:
//
//   POST /v1/sign   Content-Type: application/json   {"csr": "<PEM>", "ttl_hours": 24}
//     authorised by either
//       - `Authorization: Bearer <token>`: a bootstrap token from the tokens file, bound to
//         identity patterns (config/identity_pattern.ts) — the CSR's SPIFFE ID must match one;
//       - a TLS client certificate from this CA, valid now, for exactly the CSR's SPIFFE ID
//         (renewal: a workload can renew its own identity, never get another one).
//     → 200 {"certificate", "trust_bundle", "identity", "serial", "not_before", "not_after"}
//     → 400 bad_request / bad_csr, 401 unauthenticated, 403 forbidden, 413, 415; JSON errors.
//   GET /healthz → 200.
//
// Key generation never happens here (the requester makes its key); CSR checks and signing run
// in the piscina pool. Every decision is logged (audit). Tokens file (YAML or JSON, mode 0600):
//   tokens:
//     - token: <at least 16 characters>
//       identities: [spiffe://cluster.local/ns/default/sa/web, spiffe://cluster.local/ns/batch/*]
// It is re-read when it changes (a broken new version is logged and the previous one kept).
//
// Reserved identities: the signer's own (--identity) and everything under
// spiffe://<td>/outrigger/ are never issued through /v1/sign — to no token, whatever its
// patterns, and to no certificate — so that nobody can pose as the signer. A token pattern that
// can only match reserved identities is refused when the file loads; one that also covers them
// (e.g. spiffe://<td>/*) is logged as a warning.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { CaError, loadCa } from './ca.js';
import { inboundPeer } from './contexts.js';
import { CsrError, MAX_CSR_BYTES, parseCsr } from './csr.js';
import { createCsrSigner, createIssuer, type CsrSigner, type IssuedLeaf, type Issuer } from './issuer_pool.js';
import { checkPrivateFile } from './key_files.js';
import { materialFromPem, type TlsMaterial } from './material.js';
import { defaultSignerIdentity } from './signer_client.js';
import { compileIdentityPatterns, identityPatternProblem, spiffeIdProblem, trustDomainOf, type IdentityMatcher } from './spiffe.js';
import { isoTime } from '../time.js';

export { defaultSignerIdentity } from './signer_client.js';

const MAX_BODY_BYTES = 64 * 1024;
const MIN_TOKEN_LENGTH = 16;
const SERVER_LEAF_TTL_HOURS = 24;
/** The first path segment reserved for outrigger's own services (the signer's identity lives under it). */
export const RESERVED_SEGMENT = 'outrigger';

/** Why the signer never issues `identity` (it is reserved), or null when it may. */
export function reservedIdentityProblem(identity: string, signerIdentity: string): string | null {
  if (identity === signerIdentity) return `${identity} is the signer's own identity: it is reserved and never issued`;
  const td = trustDomainOf(identity);
  const rest = identity.slice(`spiffe://${td}`.length);
  if (rest === `/${RESERVED_SEGMENT}` || rest.startsWith(`/${RESERVED_SEGMENT}/`))
    return `${identity} is under the reserved spiffe://${td}/${RESERVED_SEGMENT}/ (the signer's own identities): it is never issued`;
  return null;
}

/**
 * For a token pattern: `refuse` when it can only match reserved identities (its first segment is
 * `outrigger`, or it is the signer's identity), `warn` when it also covers some (its first segment
 * is `*`, or it matches the signer's identity), else null.
 */
function reservedPatternVerdict(pattern: string, signerIdentity: string, match: IdentityMatcher): { kind: 'refuse' | 'warn'; detail: string } | null {
  const td = trustDomainOf(pattern);
  const first = pattern.slice(`spiffe://${td}/`.length).split('/')[0];
  const reserved = `spiffe://${td}/${RESERVED_SEGMENT}/`;
  if (pattern === signerIdentity || first === RESERVED_SEGMENT)
    return {
      kind: 'refuse',
      detail: `${pattern} can only match reserved identities (the signer's own ${signerIdentity}, anything under ${reserved}), which are never issued`,
    };
  if (first === '*' || match(signerIdentity))
    return {
      kind: 'warn',
      detail: `${pattern} also covers reserved identities (the signer's own ${signerIdentity}, anything under ${reserved}): those are refused to this token like to any other`,
    };
  return null;
}

export interface SignerOptions {
  readonly caDir: string;
  readonly host: string;
  /** 0 = pick a free port. */
  readonly port: number;
  readonly tokensFile: string;
  /** Longest leaf it signs, hours (default 24); a request for more gets this much. */
  readonly maxTtlHours?: number;
  /** The signer's own SPIFFE ID (default spiffe://<CA trust domain>/outrigger/signer). */
  readonly identity?: string;
  /** Accept a ca.key / tokens file that group or others may access. */
  readonly allowInsecureKeyPermissions?: boolean;
  /** Sign in the calling thread (tests running TypeScript sources); default: a piscina pool. */
  readonly inline?: boolean;
  /** One JSON-able object per event (decisions, rotations, errors). */
  readonly log?: (entry: Record<string, unknown>) => void;
}

interface TokenEntry {
  readonly digest: Buffer;
  readonly patterns: readonly string[];
  readonly match: IdentityMatcher;
}

/** A problem with the signer's setup (CA, tokens file): one line for the CLI. */
export class SignerSetupError extends Error {}

/** A token pattern that also covers reserved identities (see reservedIdentityProblem): allowed, worth a warning. */
export interface TokenWarning {
  readonly at: string;
  readonly pattern: string;
  readonly detail: string;
}

/**
 * Parse a tokens file's text; throws SignerSetupError naming the problem (including a pattern
 * that can only match reserved identities). Patterns that also cover reserved identities are
 * passed to `warn`.
 */
export function parseTokens(
  text: string,
  trustDomain: string,
  file: string,
  signerIdentity = defaultSignerIdentity(trustDomain),
  warn: (w: TokenWarning) => void = () => {},
): TokenEntry[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new SignerSetupError(`${file}: not YAML/JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const list = (doc as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list) || list.length === 0) throw new SignerSetupError(`${file}: needs "tokens:", a list of {token, identities}`);
  const seen = new Set<string>();
  return list.map((t, i) => {
    const at = `${file}: tokens[${i}]`;
    const token = (t as { token?: unknown })?.token;
    const identities = (t as { identities?: unknown })?.identities;
    if (typeof token !== 'string' || token.trim().length < MIN_TOKEN_LENGTH)
      throw new SignerSetupError(`${at}.token: must be a string of at least ${MIN_TOKEN_LENGTH} characters`);
    if (seen.has(token.trim())) throw new SignerSetupError(`${at}.token: appears twice`);
    seen.add(token.trim());
    if (!Array.isArray(identities) || identities.length === 0) throw new SignerSetupError(`${at}.identities: must be a non-empty list of identity patterns`);
    identities.forEach((p, j) => {
      const problem = typeof p === 'string' ? identityPatternProblem(p) : 'must be a string';
      if (problem !== null) throw new SignerSetupError(`${at}.identities[${j}]: ${problem}`);
      if (trustDomainOf(p as string) !== trustDomain)
        throw new SignerSetupError(`${at}.identities[${j}]: ${String(p)} is outside this CA's trust domain "${trustDomain}"`);
    });
    const patterns = identities as string[];
    patterns.forEach((p, j) => {
      const verdict = reservedPatternVerdict(p, signerIdentity, compileIdentityPatterns([p]));
      if (verdict?.kind === 'refuse') throw new SignerSetupError(`${at}.identities[${j}]: ${verdict.detail}`);
      if (verdict?.kind === 'warn') warn({ at: `${at}.identities[${j}]`, pattern: p, detail: verdict.detail });
    });
    return { digest: digestOf(token.trim()), patterns, match: compileIdentityPatterns(patterns) };
  });
}

function digestOf(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class Signer {
  private tokens: TokenEntry[] = [];
  private tokensSig = '';
  private material: TlsMaterial | null = null;
  private timer: NodeJS.Timeout | null = null;
  private server: https.Server | null = null;
  /** Certificates signed so far, and requests refused. */
  signed = 0;
  refused = 0;

  private constructor(
    private readonly opts: SignerOptions,
    readonly trustDomain: string,
    readonly identity: string,
    private readonly issuer: Issuer,
    private readonly csrSigner: CsrSigner,
  ) {}

  /** Check the CA and the tokens file, issue our server leaf, listen. Rejects with SignerSetupError / CaError. */
  static async start(opts: SignerOptions): Promise<Signer> {
    const allowInsecure = opts.allowInsecureKeyPermissions === true;
    const optOut = 'pass --allow-insecure-key-permissions';
    const ca = await loadCa(opts.caDir, { allowInsecureKeyPermissions: allowInsecure, optOut });
    const identity = opts.identity ?? defaultSignerIdentity(ca.trustDomain);
    const idProblem = spiffeIdProblem(identity);
    if (idProblem !== null) throw new SignerSetupError(`--identity ${identity}: ${idProblem}`);
    if (trustDomainOf(identity) !== ca.trustDomain) throw new SignerSetupError(`--identity ${identity} is outside the CA's trust domain "${ca.trustDomain}"`);
    const max = opts.maxTtlHours ?? 24;
    if (!(max > 0) || !Number.isFinite(max)) throw new SignerSetupError('--max-ttl-hours must be a positive number');
    const pool = { caDir: opts.caDir, allowInsecureKeyPermissions: allowInsecure, ...(opts.inline === true ? { inline: true } : {}) };
    const signer = new Signer(opts, ca.trustDomain, identity, createIssuer(pool), createCsrSigner(pool));
    try {
      await signer.reloadTokens(true);
      await signer.rotateServerLeaf();
      await signer.listen();
    } catch (e) {
      await signer.close();
      throw e;
    }
    return signer;
  }

  /** `host:port` it listens on. */
  get address(): string {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a === null || a === undefined ? '' : `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null | undefined)?.port ?? 0;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const server = this.server;
    this.server = null;
    if (server !== null) {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    await Promise.allSettled([this.issuer.close(), this.csrSigner.close()]);
  }

  private log(entry: Record<string, unknown>): void {
    this.opts.log?.({ time: isoTime(Date.now()), ...entry });
  }

  /** Re-read the tokens file when it changed; at start a problem is fatal, later it is logged and the old tokens stay. */
  private async reloadTokens(atStart: boolean): Promise<void> {
    const file = this.opts.tokensFile;
    try {
      const st = await stat(file);
      const sig = `${st.ino}:${st.size}:${st.mtimeMs}:${st.mode}`;
      if (sig === this.tokensSig) return;
      await checkPrivateFile(file, {
        label: 'tokens file',
        allowInsecure: this.opts.allowInsecureKeyPermissions === true,
        optOut: 'pass --allow-insecure-key-permissions',
      });
      const warnings: TokenWarning[] = [];
      this.tokens = parseTokens(await readFile(file, 'utf8'), this.trustDomain, file, this.identity, (w) => warnings.push(w));
      for (const w of warnings) this.log({ level: 'warn', msg: 'token pattern covers reserved identities', at: w.at, pattern: w.pattern, detail: w.detail });
      this.tokensSig = sig;
      if (!atStart) this.log({ level: 'info', msg: 'tokens reloaded', tokens: this.tokens.length });
    } catch (e) {
      const message = (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${file}: no such file` : (e as Error).message;
      if (atStart) throw new SignerSetupError(message);
      this.log({ level: 'error', msg: 'tokens file not reloaded; the previous tokens stay', err: message });
    }
  }

  /** Our own server leaf, from the CA like any other; re-issued at half its lifetime. */
  private async rotateServerLeaf(): Promise<void> {
    try {
      const leaf = await this.issuer.issue({ identity: this.identity, ttlHours: SERVER_LEAF_TTL_HOURS });
      this.material = materialFromPem(leaf);
      const opts = { cert: leaf.certPem, key: leaf.keyPem, ca: leaf.trustBundlePem };
      this.server?.setSecureContext(opts);
      this.schedule(leaf.issuedAtMs + (leaf.notAfter.getTime() - leaf.issuedAtMs) / 2);
    } catch (e) {
      if (this.server === null) throw e;
      this.log({ level: 'error', msg: 'signer certificate not re-issued; retrying in 60 s', err: (e as Error).message });
      this.schedule(Date.now() + 60_000);
    }
  }

  private schedule(atMs: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.rotateServerLeaf(), Math.min(Math.max(1000, atMs - Date.now()), 2_147_483_647));
    this.timer.unref();
  }

  private listen(): Promise<void> {
    const m = this.material as TlsMaterial;
    // A client certificate is asked for (renewals) but not required (bootstrap tokens).
    const server = https.createServer(
      { cert: m.certPem, key: m.keyPem, ca: m.trustBundlePem, requestCert: true, rejectUnauthorized: false, requestTimeout: 10_000 },
      (req, res) => void this.handle(req, res),
    );
    server.on('tlsClientError', () => {});
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    try {
      if (req.url === '/healthz' && req.method === 'GET') return send(res, 200, { ok: true });
      if (req.url !== '/v1/sign') throw new HttpError(404, 'not_found', 'POST /v1/sign is the only endpoint');
      if (req.method !== 'POST') throw new HttpError(405, 'method_not_allowed', 'use POST');
      if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'unsupported_media_type', 'send application/json');
      const body = await readBody(req);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        throw new HttpError(400, 'bad_request', 'the body is not JSON');
      }
      const csrPem = (parsed as { csr?: unknown } | null)?.csr;
      const ttl = (parsed as { ttl_hours?: unknown } | null)?.ttl_hours;
      if (typeof csrPem !== 'string' || csrPem.length > MAX_CSR_BYTES * 2) throw new HttpError(400, 'bad_request', '"csr" must be a PEM CERTIFICATE REQUEST');
      if (ttl !== undefined && (typeof ttl !== 'number' || !(ttl > 0) || !Number.isFinite(ttl)))
        throw new HttpError(400, 'bad_request', '"ttl_hours" must be a positive number');
      const identity = parseCsr(csrPem).identity;
      // Before any credential counts: nobody may become the signer (nor anything reserved).
      const reserved = reservedIdentityProblem(identity, this.identity);
      if (reserved !== null) throw new HttpError(403, 'forbidden', reserved);
      const by = await this.authorize(req, identity);
      const ttlHours = Math.min(ttl ?? Infinity, this.opts.maxTtlHours ?? 24);
      const leaf: IssuedLeaf = await this.csrSigner.sign(csrPem, identity, ttlHours);
      this.signed++;
      this.log({
        level: 'info',
        msg: 'signed',
        identity,
        by,
        serial: leaf.serial,
        not_after: isoTime(leaf.notAfter.getTime()),
        client: req.socket.remoteAddress,
        ms: Date.now() - started,
      });
      send(res, 200, {
        certificate: leaf.certPem,
        trust_bundle: leaf.trustBundlePem,
        identity: leaf.identity,
        serial: leaf.serial,
        not_before: isoTime(leaf.notBefore.getTime()),
        not_after: isoTime(leaf.notAfter.getTime()),
      });
    } catch (e) {
      const err =
        e instanceof HttpError
          ? e
          : e instanceof CsrError
            ? new HttpError(400, 'bad_csr', e.message)
            : e instanceof CaError && e.code === 'bad_request'
              ? new HttpError(400, 'bad_request', e.message)
              : null;
      this.refused++;
      if (err === null) {
        this.log({ level: 'error', msg: 'sign failed', err: (e as Error).message });
        send(res, 500, { error: 'internal', message: 'the signer could not sign this request; see its log' });
        return;
      }
      this.log({ level: 'warn', msg: 'refused', status: err.status, error: err.code, reason: err.message, client: req.socket.remoteAddress });
      send(res, err.status, { error: err.code, message: err.message });
    }
  }

  /** Who may get `identity`: a client certificate for exactly that identity, or a token whose patterns allow it. */
  private async authorize(req: IncomingMessage, identity: string): Promise<string> {
    const socket = req.socket as TLSSocket;
    // A certificate the TLS layer verified against this CA, valid now, of this trust domain.
    const peer = socket.getPeerX509Certificate() !== undefined ? inboundPeer(socket, this.material) : null;
    if (peer !== null && peer.ok && peer.identity === identity) return 'certificate';
    const auth = req.headers['authorization'];
    const bearer = typeof auth === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1] : undefined;
    if (bearer === undefined) {
      if (peer !== null && peer.ok)
        throw new HttpError(403, 'forbidden', `a certificate for ${peer.identity ?? '?'} may renew only its own identity, not ${identity}`);
      throw new HttpError(
        401,
        'unauthenticated',
        'send a bootstrap token (Authorization: Bearer ...) or renew with a valid client certificate for this identity',
      );
    }
    await this.reloadTokens(false);
    const digest = digestOf(bearer);
    // Compare against every entry in constant time (no early exit on the first match).
    let entry: TokenEntry | null = null;
    for (const t of this.tokens) if (timingSafeEqual(t.digest, digest) && entry === null) entry = t;
    if (entry === null) throw new HttpError(401, 'unauthenticated', 'unknown token');
    if (!entry.match(identity)) throw new HttpError(403, 'forbidden', `this token does not allow ${identity}`);
    return `token ${entry.digest.toString('hex').slice(0, 8)}`;
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (d: Buffer) => {
      n += d.length;
      if (n > MAX_BODY_BYTES) {
        reject(new HttpError(413, 'payload_too_large', `at most ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      parts.push(d);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
