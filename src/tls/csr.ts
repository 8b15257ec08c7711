// PKCS#10 certificate signing requests (RFC 2986) for the signer protocol: the sidecar makes its
// key and a CSR carrying its SPIFFE ID as the only URI SAN (extensionRequest); the signer checks
// the CSR's signature (proof that the requester holds the key) and reads the ID back. node:crypto
// has no CSR API and node-forge cannot handle EC keys, so this is a few lines of DER, built with
// x509.ts's helpers and read with a minimal strict DER reader. Main thread or pool thread.

import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { spiffeIdProblem } from './spiffe.js';
import { encodeName, keyTypeOf, oid, signatureAlgorithm, tlv, type KeyType } from './x509.js';
import { CsrError } from './issuance.js';

const SEQUENCE = 0x30;
const SET = 0x31;
const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_RSA_SHA256 = '1.2.840.113549.1.1.11';
/** A CSR bigger than this is not one of ours (an RSA-2048 CSR is ~1 KB). */
export const MAX_CSR_BYTES = 16 * 1024;

export { CsrError };

/** A CSR for `identity` (its only URI SAN), signed with `privateKey`. PEM. */
export function buildCsr(privateKey: KeyObject, publicKey: KeyObject, identity: string): string {
  const keyType = keyTypeOf(privateKey);
  if (keyType === null) throw new Error('CSR: the key must be EC P-256 or RSA-2048');
  const san = tlv(SEQUENCE, tlv(0x86, Buffer.from(identity, 'latin1'))); // GeneralNames { [6] URI }
  const extension = tlv(SEQUENCE, Buffer.concat([oid(OID_SUBJECT_ALT_NAME), tlv(0x04, san)]));
  const attribute = tlv(SEQUENCE, Buffer.concat([oid(OID_EXTENSION_REQUEST), tlv(SET, tlv(SEQUENCE, extension))]));
  const info = tlv(
    SEQUENCE,
    Buffer.concat([
      Buffer.from([0x02, 0x01, 0x00]), // version v1
      encodeName([{ shortName: 'O', value: 'outrigger' }]),
      publicKey.export({ type: 'spki', format: 'der' }),
      tlv(0xa0, attribute), // [0] IMPLICIT SET OF Attribute
    ]),
  );
  const signature = sign('sha256', info, privateKey);
  const der = tlv(SEQUENCE, Buffer.concat([info, signatureAlgorithm(keyType), tlv(0x03, Buffer.concat([Buffer.from([0x00]), signature]))]));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}

export interface ParsedCsr {
  readonly publicKey: KeyObject;
  readonly keyType: KeyType;
  /** The one SPIFFE ID in the CSR's subjectAltName. */
  readonly identity: string;
}

// ---- a strict DER reader ---------------------------------------------------------------

interface Tlv {
  readonly tag: number;
  /** Where the TLV starts (tag byte) and where its content starts / ends. */
  readonly offset: number;
  readonly start: number;
  readonly end: number;
}

function read(buf: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new CsrError('truncated DER');
  const tag = buf[offset] as number;
  let len = buf[offset + 1] as number;
  let start = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > limit) throw new CsrError('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[start + i] as number);
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new CsrError('truncated DER');
  return { tag, offset, start, end };
}

