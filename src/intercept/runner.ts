// Runs the planned rules (iptables.ts) against the kernel: `iptables`/`ip6tables -w` child
// processes in the current network namespace. IPv4 is required; IPv6 is used where ip6tables
// exists and its nat table works. Errors name the failing command and carry iptables' stderr.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { installedRules, uninstallCommands, type Family, type RuleSet } from './iptables.js';

/** One address family's table program. */
export interface Table {
  readonly family: Family;
  readonly binary: 'iptables' | 'ip6tables';
}

export const TABLES: readonly Table[] = [
  { family: 'ipv4', binary: 'iptables' },
  { family: 'ipv6', binary: 'ip6tables' },
];

/** A failed iptables call; `missing` when the program is not installed. */
export class IptablesError extends Error {
  constructor(
    message: string,
    readonly missing: boolean,
  ) {
    super(message);
  }
}

/** The Debian package that provides both programs (named in the error when they are missing). */
export const IPTABLES_PACKAGE = 'iptables';

/** `binary -w ...args` (-w: wait for the xtables lock instead of failing); resolves with stdout. */
export function runIptables(binary: string, args: readonly string[]): Promise<string> {
  const argv = ['-w', ...args];
  return new Promise((resolve, reject) => {
    execFile(binary, argv, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(
          new IptablesError(`${binary} not found in PATH: install the ${IPTABLES_PACKAGE} package (Debian: apt-get install ${IPTABLES_PACKAGE})`, true),
        );
      }
      const why = stderr.trim() || err.message;
      reject(new IptablesError(`${binary} ${argv.join(' ')} failed: ${why}`, false));
    });
  });
}

/** Outrigger's rules in `table`'s nat table now, or the error that kept them from being read. */
export async function readInstalled(table: Table): Promise<{ ok: true; rules: RuleSet } | { ok: false; error: IptablesError }> {
  try {
    return { ok: true, rules: installedRules(await runIptables(table.binary, ['-t', 'nat', '-S'])) };
  } catch (e) {
    if (e instanceof IptablesError) return { ok: false, error: e };
    throw e;
  }
}

/** Runs `commands` in order; stops at the first failure. */
export async function runAll(table: Table, commands: readonly (readonly string[])[]): Promise<void> {
  for (const args of commands) await runIptables(table.binary, args);
}

/**
 * Runs install's `commands`; when one fails, removes whatever outrigger rules are then in the
 * table (a half-installed rule set would redirect some traffic and not the rest) and rethrows.
 */
export async function runInstall(table: Table, commands: readonly (readonly string[])[]): Promise<void> {
  try {
    await runAll(table, commands);
  } catch (e) {
    const now = await readInstalled(table);
    if (now.ok) await runAll(table, uninstallCommands(now.rules)).catch(() => undefined);
    throw e;
  }
}

/** True when this process may change netfilter tables: CAP_NET_ADMIN in its effective set (root has it). */
export function hasNetAdmin(): boolean {
  const CAP_NET_ADMIN = 12n;
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
    if (hex !== undefined) return ((BigInt(`0x${hex}`) >> CAP_NET_ADMIN) & 1n) === 1n;
  } catch {
    // No /proc: fall back to the uid.
  }
  return process.getuid?.() === 0;
}
