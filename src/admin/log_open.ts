// Opens an access-log file named by a config that arrived through the admin API, on the main
// thread, at apply time, so that what the workers write to is the file that was checked: the
// policy (api_policy.ts) checked the path's real location when the request arrived, but a
// symlink could be swapped in before a worker opened it (pino's `mkdir: true` open follows
// symlinks and creates directories). Here the file is opened without following a symlink in the
// last component (O_NOFOLLOW) and without creating directories, and the opened descriptor's real
// path (/proc/self/fd/N) must be inside the allowed directories. The workers then open
// /proc/self/fd/N, which is that same open file whatever the path names by then.

import { closeSync, constants, fstatSync, openSync, readlinkSync } from 'node:fs';
import path from 'node:path';

/** The open file (its descriptor and real path), or why it was refused. */
export type LogOpen = { readonly ok: true; readonly fd: number; readonly real: string } | { readonly ok: false; readonly error: string };

function inside(dir: string, p: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** Open `abs` for appending (created 0640 if missing) if it really is a regular file inside one of `allowedDirs`. */
export function openLogFile(abs: string, allowedDirs: readonly string[]): LogOpen {
  let fd: number;
  try {
    fd = openSync(abs, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return { ok: false, error: `access log ${abs} is a symlink: not followed` };
    if (code === 'ENOENT') return { ok: false, error: `access log ${abs}: its directory does not exist (no directories are created)` };
    return { ok: false, error: `access log ${abs}: ${(e as Error).message}` };
  }
  let real: string;
  try {
    real = readlinkSync(`/proc/self/fd/${fd}`);
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
  } catch (e) {
    closeSync(fd);
    return { ok: false, error: `access log ${abs}: ${(e as Error).message}` };
  }
  if (!allowedDirs.some((d) => inside(d, real))) {
    closeSync(fd);
    return { ok: false, error: `access log ${abs} opened ${real}, outside the allowed directories (${allowedDirs.join(', ')})` };
  }
  return { ok: true, fd, real };
}
