// The rule planner and the CIDR parser on their own (no root, no kernel): the rules per family,
// reading outrigger's part back out of an `iptables -S` listing that holds other rules too, what
// install runs on a table that already has the plan or an older one, and CIDR normalisation.

import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/intercept/cidr.js';
import { installCommands, installedRules, installSteps, listRules, planRules, uninstallCommands, type InterceptOptions } from '../../src/intercept/iptables.js';

const OPTS: InterceptOptions = {
  proxyUid: 1337,
  proxyGid: 1338,
  outboundPort: 15001,
  inboundPort: 15006,
  excludeInboundPorts: [15000],
  excludeOutboundPorts: [5432],
  excludeOutboundCidrs: [parseCidr('10.0.0.0/8')!, parseCidr('fd00::/8')!],
};

/** A listing as `iptables -t nat -S` prints it: someone else's chain and rules around outrigger's. */
function listing(plan: ReturnType<typeof planRules>): string {
  const ours = listRules(plan);
  return [
    '-P PREROUTING ACCEPT',
    '-P OUTPUT ACCEPT',
    '-N KEEP',
    ...ours.filter((l) => l.startsWith('-N')),
    '-A OUTPUT -p tcp -m comment --comment "keep \\"me\\"" -j KEEP',
    ...ours.filter((l) => l.startsWith('-A')),
    '-A KEEP -j RETURN',
  ].join('\n');
}

describe('iptables rule planner', () => {
  it('plans the IPv4 rules: proxy uid and gid, loopback, excluded ports and IPv4 CIDRs return; the rest is redirected', () => {
    expect(listRules(planRules(OPTS, 'ipv4'))).toEqual([
      '-N OUTRIGGER_INBOUND',
      '-N OUTRIGGER_IN_REDIRECT',
      '-N OUTRIGGER_OUTPUT',
      '-N OUTRIGGER_REDIRECT',
      '-A OUTRIGGER_INBOUND -p tcp -m tcp --dport 15000 -j RETURN',
      '-A OUTRIGGER_INBOUND -p tcp -j OUTRIGGER_IN_REDIRECT',
      '-A OUTRIGGER_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
      '-A OUTRIGGER_OUTPUT -m owner --uid-owner 1337 -j RETURN',
      '-A OUTRIGGER_OUTPUT -m owner --gid-owner 1338 -j RETURN',
      '-A OUTRIGGER_OUTPUT -o lo -j RETURN',
      '-A OUTRIGGER_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN',
      '-A OUTRIGGER_OUTPUT -d 10.0.0.0/8 -j RETURN',
      '-A OUTRIGGER_OUTPUT -j OUTRIGGER_REDIRECT',
      '-A OUTRIGGER_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
      '-A PREROUTING -p tcp -j OUTRIGGER_INBOUND',
      '-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT',
    ]);
    const v6 = listRules(planRules(OPTS, 'ipv6'));
    expect(v6).toContain('-A OUTRIGGER_OUTPUT -d fd00::/8 -j RETURN');
    expect(v6.join('\n')).not.toContain('10.0.0.0/8');
  });

  it('creates the chains before any rule and jumps into them last', () => {
    const cmds = installCommands(planRules(OPTS, 'ipv4')).map((c) => c.join(' '));
    expect(cmds.slice(0, 4).every((c) => c.startsWith('-t nat -N OUTRIGGER_'))).toBe(true);
    expect(cmds.slice(-2)).toEqual(['-t nat -A PREROUTING -p tcp -j OUTRIGGER_INBOUND', '-t nat -A OUTPUT -p tcp -j OUTRIGGER_OUTPUT']);
  });

  it("reads outrigger's chains and jumps back out of a listing, leaving other rules alone", () => {
    const plan = planRules(OPTS, 'ipv4');
    const found = installedRules(listing(plan));
    expect(installSteps(found, plan)).toEqual([]);
    expect(uninstallCommands(found).map((c) => c.join(' '))).toEqual([
      '-t nat -D PREROUTING -p tcp -j OUTRIGGER_INBOUND',
      '-t nat -D OUTPUT -p tcp -j OUTRIGGER_OUTPUT',
      ...['-F', '-X'].flatMap((op) => ['OUTRIGGER_INBOUND', 'OUTRIGGER_IN_REDIRECT', 'OUTRIGGER_OUTPUT', 'OUTRIGGER_REDIRECT'].map((c) => `-t nat ${op} ${c}`)),
    ]);
  });

  it('replaces an install with other options: removes it, then adds the plan', () => {
    const old = installedRules(listing(planRules({ ...OPTS, outboundPort: 16001 }, 'ipv4')));
    const plan = planRules(OPTS, 'ipv4');
    const steps = installSteps(old, plan);
    expect(steps).toEqual([...uninstallCommands(old), ...installCommands(plan)]);
    expect(installSteps({ chains: [], rules: [] }, plan)).toEqual(installCommands(plan));
  });

  it('normalises CIDRs as iptables prints them and refuses what is not one', () => {
    expect(parseCidr('10.97.1.2/16')).toEqual({ family: 'ipv4', text: '10.97.0.0/16' });
    expect(parseCidr('192.168.1.7')).toEqual({ family: 'ipv4', text: '192.168.1.7/32' });
    expect(parseCidr('FD00:0:0:0::1/8')).toEqual({ family: 'ipv6', text: 'fd00::/8' });
    expect(parseCidr('2001:db8:0:0:1:0:0:1')).toEqual({ family: 'ipv6', text: '2001:db8::1:0:0:1/128' });
    expect(parseCidr('2001:db8::1/64')).toEqual({ family: 'ipv6', text: '2001:db8::/64' });
    for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'example.com/8', '10.0.0.0/', '10.0.0.0/-1', '']) expect(parseCidr(bad)).toBeNull();
  });
});
