// Certificates and mTLS for tests: a throw-away CA in a temp dir, leaves it issues, files-mode
// material written the way secret managers write it, the `tls:` sources of a sidecar config, and
// two direct clients with a certificate of their own (one request; a bare handshake).

import { X509Certificate } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { initCa, issueLeaf, type Ca, type IssuedCert, type LeafRequest } from '../../src/tls/ca.js';
import { tempDir } from './live.js';

export const TRUST_DOMAIN = 'cluster.local';
export const spiffe = (sa: string, ns = 'default'): string => `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`;
export const WEB = spiffe('web');
export const API = spiffe('api');
/** A federated trust domain (tls.federation) and its workloads, for the per-trust-domain tests. */
export const PARTNER = 'partner.example';
export const partnerSpiffe = (sa: string): string => `spiffe://${PARTNER}/ns/p/sa/${sa}`;
export const HOUR_MS = 3_600_000;
/** 12.6 s leaves, as `ttl_hours`: a sidecar renews every ~6.3 s (at half the lifetime). */
export const SHORT_TTL_HOURS = 0.0035;

/** A fresh embedded CA in a temp dir (removed by closeAll). */
export async function newCa(trustDomain = TRUST_DOMAIN): Promise<Ca> {
  return initCa(path.join(tempDir(), 'ca'), trustDomain);
}

/** A leaf issued by `ca` (default lifetime 1 h). */
export function leaf(ca: Ca, identity: string, extra: Omit<LeafRequest, 'identity'> = {}): IssuedCert {
  return issueLeaf(ca, { ttlHours: 1, ...extra, identity });
}

/**
 * A leaf for `identity` signed by `ca`'s root whatever trust domain that root is for: a forgery
 * when they differ (a CA signs what it is asked to; only the relying side can refuse it).
 */
export function forgedLeaf(ca: Ca, identity: string): IssuedCert {
  const trustDomain = /^spiffe:\/\/([^/]+)/.exec(identity)?.[1];
  if (trustDomain === undefined) throw new Error(`not a SPIFFE ID: ${identity}`);
  return leaf({ ...ca, trustDomain }, identity);
}

/** Writes `text` to `file` atomically (temp file + rename), as secret managers do. */
export function replaceFile(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}

export interface TlsFiles {
  readonly trustBundle: string;
  readonly cert: string;
  readonly key: string;
}

/** Writes a trust bundle and a leaf into `dir` (files-mode material); returns the paths. */
export function writeTlsFiles(dir: string, bundlePem: string, l: Pick<IssuedCert, 'certPem' | 'keyPem'>): TlsFiles {
  const files = { trustBundle: path.join(dir, 'bundle.pem'), cert: path.join(dir, 'leaf.pem'), key: path.join(dir, 'leaf.key') };
  replaceFile(files.trustBundle, bundlePem);
  replaceFile(files.key, l.keyPem);
  replaceFile(files.cert, l.certPem);
  return files;
}

/** Serial (upper-case hex, as /certs reports it) of a PEM certificate. */
export function serialOf(certPem: string): string {
  return new X509Certificate(certPem).serialNumber.toUpperCase();
}

export interface Federation {
  readonly trust_domain: string;
  readonly bundle: string;
}

/** A sidecar config's `tls:` section: embedded CA, files, or a signer; federation optional. */
export type TlsSource = (
  | { ca: { dir: string; ttl_hours?: number } }
  | { trust_bundle: string; cert: string; key: string }
  | { signer: { address: string; ca_bundle: string; token_file: string; ttl_hours?: number } }
) & { federation?: readonly Federation[] };

export function caSource(ca: Ca | string, ttlHours?: number): TlsSource {
  const dir = typeof ca === 'string' ? ca : ca.dir;
  return { ca: ttlHours === undefined ? { dir } : { dir, ttl_hours: ttlHours } };
}

