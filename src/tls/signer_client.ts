// The sidecar's side of the signer protocol (signer.ts): POST a CSR to `outrigger ca serve` over
// HTTPS, verifying the signer by the CA bundle and its SPIFFE ID (never a DNS name), and
// authenticating with our current certificate (renewal) or the bootstrap token. Main thread only.

import https from 'node:https';
import { readFile } from 'node:fs/promises';
import { checkPrivateFile } from './key_files.js';
import { peerSpiffeId } from './spiffe.js';

/** The signer's own SPIFFE ID in a trust domain, unless configured otherwise. */
export function defaultSignerIdentity(trustDomain: string): string {
  return `spiffe://${trustDomain}/outrigger/signer`;
}

export interface SignerEndpoint {
  /** `host:port` of `outrigger ca serve`. */
  readonly address: string;
  /** PEM file of the roots that sign the signer's certificate (the CA's ca.pem). */
  readonly caBundlePath: string;
  /** The SPIFFE ID the signer must present. */
  readonly signerIdentity: string;
  /** File holding the bootstrap token (trimmed). */
  readonly tokenFile: string;
  readonly allowInsecureKeyPermissions?: boolean;
  /** Whole request, ms (default 10 s). */
  readonly timeoutMs?: number;
}

export interface SignedCertificate {
  readonly certificate: string;
  readonly trustBundle: string;
  readonly identity: string;
  readonly serial: string;
}

/** Why a signing request failed: `unreachable` (network, TLS, timeout), `refused` (4xx: the signer said no), `failed` (5xx, bad answer). */
export class SignerError extends Error {
  constructor(
    readonly kind: 'unreachable' | 'refused' | 'failed',
    readonly status: number | null,
    message: string,
  ) {
    super(message);
    this.name = 'SignerError';
  }
}

/** How to authenticate one request: our current certificate, or the bootstrap token. */
export type SignerCredentials = { readonly kind: 'certificate'; readonly certPem: string; readonly keyPem: string } | { readonly kind: 'token' };

export async function requestSignature(ep: SignerEndpoint, csrPem: string, ttlHours: number, creds: SignerCredentials): Promise<SignedCertificate> {
  const ca = await readFile(ep.caBundlePath, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new SignerError('failed', null, `tls.signer.ca_bundle ${ep.caBundlePath}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (creds.kind === 'token') {
    await checkPrivateFile(ep.tokenFile, { label: 'tls.signer.token_file', allowInsecure: ep.allowInsecureKeyPermissions === true });
    const token = (
      await readFile(ep.tokenFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new SignerError('failed', null, `tls.signer.token_file ${ep.tokenFile}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
      })
    ).trim();
    if (token === '') throw new SignerError('failed', null, `tls.signer.token_file ${ep.tokenFile} is empty`);
    headers['authorization'] = `Bearer ${token}`;
  }
  const colon = ep.address.lastIndexOf(':');
  const host = ep.address.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(ep.address.slice(colon + 1));
  const body = JSON.stringify({ csr: csrPem, ttl_hours: ttlHours });
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host,
        port,
        method: 'POST',
        path: '/v1/sign',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        agent: false,
        ca,
        ...(creds.kind === 'certificate' ? { cert: creds.certPem, key: creds.keyPem } : {}),
        rejectUnauthorized: true,
        checkServerIdentity: (_h, cert) => {
          const id = peerSpiffeId(cert);
          return id === ep.signerIdentity
            ? undefined
            : new Error(`the signer at ${ep.address} is ${id ?? 'without a SPIFFE ID'}, expected ${ep.signerIdentity}`);
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('error', (e) => reject(new SignerError('unreachable', null, `signer ${ep.address}: ${e.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            // reported below
          }
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            const why = `signer ${ep.address} answered ${status} ${fieldText(json['error'], '')}: ${fieldText(json['message'], text.slice(0, 200))}`;
            reject(new SignerError(status >= 400 && status < 500 ? 'refused' : 'failed', status, why));
            return;
          }
          const { certificate, trust_bundle: trustBundle, identity, serial } = json;
          if (typeof certificate !== 'string' || typeof trustBundle !== 'string' || typeof identity !== 'string') {
            reject(new SignerError('failed', status, `signer ${ep.address}: an answer without certificate / trust_bundle / identity`));
            return;
          }
          resolve({ certificate, trustBundle, identity, serial: fieldText(serial, '') });
        });
      },
    );
    req.setTimeout(ep.timeoutMs ?? 10_000, () => req.destroy(new Error(`no answer within ${ep.timeoutMs ?? 10_000} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(
        new SignerError(
          'unreachable',
          null,
          `signer ${ep.address} unreachable: ${e.code ?? e.message}${e.code !== undefined && e.message !== e.code ? ` (${e.message})` : ''}`,
        ),
      ),
    );
    req.end(body);
  });
}

/** A field of the signer's JSON answer as text: strings and numbers as they are, `or` when absent, anything else as JSON. */
function fieldText(v: unknown, or: string): string {
  if (v === undefined || v === null) return or;
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}
