// node:tls options for the data plane, built from TlsMaterial. Outbound: one SecureContext per
// material (every connection reuses it), the peer checked by SPIFFE URI SAN — never by DNS
// name — and a per-endpoint session cache for resumption. Inbound: requestCert +
// rejectUnauthorized against the trust bundle, with session tickets whose keys every inbound
// thread shares and that change when the trust bundle changes.

import { createHmac, randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { materialKey, type TlsMaterial } from './material.js';
import { compileIdentityPatterns, peerSpiffeId, type IdentityMatcher } from './spiffe.js';

/** The error an outbound connection fails with when the server's SPIFFE ID is not the expected one. */
export class IdentityMismatchError extends Error {
  readonly code = 'upstream_identity_mismatch';
  constructor(
    /** The server's SPIFFE ID, or null when its certificate carries none. */
    readonly peer: string | null,
    readonly expected: readonly string[],
  ) {
    super(`upstream_identity_mismatch: server is ${peer ?? 'without a SPIFFE ID'}, expected ${expected.join(' or ')}`);
    this.name = 'IdentityMismatchError';
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
 * `expected` (exact IDs or "prefix/*" patterns); otherwise the socket fails with an
 * IdentityMismatchError (message starts "upstream_identity_mismatch:") before any byte is sent.
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
      return peer !== null && exp.match(peer) ? undefined : new IdentityMismatchError(peer, exp.list);
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

/** Forget every remembered client session (e.g. after a root was distrusted). */
export function clearSessions(): void {
  sessions.clear();
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
  /** How long a session may be resumed, s (default 300). A resumed session skips re-verifying the client chain. */
  readonly sessionTimeoutSeconds?: number;
}

/**
 * Options for `tls.createServer` / `server.setSecureContext` (on rotation): our leaf, the trust
 * bundle as `ca`, `requestCert` + `rejectUnauthorized` (a client without a valid certificate
 * fails the handshake; the server never sees its bytes), session tickets on. Ticket keys are
 * derived from the seed and the trust bundle, so a changed bundle invalidates old tickets and
 * every client chain is checked against the new one.
 */
export function serverTlsOptions(m: TlsMaterial, params: ServerTlsParams = {}): tls.TlsOptions {
  const seed = params.ticketKeySeed ?? (threadSeed ??= newTicketKeySeed());
  return {
    cert: m.certPem,
    key: m.keyPem,
    ca: m.trustBundlePem,
    requestCert: true,
    rejectUnauthorized: true,
    ticketKeys: createHmac('sha384', seed).update(m.trustBundlePem).digest(), // 48 bytes, as node wants
    sessionTimeout: params.sessionTimeoutSeconds ?? 300,
  };
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
