// The network-namespace helper itself: hosts on a LAN reach each other, a service address with no
// host behind it is still routable (its SYN leaves through eth0, where iptables can catch it), and
// closeAll() removes every namespace the test made.

import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll } from '../helpers/live.js';
import { createLan, netnsUnavailable } from '../helpers/netns.js';

const why = netnsUnavailable();

describe.skipIf(why !== null)(`network namespaces for tests${why === null ? '' : ` (skipped: ${why})`}`, () => {
  afterAll(closeAll);

  it('joins hosts on a LAN and cleans up every namespace', async () => {
    const lan = await createLan(250);
    const a = await lan.addHost('a', 1);
    const b = await lan.addHost('b', 2);
    const ping = await a.exec('ping', ['-c', '1', '-W', '5', b.address]);
    expect(ping.stdout).toContain('1 received');
    const route = await a.exec('ip', ['route', 'get', '10.96.0.10']);
    expect(route.stdout).toContain('dev eth0');
    const names = [lan.switch.name, a.name, b.name];
    await closeAll();
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const n of names) expect(left).not.toContain(n);
  });
});
