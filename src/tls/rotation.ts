// CertificateSource: where this sidecar's TlsMaterial comes from, kept fresh. Files mode reads
// tls.trust_bundle / cert / key and re-reads them when they change (fs.watch on their
// directories, so atomic renames and Kubernetes secret symlink swaps are seen, plus a periodic
// stat; both debounced). CA mode issues our own leaf from the embedded CA (in the piscina pool)
// and re-issues it at 50% of its lifetime (single host: this process reads the root key).
// Signer mode makes our key and a CSR (piscina pool), has `outrigger ca serve` sign it (bootstrap
// token first, our current certificate for renewals) and renews at 50%; while the signer is
// unreachable the current certificate stays in force, with a warning as its end approaches. It
// never sees a root key. Main thread only: it reads files and makes keys.

import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { TlsSourceSpec } from '../config/types.js';
import { DEFAULT_LEAF_TTL_HOURS } from './issuance.js';
import type { KeyType } from './x509.js';
import { createIssuer, createKeyMaker, type Issuer } from './issuer_pool.js';
import { checkPrivateFile } from './key_files.js';
import { readFederation, type CommonSourceOptions } from './federation.js';
import { materialFromPem, materialKey, type TlsMaterial } from './material.js';
import { signerIdentityOf, signerMaterial, type SignerSourceOptions } from './signer_source.js';
import { splitPemCertificates } from './cert_read.js';
import { isoTime } from '../time.js';

export interface FilesSourceOptions extends CommonSourceOptions {
  readonly mode: 'files';
  readonly trustBundlePath: string;
  readonly certPath: string;
  readonly keyPath: string;
  /** Refuse material whose SPIFFE ID differs (e.g. node.identity); omitted = accept any. */
  readonly expectedIdentity?: string;
  /** Periodic stat interval, ms (default 5000); catches changes fs.watch misses. */
  readonly pollMs?: number;
  /** Wait this long after the last change before reading, ms (default 200), so a cert and key written one after the other arrive together. */
  readonly debounceMs?: number;
}

export interface CaSourceOptions extends CommonSourceOptions {
  readonly mode: 'ca';
  readonly caDir: string;
  /** Our SPIFFE ID (node.identity). */
  readonly identity: string;
  /** Leaf lifetime, hours (default 24; fractions allowed). */
  readonly ttlHours?: number;
  readonly keyType?: KeyType;
  /** Re-issue after this fraction of the lifetime (default 0.5). */
  readonly rotateAtFraction?: number;
  /** Issuer to use (default: a piscina pool on caDir, closed by close()). */
  readonly issuer?: Issuer;
  /** First retry delay after a failed issue, ms (default 1000, doubling up to 60 s). */
  readonly retryMs?: number;
}

export type { CommonSourceOptions, FederationSource } from './federation.js';
export type { SignerSourceOptions } from './signer_source.js';

export type CertificateSourceOptions = FilesSourceOptions | CaSourceOptions | SignerSourceOptions;

/** The certificate has less than this fraction of its lifetime left while renewals fail: /certs warns. */
const EXPIRY_WARNING_FRACTION = 0.25;

/** The admin `/certs` view. */
export interface CertsInfo {
  readonly source: 'files' | 'ca' | 'signer';
  readonly identity: string;
  readonly serial: string;
  readonly not_before: string;
  readonly not_after: string;
  readonly next_rotation: string | null;
  readonly trust_roots: number;
  /** The trust domains whose peers we accept: ours first, then federated ones. */
  readonly trust_domains: readonly string[];
  readonly rotations: number;
  readonly last_error: string | null;
  /** Failed reloads / issues / renewals so far (each kept the current certificate). */
  readonly errors_total: number;
  /** When the last issue / renewal (signer, ca) or reload (files) succeeded, ISO time. */
  readonly last_success: string | null;
  /** Seconds until not_after (negative once expired). */
  readonly expires_in_s: number;
  /**
   * Set while something needs attention: the certificate has expired, is not valid yet, or has
   * less than a quarter of its lifetime left while renewals fail (e.g. the signer is unreachable).
   */
  readonly warning: string | null;
  /** Signer mode: where certificates come from. */
  readonly signer?: { readonly address: string; readonly identity: string; readonly last_success: string | null };
}

/**
 * Source options for the compiled top-level `tls` (snapshot.tls) and node.identity. Relative
 * paths are resolved against `baseDir` (the config file's directory). Throws when ca mode has
 * no identity to issue for.
 */
