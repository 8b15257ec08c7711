// The admin bearer token: read from admin.token_file, or — when none is configured — generated
// (32 random bytes, base64url) into `<state dir>/admin.token`, mode 0600, in a state directory
// created 0700. A generated token that is already there (a previous start, or another sidecar
// whose config file shares the directory) is reused when it is a regular file of ours that only
// we can read; one readable by others is replaced. Creation is atomic (write a private temp
// file, then link it into place), so two sidecars starting at once end up with the same token.

import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, constants, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const GENERATED_TOKEN_NAME = 'admin.token';
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export class TokenError extends Error {}

export interface AdminToken {
  readonly token: string;
  /** Absolute path of the file that holds it. */
  readonly file: string;
  readonly generated: boolean;
  /** Something worth a warning (e.g. a configured token file readable by others). */
  readonly warning: string | null;
}

const uid = (): number | null => (typeof process.getuid === 'function' ? process.getuid() : null);

/** admin.token_file (or `field`, e.g. admin.metrics_token_file), trimmed; must be non-empty. */
export function readConfiguredToken(file: string, field = 'admin.token_file'): AdminToken {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenError(`${field}: cannot read "${file}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const token = text.trim();
  if (token === '') throw new TokenError(`${field}: "${file}" is empty`);
  let warning: string | null = null;
  try {
    if ((lstatSync(file).mode & 0o077) !== 0) warning = `${field} ${file} can be read by other users: chmod 600 it`;
  } catch {
    // read above; a vanished file is noticed at the next start
  }
  return { token, file, generated: false, warning };
}

/** The generated token in `stateDir` (created 0700 when missing); reused when it is sound. */
export function ensureGeneratedToken(stateDir: string): AdminToken {
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new TokenError(`cannot create the state directory ${stateDir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const dir = lstatSync(stateDir);
  if (!dir.isDirectory()) throw new TokenError(`state directory ${stateDir} is not a directory (a symlink?)`);
  const me = uid();
  if (me !== null && dir.uid !== me) throw new TokenError(`state directory ${stateDir} belongs to another user (uid ${dir.uid})`);
  if ((dir.mode & 0o022) !== 0) throw new TokenError(`state directory ${stateDir} can be written by other users: chmod 700 it`);

  const file = path.join(stateDir, GENERATED_TOKEN_NAME);
  const existing = readExisting(file, me);
  if (typeof existing === 'object') return { token: existing.token, file, generated: true, warning: null };

  const token = randomBytes(32).toString('base64url');
  const tmp = path.join(stateDir, `.${GENERATED_TOKEN_NAME}.${process.pid}.${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(tmp, `${token}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(tmp, 0o600); // whatever the umask
    if (existing === 'missing') {
      try {
        linkSync(tmp, file); // fails if another sidecar got there first: then use its token
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const theirs = readExisting(file, me);
        if (typeof theirs !== 'object') throw new TokenError(`${file} appeared while it was being created, and is not a token file of ours`);
        return { token: theirs.token, file, generated: true, warning: null };
      }
      return { token, file, generated: true, warning: null };
    }
    renameSync(tmp, file);
    return { token, file, generated: true, warning: `${file} could be read by other users or was not a token: replaced with a new token` };
  } catch (e) {
    if (e instanceof TokenError) throw e;
    throw new TokenError(`cannot write ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** A regular file of ours, private, holding a token: its token; 'replace': ours but loose or garbled; 'missing'. */
function readExisting(file: string, me: number | null): { token: string } | 'replace' | 'missing' {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ELOOP') throw new TokenError(`${file} is a symlink: remove it`);
    throw new TokenError(`cannot read ${file}: ${code ?? String(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new TokenError(`${file} is not a regular file: remove it`);
    if (me !== null && st.uid !== me) throw new TokenError(`${file} belongs to another user (uid ${st.uid}): remove it`);
    if ((st.mode & 0o077) !== 0) return 'replace';
    const text = readFileSync(fd, 'utf8').trim();
    return TOKEN_SHAPE.test(text) ? { token: text } : 'replace';
  } finally {
    closeSync(fd);
  }
}
