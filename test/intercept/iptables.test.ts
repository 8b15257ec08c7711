// `outrigger iptables install | uninstall | show` against a real nat table, in a network namespace
// the test creates: dry-run changes nothing, install adds exactly the OUTRIGGER_* chains and two
// jumps (IPv4, and IPv6 where ip6tables works), a second install changes nothing, uninstall gives
// back the table exactly as it was (an unrelated rule added first survives), and user mistakes
// (not root, no iptables, a bad flag) get one clear line and exit 2; a rule iptables refuses leaves
// nothing behind.

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll, tempDir } from '../helpers/live.js';
import { createNetns, netnsUnavailable } from '../helpers/netns.js';
import { CLI as CLI_PATH } from '../helpers/process.js';
import { natTable, outrigger, outriggerAs } from './iptables_helpers.js';

const why = netnsUnavailable();

const OPTIONS = [
  '--proxy-uid',
  '1337',
  '--exclude-inbound-ports',
  '15000,15020',
  '--exclude-outbound-ports',
  '5432',
  '--exclude-outbound-cidrs',
  '10.97.1.2/16,fd00::1/8',
];

/** What `iptables-save -t nat` shows of outrigger after install with OPTIONS (IPv4). */
const IPV4_RULES = [
  ':OUTRIGGER_INBOUND -',
  ':OUTRIGGER_IN_REDIRECT -',
  ':OUTRIGGER_OUTPUT -',
  ':OUTRIGGER_REDIRECT -',
  '-A PREROUTING -p tcp -j OUTRIGGER_INBOUND',
  '-A OUTPUT -p tcp -j OUTRIGGER_OUTPUT',
  '-A OUTRIGGER_INBOUND -p tcp -m tcp --dport 15000 -j RETURN',
  '-A OUTRIGGER_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
  '-A OUTRIGGER_INBOUND -p tcp -j OUTRIGGER_IN_REDIRECT',
  '-A OUTRIGGER_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
  '-A OUTRIGGER_OUTPUT -m owner --uid-owner 1337 -j RETURN',
  '-A OUTRIGGER_OUTPUT -o lo -j RETURN',
  '-A OUTRIGGER_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN',
  '-A OUTRIGGER_OUTPUT -d 10.97.0.0/16 -j RETURN',
  '-A OUTRIGGER_OUTPUT -j OUTRIGGER_REDIRECT',
  '-A OUTRIGGER_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
];

/** The lines of a saved table that belong to outrigger. */
function outriggerLines(saved: string): string[] {
  return saved.split('\n').filter((l) => l.includes('OUTRIGGER_'));
}