export function certificateSourceOptions(spec: TlsSourceSpec, identity: string | null, baseDir = '.'): CertificateSourceOptions {
  const abs = (p: string): string => path.resolve(baseDir, p);
  const common: CommonSourceOptions = {
    ...(spec.federation.length > 0 ? { federation: spec.federation.map((f) => ({ trustDomain: f.trustDomain, bundlePath: abs(f.bundle) })) } : {}),
    ...(spec.allowInsecureKeyPermissions ? { allowInsecureKeyPermissions: true } : {}),
  };
  if (spec.mode === 'signer') {
    if (identity === null) throw new Error('tls.signer needs node.identity (the SPIFFE ID to ask the signer for)');
    return {
      mode: 'signer',
      address: spec.address,
      caBundlePath: abs(spec.caBundle),
      tokenFile: abs(spec.tokenFile),
      ...(spec.signerIdentity !== null ? { signerIdentity: spec.signerIdentity } : {}),
      identity,
      ttlHours: spec.ttlHours,
      keyType: spec.keyType,
      ...common,
    };
  }
  if (spec.mode === 'ca') {
    if (identity === null) throw new Error('tls.ca needs node.identity (the SPIFFE ID to issue our leaf for)');
    return { mode: 'ca', caDir: abs(spec.dir), identity, ttlHours: spec.ttlHours, keyType: spec.keyType, ...common };
  }
  return {
    mode: 'files',
    trustBundlePath: abs(spec.trustBundle),
    certPath: abs(spec.cert),
    keyPath: abs(spec.key),
    ...(identity !== null ? { expectedIdentity: identity } : {}),
    ...common,
  };
}

// setTimeout fires at once for delays beyond 2^31-1 ms (~24.8 days); wait in steps instead.
const MAX_TIMER_MS = 2_147_483_647;

interface SourceEvents {
  update: [TlsMaterial];
  error: [Error];
}

/**
 * The delay before the next try after a failed renewal: doubling from baseMs up to capMs, and
 * never more than a quarter of the certificate's time left (at least baseMs), so that the tries
 * come closer together as expiry nears instead of one backoff step jumping past it (renewing at
 * half of a 12 s lifetime, doubling alone would try at +1, +3 and +7 s: after the end).
 */
export function nextRetryDelayMs(previousMs: number, o: { readonly baseMs: number; readonly capMs: number; readonly leftMs: number }): number {
  const doubled = previousMs === 0 ? o.baseMs : Math.min(previousMs * 2, o.capMs);
  return Math.max(o.baseMs, Math.min(doubled, o.leftMs / 4));
}

/**
 * Emits 'update' with the new TlsMaterial after each change, and 'error' for a failed reload
 * or issue (only when someone listens; the last error also shows in info()). The current
 * material stays in force until a good replacement arrives.
 */
export class CertificateSource extends EventEmitter<SourceEvents> {
  private material: TlsMaterial;
  private lastError: string | null = null;
  private errors = 0;
  private rotations = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private watchers: FSWatcher[] = [];
  private statSig = '';
  private retryDelayMs = 0;
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;
  private lastSuccessMs: number | null = null;

  private constructor(
    private readonly opts: CertificateSourceOptions,
    first: TlsMaterial,
    /** Makes the next material from the current one (reads files, issues, or asks the signer). */
    private readonly produce: (current: TlsMaterial) => Promise<TlsMaterial>,
    /** Releases what open() created (pools). */
    private readonly release: () => Promise<void>,
  ) {
    super();
    this.material = first;
    this.lastSuccessMs = Date.now();
  }

  /** Load (files), issue (ca) or have signed (signer) the first material; rejects when that fails. */
  static async open(opts: CertificateSourceOptions): Promise<CertificateSource> {
    if (opts.mode === 'files') {
      const src = new CertificateSource(
        opts,
        await readFilesMaterial(opts),
        () => readFilesMaterial(opts),
        async () => {},
      );
      src.statSig = await statSignature(opts);
      src.startWatching(opts);
      return src;
    }
    const fraction = opts.rotateAtFraction ?? 0.5;
    if (!(fraction > 0 && fraction < 1)) throw new Error('rotateAtFraction must be between 0 and 1');
    if (opts.mode === 'signer') {
      const keyMaker = opts.keyMaker ?? createKeyMaker();
      const release = opts.keyMaker === undefined ? () => keyMaker.close() : async () => {};
      try {
        const first = await signerMaterial(keyMaker, opts, null);
        const src = new CertificateSource(opts, first, (cur) => signerMaterial(keyMaker, opts, cur), release);
        src.scheduleRotation();
        return src;
      } catch (e) {
        await release();
        throw e;
      }
    }
    const issuer = opts.issuer ?? createIssuer({ caDir: opts.caDir, allowInsecureKeyPermissions: opts.allowInsecureKeyPermissions === true });
    const release = opts.issuer === undefined ? () => issuer.close() : async () => {};
    try {
      const first = await issueMaterial(issuer, opts);
      const src = new CertificateSource(opts, first, () => issueMaterial(issuer, opts), release);
      src.scheduleRotation();
      return src;
    } catch (e) {
      await release();
      throw e;
    }
  }

