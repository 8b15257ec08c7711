// `outrigger iptables install | uninstall | show`: transparent interception for a network
// namespace (a pod's, run from an init container; a VM's, from a systemd unit). Parses the flags
// into InterceptOptions, plans the rules (intercept/iptables.ts) and runs them (intercept/runner.ts).
// Returns an exit code: 0 ok, 2 for a user mistake (one line: not root, iptables missing, a bad
// flag), 1 when iptables refuses a rule (the command and iptables' stderr).

import {
  DEFAULT_INBOUND_PORT,
  DEFAULT_OUTBOUND_PORT,
  installSteps,
  isEmpty,
  listRules,
  planRules,
  uninstallCommands,
  type InterceptOptions,
  type RuleSet,
} from '../intercept/iptables.js';
import { parseCidr, type Cidr } from '../intercept/cidr.js';
import { hasNetAdmin, IptablesError, readInstalled, runAll, runInstall, TABLES, type Table } from '../intercept/runner.js';
import { parseArgsOr } from './args.js';

const HELP = `outrigger iptables — transparent interception of a network namespace's TCP (run as root)

Usage:
  outrigger iptables install --proxy-uid UID [--proxy-gid GID] [--outbound-port 15001] [--inbound-port 15006]
                             [--exclude-inbound-ports P,P] [--exclude-outbound-ports P,P]
                             [--exclude-outbound-cidrs C,C] [--dry-run]
      nat table chains OUTRIGGER_INBOUND, OUTRIGGER_IN_REDIRECT (from PREROUTING), OUTRIGGER_OUTPUT and
      OUTRIGGER_REDIRECT (from OUTPUT): outbound TCP goes to the outbound port except the proxy's own
      (uid/gid), loopback and the excluded ports/CIDRs; inbound TCP goes to the inbound port except
      the excluded ports (admin, health). Idempotent. IPv4 always, IPv6 where ip6tables works.
      --dry-run prints the commands and changes nothing.
  outrigger iptables uninstall [--dry-run]
      removes the jumps and the OUTRIGGER_* chains, nothing else
  outrigger iptables show
      prints the installed chains and jumps (iptables -S lines), per family
`;

export interface IptablesIo {
  readonly stdout: { write(s: string): unknown };
  readonly stderr: { write(s: string): unknown };
}

class UsageError extends Error {}

