// What a config received through the admin API (PUT /config, POST /config/rollback, and the dry
// run POST /config/validate) may not do, even with the token (DESIGN.md §8, "Admin is safe with
// no configuration"):
//  - name a file outside the allowed directories (admin.allowed_dirs; default the config file's
//    directory and the state directory): access-log paths, admin.token_file,
//    admin.metrics_token_file, tls.trust_bundle / cert / key, tls.ca.dir. The real path of the file (or of its existing parent directory)
//    must be inside, so symlinks cannot lead out, and the parent must exist: the admin API never
//    creates directories. An access log may not be the config file, the admin token or a TLS file;
//  - add or change a listener on a non-loopback address (unless admin.allow_remote_listeners);
//  - change admin.state_dir, admin.allowed_dirs or admin.allow_remote_listeners.
// What the config file itself names (at start or on a reload) is trusted as it is: the same
// path in the same field, the same non-loopback address with the same TLS mode, the same admin
// settings pass. Reads the file system (lstat/realpath of a handful of paths), main thread.

import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { isLoopbackHost, parseHostPort } from '../config/address.js';
import type { RawConfig } from '../config/load.js';
import type { ConfigPath } from '../config/paths.js';
import { formatPath } from '../config/paths.js';
import type { ConfigProblem } from '../config/types.js';

export interface ApiPolicyOptions {
  /** Absolute path of the config file. */
  readonly configFile: string;
  /** Absolute state directory (the generated token lives here). */
  readonly stateDir: string;
  /** Absolute path of the admin token file in use. */
  readonly tokenFile: string;
  /** Absolute allowed directories (resolved; symlinks are resolved here). */
  readonly allowedDirs: readonly string[];
  readonly allowRemoteListeners: boolean;
  /** Working directory of the process: access-log paths are relative to it. */
  readonly cwd: string;
}

type PathKind = 'access_log' | 'token_file' | 'trust_bundle' | 'cert' | 'key' | 'ca_dir';

const ADMIN_FIXED = ['state_dir', 'allowed_dirs', 'allow_remote_listeners'] as const;

export class ApiPolicy {
  private readonly configDir: string;
  private readonly allowed: readonly string[];
  private readonly trustedPaths = new Set<string>();
  private readonly trustedListeners = new Set<string>();
  private readonly trustedAdmin = new Set<string>();
  /** Real paths of the TLS material and tokens the config file names (never an access log's target). */
  private readonly trustedMaterial = new Set<string>();

  constructor(private readonly o: ApiPolicyOptions) {
    this.configDir = path.dirname(o.configFile);
    this.allowed = o.allowedDirs.map(realOrSelf);
  }

  get allowedDirs(): readonly string[] {
    return this.allowed;
  }

  /**
   * The absolute path of an access log (`path` as a config writes it) that the config file did
   * not name: to be opened by log_open.ts before it is applied. Null for stdout and trusted paths.
   */
  untrustedAccessLog(p: string): string | null {
    if (p === 'stdout') return null;
    const abs = path.resolve(this.o.cwd, p);
    return this.trustedPaths.has(`access_log\u0000${abs}`) ? null : abs;
  }

  /** Remembers what a config loaded from the config file names (start-up and reloads). */
  trust(source: RawConfig): void {
    for (const p of this.paths(source)) {
      this.trustedPaths.add(`${p.kind}\u0000${p.abs}`);
      if (p.kind !== 'access_log') this.trustedMaterial.add(materialKey(p.kind, p.abs));
    }
    for (const l of source.listeners) this.trustedListeners.add(listenerKey(l.address, l.tls?.mode));
    for (const f of ADMIN_FIXED) this.trustedAdmin.add(`${f}\u0000${JSON.stringify(source.admin[f] ?? null)}`);
  }

  /** Problems of a config that arrived through the admin API (empty: it may be applied). */
  check(source: RawConfig): ConfigProblem[] {
    const out: ConfigProblem[] = [];
    const problem = (at: ConfigPath, message: string): void => {
      out.push({ path: formatPath(at), message, line: null });
    };
    for (const f of ADMIN_FIXED) {
      if (!this.trustedAdmin.has(`${f}\u0000${JSON.stringify(source.admin[f] ?? null)}`)) {
        problem(['admin', f], 'can be changed only in the config file (read at start)');
      }
    }
    const protectedFiles = this.protectedFiles(source);
    for (const p of this.paths(source)) {
      if (this.trustedPaths.has(`${p.kind}\u0000${p.abs}`)) continue;
      const msg = this.pathProblem(p.kind, p.abs, protectedFiles);
      if (msg !== null) problem(p.at, msg);
    }
    if (!this.o.allowRemoteListeners) {
      source.listeners.forEach((l, i) => {
        const hp = parseHostPort(l.address, true);
        if (!hp.ok || isLoopbackHost(hp.value.host)) return;
        if (this.trustedListeners.has(listenerKey(l.address, l.tls?.mode))) return;
        problem(
          ['listeners', i, 'address'],
          `${l.address} is not a loopback address: a listener reachable from other hosts can be added or changed through the admin API only with admin.allow_remote_listeners: true (or in the config file)`,
        );
      });
    }
    return out;
  }