  current(): TlsMaterial {
    return this.material;
  }

  info(): CertsInfo {
    const m = this.material;
    return {
      source: this.opts.mode,
      identity: m.identity,
      serial: m.serial,
      not_before: isoTime(m.notBefore.getTime()),
      not_after: isoTime(m.notAfter.getTime()),
      next_rotation: m.nextRotation === null ? null : isoTime(m.nextRotation.getTime()),
      trust_roots: splitPemCertificates(m.trustBundlePem).length,
      trust_domains: m.trustDomains.map((t) => t.trustDomain),
      rotations: this.rotations,
      last_error: this.lastError,
      errors_total: this.errors,
      last_success: this.lastSuccessMs === null ? null : isoTime(this.lastSuccessMs),
      expires_in_s: Math.round((m.notAfter.getTime() - Date.now()) / 1000),
      warning: this.warning(),
      ...(this.opts.mode === 'signer'
        ? {
            signer: {
              address: this.opts.address,
              identity: signerIdentityOf(this.opts),
              last_success: this.lastSuccessMs === null ? null : isoTime(this.lastSuccessMs),
            },
          }
        : {}),
    };
  }

  /** What needs attention now (see CertsInfo.warning), or null. */
  warning(nowMs = Date.now()): string | null {
    const m = this.material;
    const end = m.notAfter.getTime();
    const failing = this.lastError === null ? '' : `; the last renewal failed: ${this.lastError}`;
    if (nowMs >= end) return `certificate ${m.serial} expired at ${isoTime(m.notAfter.getTime())}: peers refuse it${failing}`;
    if (nowMs < m.notBefore.getTime()) return `certificate ${m.serial} is not valid before ${isoTime(m.notBefore.getTime())}`;
    const lifetime = end - m.notBefore.getTime();
    if (this.lastError !== null && end - nowMs < lifetime * EXPIRY_WARNING_FRACTION) {
      return `certificate ${m.serial} expires in ${Math.round((end - nowMs) / 1000)} s and renewal is failing: ${this.lastError}`;
    }
    return null;
  }

  /** Re-read the files / issue a new leaf now (admin action; also what the timers call). */
  async refresh(): Promise<void> {
    if (this.reloading !== null) {
      this.reloadAgain = true;
      return this.reloading;
    }
    this.reloading = (async () => {
      do {
        this.reloadAgain = false;
        await this.refreshOnce();
      } while (this.reloadAgain && !this.closed);
    })().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.pollTimer !== null) clearInterval(this.pollTimer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    await this.reloading?.catch(() => {});
    await this.release();
  }

  // ---- internals ---------------------------------------------------------------------

  private async refreshOnce(): Promise<void> {
    if (this.closed) return;
    try {
      const next = await this.produce(this.material);
      if (this.closed) return;
      this.lastError = null;
      this.retryDelayMs = 0;
      this.lastSuccessMs = Date.now();
      const same = materialKey(next) === materialKey(this.material) && next.keyPem === this.material.keyPem;
      if (!same) {
        this.material = next;
        this.rotations++;
        this.emit('update', next);
      }
      if (this.opts.mode !== 'files') this.scheduleRotation();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.lastError = err.message;
      this.errors++;
      // Once the end is near (or past), say so in the logged error: that is the operator's cue.
      const warning = this.warning();
      if (this.listenerCount('error') > 0) this.emit('error', warning === null ? err : new Error(warning));
      if (this.opts.mode !== 'files') this.scheduleRetry();
    }
  }

