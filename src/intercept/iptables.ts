// The interception rule set, planned without touching the kernel: options → the chains and rules
// `outrigger iptables install` adds to a network namespace's nat table, per address family, and
// what `uninstall` must run to remove exactly those. Rules are written the way `iptables -S` prints
// them back, so an installed rule set can be compared with the plan (install is idempotent).
// Modelled on istio-iptables and linkerd-init: own chains, entered from PREROUTING and OUTPUT.

import type { Cidr, Family } from './cidr.js';

export type { Family } from './cidr.js';

/** The chains outrigger owns; nothing else in the table is ever changed but the two jumps into them. */
export const CHAINS = {
  /** PREROUTING → here: inbound TCP, minus excluded ports. */
  inbound: 'OUTRIGGER_INBOUND',
  /** REDIRECT to the inbound port. */
  inRedirect: 'OUTRIGGER_IN_REDIRECT',
  /** OUTPUT → here: outbound TCP, minus the proxy's own traffic, loopback and exclusions. */
  output: 'OUTRIGGER_OUTPUT',
  /** REDIRECT to the outbound port. */
  redirect: 'OUTRIGGER_REDIRECT',
} as const;

export const OWN_CHAINS: readonly string[] = Object.values(CHAINS);

export interface InterceptOptions {
  /** The sidecar's uid: its own connections (to upstreams, to the app) are never redirected. */
  readonly proxyUid: number;
  /** The sidecar's gid, excluded too when given. */
  readonly proxyGid?: number;
  readonly outboundPort: number;
  readonly inboundPort: number;
  /** Inbound destination ports left alone (the admin API, health checks). */
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  readonly excludeOutboundCidrs: readonly Cidr[];
}

export const DEFAULT_OUTBOUND_PORT = 15001;
export const DEFAULT_INBOUND_PORT = 15006;

/** One rule: the chain it is appended to and its arguments, as `iptables -S` prints them. */
export interface Rule {
  readonly chain: string;
  readonly spec: readonly string[];
}

/** Outrigger's part of one family's nat table: its chains and every rule in or into them. */
export interface RuleSet {
  readonly chains: readonly string[];
  /** The rules of the own chains first, then the jumps into them from PREROUTING and OUTPUT. */
  readonly rules: readonly Rule[];
}

const tcpPort = (port: number): string[] => ['-p', 'tcp', '-m', 'tcp', '--dport', String(port)];

