// CertificateSource: where this sidecar's TlsMaterial comes from, kept fresh. Files mode reads
// tls.trust_bundle / cert / key and re-reads them when they change (fs.watch on their
// directories, so atomic renames and Kubernetes secret symlink swaps are seen, plus a periodic
// stat; both debounced). CA mode issues our own leaf from the embedded CA (in the piscina pool)
// and re-issues it at 50% of its lifetime. Main thread only: it reads files and issues keys.

import { EventEmitter } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { TlsSourceSpec } from '../config/types.js';
import { DEFAULT_LEAF_TTL_HOURS, type KeyType } from './ca.js';
import { createIssuer, type Issuer } from './issuer_pool.js';
import { checkPrivateFile } from './key_files.js';
import { materialFromPem, materialKey, type TlsMaterial, type TrustDomainBundle } from './material.js';
import { splitPemCertificates } from './x509.js';

/** What every source shares: other trust domains' roots, strictness with secret files. */
export interface CommonSourceOptions {
  /**
   * Other trust domains' roots (tls.federation): PEM files, each trusted for its trust domain
   * only; read with every new material (files mode also watches them).
   */
  readonly federation?: readonly FederationSource[];
  /** Accept key (and token) files that group or others may access (default: refuse them, at start and on reload). */
  readonly allowInsecureKeyPermissions?: boolean;
}

export interface FederationSource {
  readonly trustDomain: string;
  readonly bundlePath: string;
}

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

export type CertificateSourceOptions = FilesSourceOptions | CaSourceOptions;

/** The admin `/certs` view. */
export interface CertsInfo {
  readonly source: 'files' | 'ca';
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
  /** Failed reloads / issues so far (each kept the current certificate). */
  readonly errors_total: number;
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

  private constructor(
    private readonly opts: CertificateSourceOptions,
    first: TlsMaterial,
    private readonly issuer: Issuer | null,
    private readonly ownsIssuer: boolean,
  ) {
    super();
    this.material = first;
  }

  /** Load (files) or issue (ca) the first material; rejects when that fails. */
  static async open(opts: CertificateSourceOptions): Promise<CertificateSource> {
    if (opts.mode === 'files') {
      const src = new CertificateSource(opts, await readFilesMaterial(opts), null, false);
      src.statSig = await statSignature(opts);
      src.startWatching(opts);
      return src;
    }
    const fraction = opts.rotateAtFraction ?? 0.5;
    if (!(fraction > 0 && fraction < 1)) throw new Error('rotateAtFraction must be between 0 and 1');
    const issuer = opts.issuer ?? createIssuer({ caDir: opts.caDir, allowInsecureKeyPermissions: opts.allowInsecureKeyPermissions === true });
    try {
      const first = await issueMaterial(issuer, opts);
      const src = new CertificateSource(opts, first, issuer, opts.issuer === undefined);
      src.scheduleRotation();
      return src;
    } catch (e) {
      if (opts.issuer === undefined) await issuer.close();
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
      not_before: m.notBefore.toISOString(),
      not_after: m.notAfter.toISOString(),
      next_rotation: m.nextRotation?.toISOString() ?? null,
      trust_roots: splitPemCertificates(m.trustBundlePem).length,
      trust_domains: m.trustDomains.map((t) => t.trustDomain),
      rotations: this.rotations,
      last_error: this.lastError,
      errors_total: this.errors,
    };
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
    if (this.ownsIssuer) await this.issuer?.close();
  }

  // ---- internals ---------------------------------------------------------------------

  private async refreshOnce(): Promise<void> {
    if (this.closed) return;
    try {
      const next = this.opts.mode === 'files' ? await readFilesMaterial(this.opts) : await issueMaterial(this.issuer as Issuer, this.opts);
      if (this.closed) return;
      this.lastError = null;
      this.retryDelayMs = 0;
      const same = materialKey(next) === materialKey(this.material) && next.keyPem === this.material.keyPem;
      if (!same) {
        this.material = next;
        this.rotations++;
        this.emit('update', next);
      }
      if (this.opts.mode === 'ca') this.scheduleRotation();
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.lastError = err.message;
      this.errors++;
      if (this.listenerCount('error') > 0) this.emit('error', err);
      if (this.opts.mode === 'ca') this.scheduleRetry();
    }
  }

  private setTimer(atMs: number, fn: () => void): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    const delay = Math.max(0, atMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      if (delay > MAX_TIMER_MS) this.setTimer(atMs, fn);
      else fn();
    }, Math.min(delay, MAX_TIMER_MS));
    this.timer.unref();
  }

  private scheduleRotation(): void {
    const at = this.material.nextRotation;
    if (at !== null) this.setTimer(at.getTime(), () => void this.refresh());
  }

  private scheduleRetry(): void {
    const base = (this.opts as CaSourceOptions).retryMs ?? 1000;
    this.retryDelayMs = this.retryDelayMs === 0 ? base : Math.min(this.retryDelayMs * 2, 60_000);
    this.setTimer(Date.now() + this.retryDelayMs, () => void this.refresh());
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
  if (now > m.notAfter.getTime()) throw new Error(`tls.cert ${opts.certPath}: expired at ${m.notAfter.toISOString()} (serial ${m.serial})`);
  if (now < m.notBefore.getTime()) throw new Error(`tls.cert ${opts.certPath}: not valid before ${m.notBefore.toISOString()} (serial ${m.serial})`);
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

/** The federated trust domains' roots, read now. */
async function readFederation(opts: CommonSourceOptions): Promise<TrustDomainBundle[]> {
  return Promise.all(
    (opts.federation ?? []).map(async (f) => {
      try {
        return { trustDomain: f.trustDomain, rootsPem: await readFile(f.bundlePath, 'utf8') };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new Error(`tls.federation bundle of ${f.trustDomain} ${f.bundlePath}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
      }
    }),
  );
}