  private pathProblem(kind: PathKind, abs: string, protectedFiles: ReadonlySet<string>): string | null {
    const outside = `${abs}: outside the allowed directories (admin.allowed_dirs: ${this.allowed.join(', ')})`;
    let real: string;
    let exists = true;
    try {
      real = realpathSync(abs);
    } catch {
      exists = false;
      // Something is there but does not resolve: a dangling symlink (opening it would create its
      // target, wherever that is) or a loop.
      if (lstatOrNull(abs) !== null) return `${abs}: a symlink that does not resolve`;
      const parent = path.dirname(abs);
      let realParent: string;
      try {
        realParent = realpathSync(parent);
      } catch {
        // No parent to resolve: the admin API creates no directories. Outside is the first thing to say.
        if (!this.allowed.some((d) => inside(d, abs))) return outside;
        return `${abs}: directory ${parent} does not exist (the admin API creates no directories)`;
      }
      if (!statSync(realParent).isDirectory()) return `${abs}: ${parent} is not a directory`;
      real = path.join(realParent, path.basename(abs));
    }
    if (!this.allowed.some((d) => inside(d, real))) {
      return real === abs ? outside : `${outside}; it resolves to ${real}`;
    }
    if (kind === 'access_log') {
      if (exists && !isFile(real)) return `${abs}: not a regular file`;
      if (protectedFiles.has(real) || [...protectedFiles].some((f) => f.endsWith(path.sep) && inside(f.slice(0, -1), real))) {
        return `${abs}: an access log cannot be written into the config file, the admin token or TLS material`;
      }
    }
    return null;
  }

  /** Every file path the config names, with its field, resolved the way its reader resolves it. */
  private paths(source: RawConfig): Array<{ kind: PathKind; at: ConfigPath; abs: string }> {
    const out: Array<{ kind: PathKind; at: ConfigPath; abs: string }> = [];
    const fromConfig = (p: string): string => path.resolve(this.configDir, p);
    source.listeners.forEach((l, i) => {
      const p = l.access_log?.path;
      if (p !== undefined && p !== 'stdout') out.push({ kind: 'access_log', at: ['listeners', i, 'access_log', 'path'], abs: path.resolve(this.o.cwd, p) });
    });
    if (source.admin.token_file !== undefined) out.push({ kind: 'token_file', at: ['admin', 'token_file'], abs: fromConfig(source.admin.token_file) });
    if (source.admin.metrics_token_file !== undefined) {
      out.push({ kind: 'token_file', at: ['admin', 'metrics_token_file'], abs: fromConfig(source.admin.metrics_token_file) });
    }
    const tls = source.tls;
    if (tls !== undefined) {
      for (const k of ['trust_bundle', 'cert', 'key'] as const) {
        const v = tls[k];
        if (v !== undefined) out.push({ kind: k, at: ['tls', k], abs: fromConfig(v) });
      }
      if (tls.ca !== undefined) out.push({ kind: 'ca_dir', at: ['tls', 'ca', 'dir'], abs: fromConfig(tls.ca.dir) });
      if (tls.signer !== undefined) {
        out.push({ kind: 'trust_bundle', at: ['tls', 'signer', 'ca_bundle'], abs: fromConfig(tls.signer.ca_bundle) });
        out.push({ kind: 'token_file', at: ['tls', 'signer', 'token_file'], abs: fromConfig(tls.signer.token_file) });
      }
      (tls.federation ?? []).forEach((f, i) => out.push({ kind: 'trust_bundle', at: ['tls', 'federation', i, 'bundle'], abs: fromConfig(f.bundle) }));
    }
    return out;
  }

  /** Real paths an access log may not write into (of the running and the new config); directories end with a separator. */
  private protectedFiles(source: RawConfig): Set<string> {
    const out = new Set<string>([realOrSelf(this.o.configFile), realOrSelf(this.o.tokenFile), ...this.trustedMaterial]);
    for (const p of this.paths(source)) if (p.kind !== 'access_log') out.add(materialKey(p.kind, p.abs));
    return out;
  }
}

function listenerKey(address: string, tls: string | undefined): string {
  const hp = parseHostPort(address, true);
  const where = hp.ok ? `${hp.value.host}|${hp.value.port}` : address;
  return `${where}|${tls ?? 'disabled'}`;
}

function inside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

function materialKey(kind: PathKind, abs: string): string {
  return kind === 'ca_dir' ? `${realOrSelf(abs)}${path.sep}` : realOrSelf(abs);
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