export function filesSource(f: TlsFiles): TlsSource {
  return { trust_bundle: f.trustBundle, cert: f.cert, key: f.key };
}

// ---------------------------------------------------------------------------------------------
// Direct mTLS clients (no sidecar): our own certificate, straight to an inbound listener

export interface DirectCreds {
  /** Roots to verify the server with. */
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

export type DirectResult =
  | {
      readonly ok: true;
      readonly status: number;
      readonly headers: http.IncomingHttpHeaders;
      readonly body: string;
      /** The server's certificate. */
      readonly serverCert: X509Certificate | undefined;
      /** The TLS session, to resume with (`o.session`) on a later request. */
      readonly session: Buffer | undefined;
      /** Whether this connection resumed `o.session`. */
      readonly resumed: boolean;
    }
  | { readonly ok: false; readonly error: string };

/**
 * One request on a fresh TLS connection (no agent, no session reuse) to 127.0.0.1:port. The
 * server certificate is verified against `creds.ca` (its DNS name is not checked: SPIFFE IDs
 * only). Always resolves: `ok: false` with the error when there is no HTTP response.
 */
export function directRequest(
  port: number,
  creds: DirectCreds,
  o: { method?: string; path?: string; headers?: Record<string, string>; timeoutMs?: number; session?: Buffer | undefined } = {},
): Promise<DirectResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: DirectResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        method: o.method ?? 'GET',
        path: o.path ?? '/',
        headers: o.headers,
        agent: false,
        ca: creds.ca,
        ...(creds.cert !== undefined ? { cert: creds.cert, key: creds.key } : {}),
        checkServerIdentity: () => undefined,
        rejectUnauthorized: true,
        ...(o.session !== undefined ? { session: o.session } : {}),
      },
      (res) => {
        const parts: Buffer[] = [];
        const socket = res.socket as tls.TLSSocket;
        const serverCert = socket.getPeerX509Certificate();
        const resumed = socket.isSessionReused();
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () =>
          finish({
            ok: true,
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts).toString('utf8'),
            serverCert,
            session: socket.getSession(),
            resumed,
          }),
        );
        res.on('error', (e) => finish({ ok: false, error: e.message }));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, error: 'timeout' });
    }, o.timeoutMs ?? 5000);
    req.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: e.code ?? e.message }));
    req.end();
  });
}

/** The status of a GET `path` on a fresh connection presenting leaf `l` (the server verified against `bundlePem`), or `refused (<error>)` when no response came. */
export async function statusPresenting(port: number, bundlePem: string, l: Pick<IssuedCert, 'certPem' | 'keyPem'>, path: string): Promise<number | string> {
  const r = await directRequest(port, { ca: bundlePem, cert: l.certPem, key: l.keyPem }, { path });
  return r.ok ? r.status : `refused (${r.error})`;
}

/**
 * A bare TLS connection that never sends a byte. `open` once the server has accepted the
 * handshake: under TLS 1.3 it judges the client certificate after the client's Finished and only
 * then sends a session ticket, so the client's 'session' event is the server's acceptance.
 * `closed` with the error the client saw when the server refused during the handshake, before
 * any HTTP request existed. `timeoutMs` only bounds a server that does neither.
 */
export function handshakeOnly(
  port: number,
  creds: DirectCreds,
  timeoutMs = 10_000,
): Promise<{ outcome: 'open' | 'timeout' } | { outcome: 'closed'; error: string | null }> {
  return new Promise((resolve) => {
    let error: string | null = null;
    let done = false;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: creds.ca,
      ...(creds.cert !== undefined ? { cert: creds.cert, key: creds.key } : {}),
      checkServerIdentity: () => undefined,
    });
    const finish = (r: { outcome: 'open' | 'timeout' } | { outcome: 'closed'; error: string | null }): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ outcome: 'timeout' }), timeoutMs);
    socket.on('session', () => finish({ outcome: 'open' }));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on('close', () => finish({ outcome: 'closed', error }));
  });
}