/** The rule set install adds for `family` (IPv6 gets only the IPv6 CIDRs, and the reverse). */
export function planRules(opts: InterceptOptions, family: Family): RuleSet {
  const outbound: Rule[] = [
    { chain: CHAINS.output, spec: ['-m', 'owner', '--uid-owner', String(opts.proxyUid), '-j', 'RETURN'] },
    ...(opts.proxyGid === undefined ? [] : [{ chain: CHAINS.output, spec: ['-m', 'owner', '--gid-owner', String(opts.proxyGid), '-j', 'RETURN'] }]),
    // Everything routed over loopback stays local: 127.0.0.1 / ::1, and the host's own addresses
    // (linkerd-init's rule; the kernel routes those through lo too).
    { chain: CHAINS.output, spec: ['-o', 'lo', '-j', 'RETURN'] },
    ...opts.excludeOutboundPorts.map((p) => ({ chain: CHAINS.output, spec: [...tcpPort(p), '-j', 'RETURN'] })),
    ...opts.excludeOutboundCidrs.filter((c) => c.family === family).map((c) => ({ chain: CHAINS.output, spec: ['-d', c.text, '-j', 'RETURN'] })),
    { chain: CHAINS.output, spec: ['-j', CHAINS.redirect] },
    { chain: CHAINS.redirect, spec: ['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(opts.outboundPort)] },
  ];
  const inbound: Rule[] = [
    ...opts.excludeInboundPorts.map((p) => ({ chain: CHAINS.inbound, spec: [...tcpPort(p), '-j', 'RETURN'] })),
    { chain: CHAINS.inbound, spec: ['-p', 'tcp', '-j', CHAINS.inRedirect] },
    { chain: CHAINS.inRedirect, spec: ['-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(opts.inboundPort)] },
  ];
  // The jumps come last: traffic enters the chains only once they are complete.
  const jumps: Rule[] = [
    { chain: 'PREROUTING', spec: ['-p', 'tcp', '-j', CHAINS.inbound] },
    { chain: 'OUTPUT', spec: ['-p', 'tcp', '-j', CHAINS.output] },
  ];
  return { chains: OWN_CHAINS, rules: [...inbound, ...outbound, ...jumps] };
}

/** The iptables argument vectors that create `set` (chains, then rules in order). */
export function installCommands(set: RuleSet): string[][] {
  return [...set.chains.map((c) => ['-t', 'nat', '-N', c]), ...set.rules.map((r) => ['-t', 'nat', '-A', r.chain, ...r.spec])];
}

/** The iptables argument vectors that remove `set`: the jumps into the own chains, then the chains (flushed first, since they jump to each other). */
export function uninstallCommands(set: RuleSet): string[][] {
  const jumps = set.rules.filter((r) => !set.chains.includes(r.chain));
  return [
    ...jumps.map((r) => ['-t', 'nat', '-D', r.chain, ...r.spec]),
    ...set.chains.map((c) => ['-t', 'nat', '-F', c]),
    ...set.chains.map((c) => ['-t', 'nat', '-X', c]),
  ];
}

/**
 * What install runs on a table holding `current`: nothing when the plan is already there, else
 * the removal of whatever outrigger rules are there (an install with other options) and the plan.
 */
export function installSteps(current: RuleSet, plan: RuleSet): string[][] {
  if (sameRules(current, plan)) return [];
  return [...(isEmpty(current) ? [] : uninstallCommands(current)), ...installCommands(plan)];
}

/** `set` as `iptables -S` lines (`-N CHAIN`, `-A CHAIN ...`), chains first. */
export function listRules(set: RuleSet): string[] {
  return [...set.chains.map((c) => `-N ${c}`), ...set.rules.map((r) => `-A ${r.chain} ${r.spec.map(quoteArg).join(' ')}`)];
}

/**
 * Outrigger's part of a nat table listed by `iptables -t nat -S`: the own chains that exist (in
 * OWN_CHAINS order), their rules, and every rule elsewhere that jumps into one of them.
 */
export function installedRules(listing: string): RuleSet {
  const present = new Set<string>();
  const rules: Rule[] = [];
  for (const line of listing.split('\n')) {
    const words = splitArgs(line.trim());
    const [op, chain, ...spec] = words;
    if (op === '-N' && chain !== undefined && OWN_CHAINS.includes(chain)) present.add(chain);
    if (op !== '-A' || chain === undefined) continue;
    if (OWN_CHAINS.includes(chain) || jumpsToOwnChain(spec)) rules.push({ chain, spec });
  }
  return { chains: OWN_CHAINS.filter((c) => present.has(c)), rules };
}

/** True when `set` holds nothing (no own chain, no jump into one). */
export function isEmpty(set: RuleSet): boolean {
  return set.chains.length === 0 && set.rules.length === 0;
}

/** Same chains and, chain by chain, the same rules in the same order. */
export function sameRules(a: RuleSet, b: RuleSet): boolean {
  return key(a) === key(b);
}

function key(set: RuleSet): string {
  const chains = [...set.chains].sort();
  const byChain = new Map<string, string[]>();
  for (const r of set.rules) byChain.set(r.chain, [...(byChain.get(r.chain) ?? []), r.spec.join('\u0000')]);
  return JSON.stringify([chains, [...byChain.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))]);
}

function jumpsToOwnChain(spec: readonly string[]): boolean {
  return spec.some((w, i) => (w === '-j' || w === '-g') && OWN_CHAINS.includes(spec[i + 1] ?? ''));
}

/** Splits an `iptables -S` line into arguments: words, or double-quoted strings with \" and \\ escapes (comments). */
export function splitArgs(line: string): string[] {
  const args: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) args.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? ''));
  return args;
}

function quoteArg(arg: string): string {
  return /^[^\s"\\]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}
