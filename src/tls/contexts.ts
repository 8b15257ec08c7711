// node:tls options for the data plane, built from TlsMaterial. Outbound: one SecureContext per
// material (every connection reuses it), the peer checked by SPIFFE URI SAN — never by DNS
// name — and a session cache for resumption keyed by endpoint, expected identities and our own
// certificate. Inbound: requestCert + rejectUnauthorized against the trust bundle, session
// tickets and session ids bound to one listener (every thread serving it shares the keys), and
// the per-connection check (inboundPeer) that a resumed session cannot skip.

import { X509Certificate, createHmac, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { materialKey, type TlsMaterial } from './material.js';
import { compileIdentityPatterns, peerSpiffeId, type IdentityMatcher } from './spiffe.js';
import { peerChain, trustDomainProblem } from './trust_domains.js';

/** The error an outbound connection fails with when the server's SPIFFE ID is not the expected one. */
export class IdentityMismatchError extends Error {
  readonly code = 'upstream_identity_mismatch';
  constructor(
    /** The server's SPIFFE ID, or null when its certificate carries none. */
    readonly peer: string | null,
    readonly expected: readonly string[],
    /** Why a matching ID still does not count (its root does not vouch for its trust domain). */
    readonly trustProblem: string | null = null,
  ) {
    super(
      trustProblem === null
        ? `upstream_identity_mismatch: server is ${peer ?? 'without a SPIFFE ID'}, expected ${expected.join(' or ')}`
        : `upstream_identity_mismatch: server claims ${peer ?? '?'}, but ${trustProblem}`,
    );
    this.name = 'IdentityMismatchError';
  }

  /** What went wrong, without the code (the ProxyError this becomes carries the code itself). */
  get detail(): string {
    return this.trustProblem === null
      ? `server is ${this.peer ?? 'without a SPIFFE ID'}, expected ${this.expected.join(' or ')}`
      : `server claims ${this.peer ?? '?'}, but ${this.trustProblem}`;
  }
}

// ---- small bounded caches --------------------------------------------------------------

/** A Map that forgets its oldest entry beyond `max` (insertion order; get() refreshes). */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: K, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value as K);
  }
  clear(): void {
    this.map.clear();
  }
}

// Old materials stay referenced only while a rotation overlaps; a handful is plenty.
const clientContexts = new Lru<string, tls.SecureContext>(8);
const matchers = new Lru<string, { list: readonly string[]; match: IdentityMatcher }>(256);
const sessions = new Lru<string, Buffer>(4096);

/** The client SecureContext for a material (created once, shared by every connection). */
export function clientSecureContext(m: TlsMaterial): tls.SecureContext {
  const key = materialKey(m);
  let ctx = clientContexts.get(key);
  if (ctx === undefined) {
    ctx = tls.createSecureContext({ cert: m.certPem, key: m.keyPem, ca: m.trustBundlePem });
    clientContexts.set(key, ctx);
  }
  return ctx;
}

const leaves = new Lru<string, X509Certificate>(256);

/** The X509Certificate of a detailed peer certificate (from checkServerIdentity), parsed once per certificate. */
function leafOf(cert: tls.PeerCertificate): X509Certificate {
  let x = leaves.get(cert.fingerprint256);
  if (x === undefined) {
    x = new X509Certificate(cert.raw);
    leaves.set(cert.fingerprint256, x);
  }
  return x;
}

function expectedMatcher(expected: string | readonly string[]): { key: string; list: readonly string[]; match: IdentityMatcher } {
  const list = typeof expected === 'string' ? [expected] : expected;
  const key = list.join('\n');
  let m = matchers.get(key);
  if (m === undefined) {
    if (list.length === 0) throw new Error('clientTlsOptions: no expected identities');
    m = { list: [...list], match: compileIdentityPatterns(list) };
    matchers.set(key, m);
  }
  return { key, ...m };
}

function sessionKey(m: TlsMaterial, expectedKey: string, endpoint: string): string {
  return `${materialKey(m)}|${expectedKey}|${endpoint}`;
}

/**
 * Options for `tls.connect` (spread them next to host/port/onread): our leaf via a shared
 * SecureContext, the trust bundle, `rejectUnauthorized: true`, and a `checkServerIdentity`
 * that ignores DNS names and accepts the server only when its SPIFFE URI SAN matches one of
 * `expected` (exact IDs or identity patterns) and the root its chain ends at vouches for that
 * ID's trust domain; otherwise the socket fails with an IdentityMismatchError (message starts
 * "upstream_identity_mismatch:") before any byte is sent.
 *
 * With `endpoint` (e.g. "10.0.0.5:15006"), a session remembered by rememberSessions for the
 * same endpoint, material and expected identities is offered for resumption. Node skips
 * checkServerIdentity on a resumed session; that is safe because only a session that passed
 * the check under exactly these expectations is ever offered.
 */