describe.skipIf(why !== null)(`outrigger iptables in a network namespace${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('--dry-run prints the commands install would run and changes nothing', async () => {
    const ns = await createNetns('ipt');
    const before = [await natTable(ns, 'ipv4'), await natTable(ns, 'ipv6')];
    const r = await outrigger(ns, ['iptables', 'install', ...OPTIONS, '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('# ipv4 (iptables): would run\n');
    expect(r.stdout).toContain('iptables -w -t nat -N OUTRIGGER_OUTPUT\n');
    expect(r.stdout).toContain('iptables -w -t nat -A OUTRIGGER_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n');
    expect(r.stdout).toContain('iptables -w -t nat -A OUTRIGGER_OUTPUT -d 10.97.0.0/16 -j RETURN\n');
    expect(r.stdout).toContain('# ipv6 (ip6tables): would run\n');
    expect(r.stdout).toContain('ip6tables -w -t nat -A OUTRIGGER_OUTPUT -d fd00::/8 -j RETURN\n');
    expect([await natTable(ns, 'ipv4'), await natTable(ns, 'ipv6')]).toEqual(before);
  });

  it('install adds the chains and jumps, for IPv4 and IPv6; a second install changes nothing', async () => {
    const ns = await createNetns('ipt');
    const first = await outrigger(ns, ['iptables', 'install', ...OPTIONS]);
    expect(first.code, first.stderr).toBe(0);
    const v4 = await natTable(ns, 'ipv4');
    expect(outriggerLines(v4)).toEqual(IPV4_RULES);
    const v6 = await natTable(ns, 'ipv6');
    expect(outriggerLines(v6)).toEqual(IPV4_RULES.map((l) => l.replace('10.97.0.0/16', 'fd00::/8')));

    const second = await outrigger(ns, ['iptables', 'install', ...OPTIONS]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe('# ipv4 (iptables): already installed, nothing to change\n# ipv6 (ip6tables): already installed, nothing to change\n');
    expect(await natTable(ns, 'ipv4')).toBe(v4);
    expect(await natTable(ns, 'ipv6')).toBe(v6);
  });

  it('install with other options replaces the rules: the same table as a fresh install of those options', async () => {
    const ns = await createNetns('ipt');
    const fresh = await createNetns('ipt');
    const other = ['--proxy-uid', '2000', '--proxy-gid', '2001', '--outbound-port', '16001', '--inbound-port', '16006'];
    expect((await outrigger(ns, ['iptables', 'install', ...OPTIONS])).code).toBe(0);
    const replaced = await outrigger(ns, ['iptables', 'install', ...other]);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stdout).toContain('# ipv4 (iptables): replacing the installed rules (other options)\n');
    expect((await outrigger(fresh, ['iptables', 'install', ...other])).code).toBe(0);
    expect(await natTable(ns, 'ipv4')).toBe(await natTable(fresh, 'ipv4'));
    expect(await natTable(ns, 'ipv6')).toBe(await natTable(fresh, 'ipv6'));
    expect(await natTable(ns, 'ipv4')).toContain('-A OUTRIGGER_OUTPUT -m owner --gid-owner 2001 -j RETURN');
  });

  it('uninstall restores the table exactly as it was: rules that are not outrigger survive', async () => {
    const ns = await createNetns('ipt');
    for (const tool of ['iptables', 'ip6tables']) {
      await ns.exec(tool, ['-w', '-t', 'nat', '-N', 'SOMEONE_ELSE']);
      await ns.exec(tool, ['-w', '-t', 'nat', '-A', 'SOMEONE_ELSE', '-p', 'tcp', '--dport', '9999', '-j', 'RETURN']);
      await ns.exec(tool, ['-w', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-m', 'comment', '--comment', 'keep me', '-j', 'SOMEONE_ELSE']);
      await ns.exec(tool, ['-w', '-t', 'nat', '-A', 'PREROUTING', '-p', 'udp', '--dport', '53', '-j', 'RETURN']);
    }
    const before = [await natTable(ns, 'ipv4'), await natTable(ns, 'ipv6')];
    expect((await outrigger(ns, ['iptables', 'install', ...OPTIONS])).code).toBe(0);
    expect(outriggerLines(await natTable(ns, 'ipv4'))).toEqual(IPV4_RULES);

    const removed = await outrigger(ns, ['iptables', 'uninstall']);
    expect(removed.code, removed.stderr).toBe(0);
    expect([await natTable(ns, 'ipv4'), await natTable(ns, 'ipv6')]).toEqual(before);
    expect(before[0]).toContain('-A OUTPUT -p tcp -m comment --comment "keep me" -j SOMEONE_ELSE');

    const again = await outrigger(ns, ['iptables', 'uninstall']);
    expect(again.stdout).toBe('# ipv4 (iptables): nothing installed\n# ipv6 (ip6tables): nothing installed\n');
  });

  it('show prints the installed chains and jumps per family, or says nothing is installed', async () => {
    const ns = await createNetns('ipt');
    expect((await outrigger(ns, ['iptables', 'show'])).stdout).toBe('# ipv4 (iptables): nothing installed\n# ipv6 (ip6tables): nothing installed\n');
    expect((await outrigger(ns, ['iptables', 'install', ...OPTIONS])).code).toBe(0);
    const shown = await outrigger(ns, ['iptables', 'show']);
    expect(shown.code).toBe(0);
    const [v4, v6] = shown.stdout.split('# ipv6 (ip6tables): installed\n');
    const asSaved = IPV4_RULES.map((l) => l.replace(/^:(\S+) -$/, '-N $1'));
    expect(v4).toBe(`# ipv4 (iptables): installed\n${asSaved.join('\n')}\n`);
    expect(v6).toBe(`${asSaved.map((l) => l.replace('10.97.0.0/16', 'fd00::/8')).join('\n')}\n`);
  });

  it('removes what it added when iptables refuses a rule, and names the command and the refusal (exit 1)', async () => {
    const ns = await createNetns('ipt');
    // An iptables that refuses the outbound REDIRECT rule (the 14th of 16) and runs every other call for real.
    const bin = tempDir('outrigger-fakeipt-');
    const real = spawnSync('sh', ['-c', 'command -v iptables'], { encoding: 'utf8' }).stdout.trim();
    writeFileSync(
      path.join(bin, 'iptables'),
      `#!/bin/sh\ncase "$*" in *"--to-ports 15001"*) echo "iptables: refused by the test" >&2; exit 1;; esac\nexec ${real} "$@"\n`,
      { mode: 0o755 },
    );
    const before = [await natTable(ns, 'ipv4'), await natTable(ns, 'ipv6')];
    const r = await ns.try('env', [`PATH=${bin}:${process.env['PATH'] ?? ''}`, process.execPath, CLI_PATH, 'iptables', 'install', ...OPTIONS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('outrigger: iptables -w -t nat -A OUTRIGGER_REDIRECT -p tcp -j REDIRECT --to-ports 15001 failed: iptables: refused by the test\n');
    expect([await natTable(ns, 'ipv4'), await natTable(ns, 'ipv6')]).toEqual(before);
  });

  it('refuses to run without root, with one line that says so (exit 2)', async () => {
    const ns = await createNetns('ipt');
    for (const command of [['install', '--proxy-uid', '1337'], ['uninstall'], ['show']]) {
      const r = await outriggerAs(ns, 1000, ['iptables', ...command]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `outrigger: iptables ${command[0]} must run as root (or with CAP_NET_ADMIN, e.g. an init container with the NET_ADMIN capability)\n`,
      );
    }
    expect(await natTable(ns)).not.toContain('OUTRIGGER_');
  });

  it('says which package to install when iptables is not in PATH (exit 2)', async () => {
    const ns = await createNetns('ipt');
    const emptyPath = tempDir('outrigger-nopath-');
    const r = await ns.try('env', [`PATH=${emptyPath}`, process.execPath, CLI_PATH, 'iptables', 'install', '--proxy-uid', '1337']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('outrigger: iptables not found in PATH: install the iptables package (Debian: apt-get install iptables)\n');
  });

  it('names the flag of a bad port, CIDR or uid (exit 2) and changes nothing', async () => {
    const ns = await createNetns('ipt');
    const cases: Array<[string[], string]> = [
      [['--proxy-uid', '1337', '--exclude-inbound-ports', '15000,70000'], '--exclude-inbound-ports: "70000" is not a port (1-65535)'],
      [['--proxy-uid', '1337', '--outbound-port', 'x'], '--outbound-port: "x" is not a port (1-65535)'],
      [
        ['--proxy-uid', '1337', '--exclude-outbound-cidrs', '10.0.0.0/33'],
        '--exclude-outbound-cidrs: "10.0.0.0/33" is not an IPv4 or IPv6 CIDR (10.0.0.0/8, fd00::/8)',
      ],
      [['--proxy-uid', 'nobody'], '--proxy-uid must be a numeric id, got "nobody"'],
      [[], 'iptables install needs --proxy-uid UID (the uid the sidecar runs as: its own traffic is not redirected)'],
    ];
    for (const [flags, message] of cases) {
      const r = await outrigger(ns, ['iptables', 'install', ...flags]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`outrigger: ${message}\n`);
    }
    expect(await natTable(ns)).not.toContain('OUTRIGGER_');
  });
});