  private setTimer(atMs: number, fn: () => void): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const delay = Math.max(0, atMs - Date.now());
    this.timer = setTimeout(
      () => {
        this.timer = null;
        if (delay > MAX_TIMER_MS) this.setTimer(atMs, fn);
        else fn();
      },
      Math.min(delay, MAX_TIMER_MS),
    );
    this.timer.unref();
  }

  private scheduleRotation(): void {
    const at = this.material.nextRotation;
    if (at !== null) this.setTimer(at.getTime(), () => void this.refresh());
  }

  private scheduleRetry(): void {
    const now = Date.now();
    this.retryDelayMs = nextRetryDelayMs(this.retryDelayMs, {
      baseMs: (this.opts as CaSourceOptions | SignerSourceOptions).retryMs ?? 1000,
      // A signer outage must not leave us waiting a minute while the certificate runs out.
      capMs: this.opts.mode === 'signer' ? 30_000 : 60_000,
      leftMs: this.material.notAfter.getTime() - now,
    });
    this.setTimer(now + this.retryDelayMs, () => void this.refresh());
  }

  private startWatching(opts: FilesSourceOptions): void {
    const debounceMs = opts.debounceMs ?? 200;
    const kick = (): void => this.setTimer(Date.now() + debounceMs, () => void this.refresh());
    const dirs = new Set(watchedFiles(opts).map((p) => path.dirname(p)));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, kick);
        w.on('error', () => {}); // the poll below still covers this directory
        this.watchers.push(w);
      } catch {
        // directory not watchable (some network filesystems): rely on polling
      }
    }
    this.pollTimer = setInterval(() => {
      void statSignature(opts).then((sig) => {
        if (sig !== this.statSig || this.lastError !== null) {
          this.statSig = sig;
          kick();
        }
      });
    }, opts.pollMs ?? 5000);
    this.pollTimer.unref();
  }
}

async function readFilesMaterial(opts: FilesSourceOptions): Promise<TlsMaterial> {
  const read = (label: string, p: string): Promise<string> =>
    readFile(p, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new Error(`tls.${label} ${p}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
    });
  await checkPrivateFile(opts.keyPath, { label: 'tls.key', allowInsecure: opts.allowInsecureKeyPermissions === true });
  const [trustBundlePem, certPem, keyPem] = await Promise.all([
    read('trust_bundle', opts.trustBundlePath),
    read('cert', opts.certPath),
    read('key', opts.keyPath),
  ]);
  const m = materialFromPem({ certPem, keyPem, trustBundlePem, federation: await readFederation(opts) });
  if (opts.expectedIdentity !== undefined && m.identity !== opts.expectedIdentity) {
    throw new Error(`tls.cert ${opts.certPath}: identity is ${m.identity}, node.identity is ${opts.expectedIdentity}`);
  }
  // Whoever writes the files decides when to rotate; an expired or not-yet-valid leaf is still
  // refused (at start: no start; on a reload: the current one stays).
  const now = Date.now();
  if (now > m.notAfter.getTime()) throw new Error(`tls.cert ${opts.certPath}: expired at ${isoTime(m.notAfter.getTime())} (serial ${m.serial})`);
  if (now < m.notBefore.getTime()) throw new Error(`tls.cert ${opts.certPath}: not valid before ${isoTime(m.notBefore.getTime())} (serial ${m.serial})`);
  return m;
}

async function statSignature(opts: FilesSourceOptions): Promise<string> {
  const parts = await Promise.all(
    watchedFiles(opts).map((p) =>
      stat(p).then(
        (s) => `${s.ino}:${s.size}:${s.mtimeMs}`,
        () => 'missing',
      ),
    ),
  );
  return parts.join('|');
}

async function issueMaterial(issuer: Issuer, opts: CaSourceOptions): Promise<TlsMaterial> {
  const ttlHours = opts.ttlHours ?? DEFAULT_LEAF_TTL_HOURS;
  const leaf = await issuer.issue({ identity: opts.identity, ttlHours, ...(opts.keyType !== undefined ? { keyType: opts.keyType } : {}) });
  // From issue time, not notBefore (which is backdated for clock skew), to the real notAfter.
  // (at least 250 ms later, so a sub-second test TTL cannot spin).
  const delayMs = Math.max(250, (leaf.notAfter.getTime() - leaf.issuedAtMs) * (opts.rotateAtFraction ?? 0.5));
  const nextRotation = new Date(leaf.issuedAtMs + delayMs);
  return materialFromPem({ ...leaf, federation: await readFederation(opts) }, nextRotation);
}

/** Every file a files-mode source reads (and watches). */
function watchedFiles(opts: FilesSourceOptions): string[] {
  return [opts.trustBundlePath, opts.certPath, opts.keyPath, ...(opts.federation ?? []).map((f) => f.bundlePath)];
}