export function clientTlsOptions(m: TlsMaterial, expected: string | readonly string[], endpoint?: string): tls.ConnectionOptions {
  const exp = expectedMatcher(expected);
  const opts: tls.ConnectionOptions = {
    secureContext: clientSecureContext(m),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      const peer = peerSpiffeId(cert);
      if (peer === null || !exp.match(peer)) return new IdentityMismatchError(peer, exp.list);
      // The chain verified against every root we trust; the one it ends at must vouch for the
      // server's trust domain (a root of trust domain A cannot vouch for an identity in B).
      const problem = trustDomainProblem(m, peer, leafOf(cert), () => peerChain(cert));
      return problem === null ? undefined : new IdentityMismatchError(peer, exp.list, problem);
    },
  };
  if (endpoint !== undefined) {
    const session = sessions.get(sessionKey(m, exp.key, endpoint));
    if (session !== undefined) opts.session = session;
  }
  return opts;
}

/**
 * Remember the TLS sessions (tickets) a client socket receives, for the next clientTlsOptions
 * call with the same material, expected identities and endpoint. Call right after tls.connect.
 */
export function rememberSessions(socket: tls.TLSSocket, m: TlsMaterial, expected: string | readonly string[], endpoint: string): void {
  const key = sessionKey(m, expectedMatcher(expected).key, endpoint);
  socket.on('session', (session: Buffer) => sessions.set(key, session));
}

// ---- inbound -------------------------------------------------------------------------

/** A random 32-byte seed for session ticket keys; make one on the main thread, give it to every inbound thread. */
export function newTicketKeySeed(): Buffer {
  return randomBytes(32);
}

let threadSeed: Buffer | null = null;

export interface ServerTlsParams {
  /**
   * Seed for the session ticket keys. Threads serving one listener must share it, or a client
   * resumes only when it lands on the thread that issued its ticket. Default: one per thread.
   */
  readonly ticketKeySeed?: Buffer;
  /**
   * The listener these options are for. Ticket keys and the session-id context are derived from
   * it (with the mode and the trust material), so a session made on one listener never resumes
   * on another — a ticket from a `tls` listener cannot open an `mtls` one. Default "".
   */
  readonly listener?: string;
  /** `mtls` (default): a client certificate is required and verified; `tls`: server-side TLS only. */
  readonly mode?: 'mtls' | 'tls';
  /** How long a session may be resumed, s (default 300). A resumed session never outlives the client certificate (see inboundPeer). */
  readonly sessionTimeoutSeconds?: number;
}

/** What the session secrets of a listener depend on: its name, its mode and every trusted root. */
function sessionBinding(m: TlsMaterial, params: ServerTlsParams): string {
  return `${params.listener ?? ''}\0${params.mode ?? 'mtls'}\0${m.trustBundlePem}`;
}

/**
 * Options for `tls.createServer` / `server.setSecureContext` (on rotation): our leaf, the trust
 * bundle as `ca`, and for `mtls` `requestCert` + `rejectUnauthorized` (a client without a valid
 * certificate fails the full handshake). Session tickets stay on, with keys and a session-id
 * context derived from the seed, the listener's name and mode, and the trust bundle: a ticket
 * made by another listener (or under another bundle) does not decrypt here, and a session id
 * from elsewhere does not match, so the client goes through a full handshake. A resumed session
 * skips OpenSSL's client-certificate checks: the listener must still run inboundPeer on every
 * connection.
 */
export function serverTlsOptions(m: TlsMaterial, params: ServerTlsParams = {}): tls.TlsOptions {
  const seed = params.ticketKeySeed ?? (threadSeed ??= newTicketKeySeed());
  const binding = sessionBinding(m, params);
  const mtls = (params.mode ?? 'mtls') === 'mtls';
  return {
    cert: m.certPem,
    key: m.keyPem,
    ca: m.trustBundlePem,
    requestCert: mtls,
    rejectUnauthorized: mtls,
    ticketKeys: createHmac('sha384', seed).update('outrigger ticket keys\0').update(binding).digest(), // 48 bytes, as node wants
    // OpenSSL keeps at most 32 bytes of session-id context; node's default is one per process.
    sessionIdContext: createHmac('sha256', seed).update('outrigger session id context\0').update(binding).digest('hex').slice(0, 32),
    sessionTimeout: params.sessionTimeoutSeconds ?? 300,
  };
}