const OPTIONS = {
  'proxy-uid': { type: 'string' },
  'proxy-gid': { type: 'string' },
  'outbound-port': { type: 'string' },
  'inbound-port': { type: 'string' },
  'exclude-inbound-ports': { type: 'string' },
  'exclude-outbound-ports': { type: 'string' },
  'exclude-outbound-cidrs': { type: 'string' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = { readonly [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'string' ? string : boolean };

/** Runs `outrigger iptables <args>`; resolves with the exit code. */
export async function runIptablesCommand(args: string[], io: IptablesIo = process): Promise<number> {
  try {
    const { values, positionals } = parseArgsOr({ args, options: OPTIONS, allowPositionals: true, strict: true }, UsageError);
    if (values.help === true) {
      io.stdout.write(HELP);
      return 0;
    }
    const [command, extra] = positionals;
    if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
    const dryRun = values['dry-run'] === true;
    if (command === 'install') return await install(installOptions(values), dryRun, io);
    if (command === 'uninstall') {
      onlyFlags(values, 'uninstall', ['dry-run']);
      return await uninstall(dryRun, io);
    }
    if (command === 'show') {
      onlyFlags(values, 'show', []);
      return await show(io);
    }
    throw new UsageError(
      command === undefined ? 'iptables needs a command: install, uninstall or show' : `unknown iptables command "${command}" (install, uninstall, show)`,
    );
  } catch (e) {
    if (!(e instanceof UsageError || e instanceof IptablesError)) throw e;
    io.stderr.write(`outrigger: ${e.message}\n`);
    // A missing iptables is the user's to fix (install it), like a bad flag; a refused rule is not.
    return e instanceof IptablesError && !e.missing ? 1 : 2;
  }
}

/** Refuses a flag other than `allowed` (install's flags mean nothing to uninstall and show). */
function onlyFlags(values: Values, command: string, allowed: readonly string[]): void {
  for (const [name, v] of Object.entries(values)) {
    if (v !== undefined && name !== 'help' && !allowed.includes(name)) throw new UsageError(`iptables ${command} takes no --${name}`);
  }
}

function installOptions(values: Values): InterceptOptions {
  const uid = values['proxy-uid'];
  if (uid === undefined) throw new UsageError('iptables install needs --proxy-uid UID (the uid the sidecar runs as: its own traffic is not redirected)');
  const gid = values['proxy-gid'];
  return {
    proxyUid: id(uid, 'proxy-uid'),
    ...(gid !== undefined ? { proxyGid: id(gid, 'proxy-gid') } : {}),
    outboundPort: port(values['outbound-port'] ?? String(DEFAULT_OUTBOUND_PORT), 'outbound-port'),
    inboundPort: port(values['inbound-port'] ?? String(DEFAULT_INBOUND_PORT), 'inbound-port'),
    excludeInboundPorts: list(values['exclude-inbound-ports']).map((p) => port(p, 'exclude-inbound-ports')),
    excludeOutboundPorts: list(values['exclude-outbound-ports']).map((p) => port(p, 'exclude-outbound-ports')),
    excludeOutboundCidrs: list(values['exclude-outbound-cidrs']).map(cidr),
  };
}

/** The comma-separated values of a flag, each once (a repeated one would only add a rule that never matches). */
function list(v: string | undefined): string[] {
  return v === undefined ? [] : [...new Set(v.split(',').map((s) => s.trim()))];
}

function id(v: string, flag: string): number {
  if (!/^\d{1,10}$/.test(v) || Number(v) > 0xfffffffe) throw new UsageError(`--${flag} must be a numeric id, got "${v}"`);
  return Number(v);
}

function port(v: string, flag: string): number {
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) throw new UsageError(`--${flag}: "${v}" is not a port (1-65535)`);
  return Number(v);
}

function cidr(v: string): Cidr {
  const c = parseCidr(v);
  if (c === null) throw new UsageError(`--exclude-outbound-cidrs: "${v}" is not an IPv4 or IPv6 CIDR (10.0.0.0/8, fd00::/8)`);
  return c;
}

function requireNetAdmin(command: string): void {
  if (!hasNetAdmin()) {
    throw new UsageError(`iptables ${command} must run as root (or with CAP_NET_ADMIN, e.g. an init container with the NET_ADMIN capability)`);
  }
}

type Current = { rules: RuleSet; note?: string } | { skipped: string };

/** What a table holds now, or (IPv6 only) why it is left out; IPv4 failing to read is an error. */
async function current(table: Table): Promise<Current> {
  const r = await readInstalled(table);
  if (r.ok) return { rules: r.rules };
  if (table.family === 'ipv4') throw r.error;
  return { skipped: r.error.message };
}

/**
 * As current(), for a dry run, which needs no privilege: when the table cannot be read (not
 * root), it plans an install on an empty table and says so. A missing ip6tables is still skipped.
 */
async function currentForDryRun(table: Table): Promise<Current> {
  const r = await readInstalled(table);
  if (r.ok) return { rules: r.rules };
  if (table.family === 'ipv6' && r.error.missing) return { skipped: r.error.message };
  return { rules: { chains: [], rules: [] }, note: `could not read the current rules (${r.error.message}); assuming none` };
}

const heading = (t: Table): string => `# ${t.family} (${t.binary})`;
const commandLine = (t: Table, args: readonly string[]): string => `${t.binary} -w ${args.join(' ')}\n`;

async function install(opts: InterceptOptions, dryRun: boolean, io: IptablesIo): Promise<number> {
  if (!dryRun) requireNetAdmin('install');
  for (const table of TABLES) {
    const now = dryRun ? await currentForDryRun(table) : await current(table);
    if ('skipped' in now) {
      io.stdout.write(`${heading(table)}: skipped, ${now.skipped}\n`);
      continue;
    }
    if (now.note !== undefined) io.stdout.write(`${heading(table)}: ${now.note}\n`);
    const steps = installSteps(now.rules, planRules(opts, table.family));
    if (steps.length === 0) {
      io.stdout.write(`${heading(table)}: already installed, nothing to change\n`);
      continue;
    }
    const what = dryRun ? 'would run' : isEmpty(now.rules) ? 'installing' : 'replacing the installed rules (other options)';
    io.stdout.write(`${heading(table)}: ${what}\n`);
    for (const args of steps) io.stdout.write(commandLine(table, args));
    if (!dryRun) await runInstall(table, steps);
  }
  return 0;
}

async function uninstall(dryRun: boolean, io: IptablesIo): Promise<number> {
  if (!dryRun) requireNetAdmin('uninstall');
  for (const table of TABLES) {
    const now = await current(table);
    if ('skipped' in now) {
      io.stdout.write(`${heading(table)}: skipped, ${now.skipped}\n`);
      continue;
    }
    if (isEmpty(now.rules)) {
      io.stdout.write(`${heading(table)}: nothing installed\n`);
      continue;
    }
    const steps = uninstallCommands(now.rules);
    io.stdout.write(`${heading(table)}: ${dryRun ? 'would run' : 'removing'}\n`);
    for (const args of steps) io.stdout.write(commandLine(table, args));
    if (!dryRun) await runAll(table, steps);
  }
  return 0;
}

async function show(io: IptablesIo): Promise<number> {
  requireNetAdmin('show');
  for (const table of TABLES) {
    const now = await current(table);
    if ('skipped' in now) io.stdout.write(`${heading(table)}: skipped, ${now.skipped}\n`);
    else if (isEmpty(now.rules)) io.stdout.write(`${heading(table)}: nothing installed\n`);
    else io.stdout.write(`${heading(table)}: installed\n${listRules(now.rules).join('\n')}\n`);
  }
  return 0;
}
