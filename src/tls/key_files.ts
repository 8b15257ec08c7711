// Secret files (private keys, signer tokens) must be private to their owner: a key that group or
// others may read is as good as published. Checked every time such a file is loaded (at start
// and on every reload), unless the operator explicitly allows it. Main thread / pool thread only.

import { stat } from 'node:fs/promises';

/** Permission bits of a secret file that belong to group or others. */
const GROUP_OTHER = 0o077;

/** A secret file with group/other permission bits: the message says how to fix it. */
export class InsecureFileError extends Error {
  readonly code = 'insecure_permissions';
  constructor(
    readonly file: string,
    readonly mode: number,
    message: string,
  ) {
    super(message);
    this.name = 'InsecureFileError';
  }
}

export interface PrivateFileCheck {
  /** What the file is, for the message: `tls.key`, `CA key`, `tls.signer.token_file`. */
  readonly label: string;
  /** Accept group/other bits anyway (the explicit opt-out). */
  readonly allowInsecure?: boolean;
  /** How to opt out, for the message (default: the config field). */
  readonly optOut?: string;
}

/** The message for a secret file whose mode has group/other bits. */
export function insecureModeMessage(file: string, mode: number, check: PrivateFileCheck): string {
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  return (
    `${check.label} ${file} is accessible by group or others (mode ${octal}): run "chmod 600 ${file}" ` +
    `(or ${check.optOut ?? 'set tls.allow_insecure_key_permissions: true'} to accept it)`
  );
}

/**
 * Throws an InsecureFileError when `file` (symlinks followed: a Kubernetes secret's key is a
 * link to the real file) grants any permission to group or others. A missing file is left to
 * the reader to report.
 */
export async function checkPrivateFile(file: string, check: PrivateFileCheck): Promise<void> {
  if (check.allowInsecure === true) return;
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch {
    return;
  }
  if ((mode & GROUP_OTHER) !== 0) throw new InsecureFileError(file, mode, insecureModeMessage(file, mode, check));
}
