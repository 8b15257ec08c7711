// Reading certificates: PEM blocks, and what /certs, rotation and the data plane need to know of
// a certificate, through node:crypto's X509Certificate. Apart from x509.ts (building, with
// node-forge) so that worker threads, which only read certificates, never load node-forge.

import type { X509Certificate } from 'node:crypto';
import { peerSpiffeId } from './spiffe.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every PEM certificate block in `text`, each ending in "\n". */
export function splitPemCertificates(text: string): string[] {
  return (text.match(PEM_CERT) ?? []).map((b) => `${b}\n`);
}

/** node prints validity as "Mar 25 12:00:05 2035 GMT"; V8's Date parses that form. */
export function parseCertDate(s: string): Date {
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) throw new Error(`unreadable certificate date "${s}"`);
  return d;
}

export interface CertInfo {
  /** The SPIFFE ID in the URI SAN, or null. */
  readonly identity: string | null;
  /** Upper-case hex, as node's X509Certificate.serialNumber prints it. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subject: string;
  readonly issuer: string;
  readonly isCa: boolean;
  /** "EC P-256", "RSA 2048", ... */
  readonly key: string;
  readonly fingerprint256: string;
}

export function certInfo(cert: X509Certificate): CertInfo {
  const pk = cert.publicKey;
  const d = pk.asymmetricKeyDetails;
  const key =
    pk.asymmetricKeyType === 'ec'
      ? `EC ${d?.namedCurve === 'prime256v1' ? 'P-256' : (d?.namedCurve ?? '?')}`
      : `${(pk.asymmetricKeyType ?? '?').toUpperCase()} ${d?.modulusLength ?? ''}`.trim();
  return {
    identity: peerSpiffeId(cert),
    serial: cert.serialNumber,
    notBefore: parseCertDate(cert.validFrom),
    notAfter: parseCertDate(cert.validTo),
    subject: cert.subject.replace(/\n/g, ', '),
    issuer: cert.issuer.replace(/\n/g, ', '),
    isCa: cert.ca,
    key,
    fingerprint256: cert.fingerprint256,
  };
}