/**
 * The TLS options of an inbound listener's server (node:https, the strict engine, a tcp listener):
 * serverTlsOptions (client certificates required on `mtls`) plus the handshake timeout. Throws,
 * naming the listener, when this sidecar has no certificate loaded.
 */
export function listenerTlsOptions(listener: string, m: TlsMaterial | null, params: ServerTlsParams, handshakeMs: number): tls.TlsOptions {
  if (m === null) throw new Error(`listener ${listener}: TLS needs this sidecar's certificate, and none is loaded`);
  return { ...serverTlsOptions(m, params), handshakeTimeout: handshakeMs };
}

/** An accepted inbound peer (its SPIFFE ID, or null when its certificate has none), or why it is refused. */
export type InboundPeer = { readonly ok: true; readonly identity: string | null } | { readonly ok: false; readonly reason: string };

const validityCache = new Lru<string, readonly [number, number]>(1024);

/** A certificate's validity as [notBefore, notAfter] ms, parsed once per certificate. */
function validityMs(cert: X509Certificate): readonly [number, number] {
  const key = cert.fingerprint256;
  let v = validityCache.get(key);
  if (v === undefined) {
    v = [Date.parse(cert.validFrom), Date.parse(cert.validTo)];
    validityCache.set(key, v);
  }
  return v;
}

/**
 * The check an `mtls` listener runs on every connection in 'secureConnection', resumed or not:
 * OpenSSL verified a client chain (`socket.authorized`), a client certificate is present — a
 * TLS 1.3 session resumed without one counts as "authorized" in node — and that certificate is
 * valid now (a resumed session is not re-verified, so an expired certificate would otherwise
 * live on until the session times out), and it carries a SPIFFE ID whose trust domain is
 * vouched for by the root its chain ends at (trust_domains.ts). The caller destroys the socket
 * when `ok` is false and counts it as a refused handshake.
 */
export function inboundPeer(socket: tls.TLSSocket, m: TlsMaterial | null, nowMs = Date.now()): InboundPeer {
  if (!socket.authorized) return { ok: false, reason: String(socket.authorizationError ?? 'UNAUTHORIZED') };
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return { ok: false, reason: 'CERTIFICATE_REQUIRED' };
  const [notBefore, notAfter] = validityMs(cert);
  if (!(nowMs <= notAfter)) return { ok: false, reason: 'CERT_HAS_EXPIRED' };
  if (!(nowMs >= notBefore)) return { ok: false, reason: 'CERT_NOT_YET_VALID' };
  const identity = peerSpiffeId(cert);
  if (m === null) return { ok: false, reason: 'NO_TRUST_MATERIAL' };
  // SPIFFE bundle semantics: the root the chain ends at must vouch for the ID's trust domain.
  if (trustDomainProblem(m, identity, cert, () => peerChain(socket.getPeerCertificate(true))) !== null) {
    return { ok: false, reason: identity === null ? 'NO_SPIFFE_ID' : 'TRUST_DOMAIN_MISMATCH' };
  }
  return { ok: true, identity };
}

/**
 * The peer's SPIFFE ID on an established (server or client) socket, or null. Read it once per
 * connection (e.g. in 'secureConnection') and keep it; it works on resumed sessions too.
 */
export function socketPeerIdentity(socket: tls.TLSSocket): string | null {
  return peerSpiffeId(socket.getPeerX509Certificate());
}

/**
 * Why an inbound handshake was refused, for logs and stats, from a 'tlsClientError' (err,
 * socket). Node finishes the TLS exchange for a client whose certificate fails verification
 * and then drops it before 'secureConnection' (the client sees a close, not an alert), so the
 * error itself often says only "socket hang up"; the verification code is on the socket
 * (CERT_HAS_EXPIRED, CERT_NOT_YET_VALID, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...).
 */
export function handshakeFailureReason(err: Error, socket: tls.TLSSocket | undefined): string {
  const code = socket?.authorizationError;
  if (code !== undefined && code !== null) return String(code);
  if (/peer did not return a certificate/i.test(err.message)) return 'CERTIFICATE_REQUIRED';
  return (err as NodeJS.ErrnoException).code ?? err.message.split('\n')[0] ?? 'handshake failed';
}