/** The TLVs directly inside a constructed one. */
function children(buf: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const t = read(buf, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new CsrError(`not a PKCS#10 CSR (${what})`);
  return t;
}

const bytes = (buf: Buffer, t: Tlv): Buffer => buf.subarray(t.offset, t.end);

/**
 * Parse and check a PEM CSR: well-formed DER, a P-256 or RSA-2048 key, a valid SHA-256
 * signature by that key over the request (proof of possession), and exactly one URI SAN that is
 * a SPIFFE ID. Throws a CsrError naming the problem.
 */
export function parseCsr(pem: string): ParsedCsr {
  const m = /^-----BEGIN CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE REQUEST-----\s*$/.exec(pem.trim() + '\n');
  if (m === null) throw new CsrError('not a PEM "CERTIFICATE REQUEST"');
  const der = Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64');
  if (der.length === 0 || der.length > MAX_CSR_BYTES) throw new CsrError('CSR is empty or too large');
  const top = expectTag(read(der, 0, der.length), SEQUENCE, 'outer SEQUENCE');
  if (top.end !== der.length) throw new CsrError('trailing bytes after the CSR');
  const [info, alg, sig, ...rest] = children(der, top);
  expectTag(info, SEQUENCE, 'certificationRequestInfo');
  expectTag(alg, SEQUENCE, 'signatureAlgorithm');
  expectTag(sig, 0x03, 'signature');
  if (rest.length > 0) throw new CsrError('not a PKCS#10 CSR (extra fields)');
  const [version, subject, spki, attributes] = children(der, info as Tlv);
  const v = expectTag(version, 0x02, 'version');
  if (v.end - v.start !== 1 || der[v.start] !== 0) throw new CsrError('unsupported CSR version');
  expectTag(subject, SEQUENCE, 'subject');
  expectTag(spki, SEQUENCE, 'subjectPKInfo');

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: bytes(der, spki as Tlv), format: 'der', type: 'spki' });
  } catch (e) {
    throw new CsrError(`unreadable public key (${(e as Error).message})`);
  }
  const keyType = keyTypeOf(publicKey);
  if (keyType === null) throw new CsrError('the key must be EC P-256 or RSA-2048');

  const algOid = expectTag(children(der, alg as Tlv)[0], 0x06, 'signature algorithm');
  const algBytes = bytes(der, algOid);
  const want = keyType === 'ec-p256' ? oid(OID_ECDSA_SHA256) : oid(OID_RSA_SHA256);
  if (!algBytes.equals(want)) throw new CsrError(`the signature must be ${keyType === 'ec-p256' ? 'ecdsa-with-SHA256' : 'sha256WithRSAEncryption'}`);
  const s = sig as Tlv;
  if (s.end - s.start < 2 || der[s.start] !== 0) throw new CsrError('bad signature BIT STRING');
  const ok = (() => {
    try {
      return verify('sha256', bytes(der, info as Tlv), publicKey, der.subarray(s.start + 1, s.end));
    } catch {
      return false;
    }
  })();
  if (!ok) throw new CsrError('the CSR signature does not verify (the requester must hold the key)');

  const uris = attributes === undefined ? [] : sanUris(der, expectTag(attributes, 0xa0, 'attributes'));
  if (uris.length !== 1) throw new CsrError(`the CSR must carry exactly one URI SAN, its SPIFFE ID (found ${uris.length})`);
  const identity = uris[0] as string;
  const problem = spiffeIdProblem(identity);
  if (problem !== null) throw new CsrError(`the CSR's URI SAN "${identity}" is not a SPIFFE ID: ${problem}`);
  return { publicKey, keyType, identity };
}

/** URIs in the subjectAltName of the extensionRequest attribute. */
function sanUris(der: Buffer, attributes: Tlv): string[] {
  const uris: string[] = [];
  const extReq = oid(OID_EXTENSION_REQUEST);
  const sanOid = oid(OID_SUBJECT_ALT_NAME);
  for (const attr of children(der, attributes)) {
    const [type, values] = children(der, expectTag(attr, SEQUENCE, 'attribute'));
    if (type === undefined || !bytes(der, type).equals(extReq)) continue;
    for (const exts of children(der, expectTag(values, SET, 'attribute values'))) {
      for (const ext of children(der, expectTag(exts, SEQUENCE, 'extensions'))) {
        const parts = children(der, expectTag(ext, SEQUENCE, 'extension'));
        if (parts[0] === undefined || !bytes(der, parts[0]).equals(sanOid)) continue;
        const value = expectTag(parts[parts.length - 1], 0x04, 'extension value');
        const names = read(der, value.start, value.end);
        for (const gn of children(der, expectTag(names, SEQUENCE, 'GeneralNames'))) {
          if (gn.tag === 0x86) uris.push(der.subarray(gn.start, gn.end).toString('latin1'));
        }
      }
    }
  }
  return uris;
}
