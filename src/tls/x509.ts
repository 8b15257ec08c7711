// Building and reading X.509 certificates. node-forge encodes the TBSCertificate parts it is
// good at (names, extensions); the public key's SubjectPublicKeyInfo comes straight from
// node:crypto's DER export (forge cannot represent EC keys), node:crypto signs the TBS DER
// (ECDSA and RSA, ~20x faster than forge), and a few lines of DER glue assemble the result.
// Reading certificates is cert_read.ts (node:crypto's X509Certificate; workers load only that).

import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import forge from 'node-forge';

export type KeyType = 'ec-p256' | 'rsa-2048';
export const KEY_TYPES: readonly KeyType[] = ['ec-p256', 'rsa-2048'];
/** Default leaf and root key type (the numbers behind it are in ca.ts's header). */
export const DEFAULT_KEY_TYPE: KeyType = 'ec-p256';

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** A new key pair, synchronously (sign_worker.ts runs it in the piscina pool, off the main thread). */
export function generateKeySync(type: KeyType): KeyPair {
  return type === 'ec-p256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 });
}

/** Our KeyType for a key, or null when it is neither P-256 nor RSA-2048. */
export function keyTypeOf(key: KeyObject): KeyType | null {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1') return 'ec-p256';
  if (key.asymmetricKeyType === 'rsa' && d?.modulusLength === 2048) return 'rsa-2048';
  return null;
}

// ---- DER glue --------------------------------------------------------------------------

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One DER TLV. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

const SEQUENCE = 0x30;
const toDer = (a: forge.asn1.Asn1): Buffer => Buffer.from(forge.asn1.toDer(a).getBytes(), 'binary');

/** A DER OBJECT IDENTIFIER. */
export function oid(dotted: string): Buffer {
  return tlv(0x06, Buffer.from(forge.asn1.oidToDer(dotted).getBytes(), 'binary'));
}

/** AlgorithmIdentifier for the signature a key of this type makes (SHA-256 in both cases). */
export function signatureAlgorithm(type: KeyType): Buffer {
  return type === 'ec-p256'
    ? tlv(SEQUENCE, oid('1.2.840.10045.4.3.2')) // ecdsa-with-SHA256, parameters absent (RFC 5758)
    : tlv(SEQUENCE, Buffer.concat([oid('1.2.840.113549.1.1.11'), Buffer.from([0x05, 0x00])])); // sha256WithRSAEncryption, NULL
}

function time(d: Date): Buffer {
  // RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(forge.asn1.dateToUtcTime(d), 'latin1'))
    : tlv(0x18, Buffer.from(forge.asn1.dateToGeneralizedTime(d), 'latin1'));
}

// ---- building ------------------------------------------------------------------------

/** 128 random bits as a positive, minimally encoded DER INTEGER body (16 bytes, first in 0x01..0x7f). */
export function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f || 0x01;
  return b;
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function subjectKeyId(publicKey: KeyObject): Buffer {
  let bits: Buffer;
  if (publicKey.asymmetricKeyType === 'rsa') {
    bits = publicKey.export({ type: 'pkcs1', format: 'der' });
  } else {
    const jwk = publicKey.export({ format: 'jwk' });
    bits = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
  }
  return createHash('sha1').update(bits).digest();
}

export interface NameAttr {
  readonly shortName: 'CN' | 'O' | 'OU';
  readonly value: string;
}

/** DER of an X.501 Name built from attributes (UTF8String values). */
export function encodeName(attrs: readonly NameAttr[]): Buffer {
  const c = forge.pki.createCertificate();
  // @types/node-forge types valueTagClass as asn1.Class, but forge reads it as the value's tag (asn1.Type);
  // the cast is needed for tsc (the rule does not see the contextual type).
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- see above
  c.setSubject(attrs.map((a) => ({ shortName: a.shortName, value: a.value, valueTagClass: forge.asn1.Type.UTF8 as number })));
  return toDer(forge.pki.distinguishedNameToAsn1(c.subject));
}

/** DER of the subject Name inside a certificate (byte-exact, for use as a leaf's issuer). */
export function subjectNameDer(certDer: Buffer): Buffer {
  const cert = forge.asn1.fromDer(certDer.toString('binary'));
  const tbs = (cert.value as forge.asn1.Asn1[])[0];
  const fields = tbs?.value as forge.asn1.Asn1[] | undefined;
  // [0] version, serial, sigAlg, issuer, validity, subject
  const subject = fields?.[fields[0]?.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC ? 5 : 4];
  if (subject === undefined) throw new Error('certificate has no subject');
  return toDer(subject);
}

/** forge extension descriptors (as accepted by forge's setExtensions), plus raw key ids. */
export interface CertSpec {
  readonly serial: Buffer;
  readonly issuerName: Buffer;
  readonly subjectName: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: KeyObject;
  /** forge extension objects, e.g. `{name: 'basicConstraints', cA: true}`. */
  readonly extensions: readonly Record<string, unknown>[];
  /** The issuer's subject key id, written as authorityKeyIdentifier (omitted when null). */
  readonly authorityKeyId: Buffer | null;
  readonly signingKey: KeyObject;
}

function encodeExtensions(spec: CertSpec): Buffer {
  const c = forge.pki.createCertificate();
  c.setExtensions(spec.extensions.map((e) => ({ ...e })));
  const exts = c.extensions as Array<{ id: string; critical?: boolean; value: string | forge.asn1.Asn1 }>;
  exts.push({ id: '2.5.29.14', critical: false, value: tlv(0x04, subjectKeyId(spec.publicKey)).toString('binary') });
  if (spec.authorityKeyId !== null) {
    exts.push({ id: '2.5.29.35', critical: false, value: tlv(SEQUENCE, tlv(0x80, spec.authorityKeyId)).toString('binary') });
  }
  const pki = forge.pki as unknown as { certificateExtensionsToAsn1(e: unknown[]): forge.asn1.Asn1 };
  return toDer(pki.certificateExtensionsToAsn1(exts));
}

/** Build and sign a certificate; returns its DER. */
export function buildCertificate(spec: CertSpec): Buffer {
  const signerType = keyTypeOf(spec.signingKey);
  if (signerType === null) throw new Error('signing key must be EC P-256 or RSA-2048');
  const alg = signatureAlgorithm(signerType);
  const tbs = tlv(
    SEQUENCE,
    Buffer.concat([
      Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]), // [0] EXPLICIT version v3
      tlv(0x02, spec.serial),
      alg,
      spec.issuerName,
      tlv(SEQUENCE, Buffer.concat([time(spec.notBefore), time(spec.notAfter)])),
      spec.subjectName,
      spec.publicKey.export({ type: 'spki', format: 'der' }),
      encodeExtensions(spec),
    ]),
  );
  const signature = sign('sha256', tbs, spec.signingKey); // ECDSA: DER Ecdsa-Sig-Value, as X.509 wants
  return tlv(SEQUENCE, Buffer.concat([tbs, alg, tlv(0x03, Buffer.concat([Buffer.from([0x00]), signature]))]));
}

export function derToPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}
