// The installed rules really intercept: on a LAN of two hosts (network namespaces), host A runs
// `outrigger iptables install` and probe listeners on the outbound (15001) and inbound (15006)
// ports that read each connection's original destination with originalDestination(fd). Host B
// holds a "service" address (10.96.0.10) and an excluded one (10.97.0.5) with plain listeners, so
// a connection that is not redirected visibly arrives somewhere else. Also measures what one
// originalDestination(fd) call costs on a redirected connection (printed, never asserted).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll } from '../helpers/live.js';
import { netnsUnavailable, type Host } from '../helpers/netns.js';
import { outrigger, probeConnect, startProbe } from './iptables_helpers.js';
import { lanHosts } from './origdst_helpers.js';

const why = netnsUnavailable();

const PROXY_UID = 1337;
const APP_UID = 1000;
const SERVICE = '10.96.0.10';
const EXCLUDED_HOST = '10.97.0.5';

describe.skipIf(why !== null)(`iptables interception redirects real connections${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let a: Host;
  let b: Host;

  beforeAll(async () => {
    [a, b] = await lanHosts(231, 'a', 'b');
    for (const addr of [SERVICE, EXCLUDED_HOST]) await b.exec('ip', ['addr', 'add', `${addr}/32`, 'dev', 'eth0']);
    await startProbe(b, ['b-8080=0.0.0.0:8080', 'b-5432=0.0.0.0:5432']);
    await startProbe(a, ['outbound=0.0.0.0:15001:orig', 'inbound=0.0.0.0:15006:orig', 'loopback=127.0.0.1:9000', 'admin=0.0.0.0:15000']);
    const installed = await outrigger(a, [
      'iptables',
      'install',
      '--proxy-uid',
      String(PROXY_UID),
      '--exclude-inbound-ports',
      '15000',
      '--exclude-outbound-ports',
      '5432',
      '--exclude-outbound-cidrs',
      '10.97.0.0/16',
    ]);
    expect(installed.code, installed.stderr).toBe(0);
  });
  afterAll(closeAll);

  it('an app connection to a service address lands on the outbound port, which reads the original destination', async () => {
    const [answer] = await probeConnect(a, APP_UID, SERVICE, 8080);
    expect(answer).toMatchObject({ listener: 'outbound', original: `${SERVICE}:8080` });
  });

  it("the proxy's own connections (its uid) are not redirected", async () => {
    expect(await probeConnect(a, PROXY_UID, SERVICE, 8080)).toEqual([{ listener: 'b-8080' }]);
  });

  it('loopback, an excluded port and an excluded CIDR are not redirected', async () => {
    expect(await probeConnect(a, APP_UID, '127.0.0.1', 9000)).toEqual([{ listener: 'loopback' }]);
    expect(await probeConnect(a, APP_UID, SERVICE, 5432)).toEqual([{ listener: 'b-5432' }]);
    expect(await probeConnect(a, APP_UID, EXCLUDED_HOST, 8080)).toEqual([{ listener: 'b-8080' }]);
  });

  it("a connection from another host to the app's port lands on the inbound port with the original port; an excluded inbound port does not", async () => {
    const [answer] = await probeConnect(b, 0, a.address, 8080);
    expect(answer).toMatchObject({ listener: 'inbound', original: `${a.address}:8080` });
    expect(await probeConnect(b, 0, a.address, 15000)).toEqual([{ listener: 'admin' }]);
  });

  it('originalDestination(fd) on redirected connections: the cost of one call (reported, not asserted)', async () => {
    const N = 300;
    const answers = await probeConnect(a, APP_UID, SERVICE, 8080, N);
    expect(answers).toHaveLength(N);
    for (const ans of answers) expect(ans).toMatchObject({ listener: 'outbound', original: `${SERVICE}:8080` });
    const first = summary(answers.map((ans) => ans.ns ?? NaN));
    const repeated = summary(answers.map((ans) => ans.repeatNs ?? NaN));
    console.log(
      `originalDestination(fd), IPv4, ${N} redirected connections: first call per connection median ${first.median} µs (mean ${first.mean}, max ${first.max}); ` +
        `100 further calls on the same fd: median ${repeated.median} µs per call (mean ${repeated.mean})`,
    );
    expect(Number(first.median)).toBeGreaterThan(0);
  });
});

/** Median, mean and max of nanosecond samples, in µs with two decimals. */
function summary(ns: number[]): { median: string; mean: string; max: string } {
  const us = ns.map((n) => n / 1000).sort((x, y) => x - y);
  const mean = us.reduce((s, x) => s + x, 0) / us.length;
  const at = (i: number): string => (us[i] ?? NaN).toFixed(2);
  return { median: at(Math.floor(us.length / 2)), mean: mean.toFixed(2), max: at(us.length - 1) };
}

describe.skipIf(why !== null)(`ip6tables interception redirects real IPv6 connections${why === null ? '' : ` (skipped: ${why})`}`, () => {
  const A6 = 'fd00:231::1';
  const B6 = 'fd00:231::2';
  const SERVICE6 = 'fd00:96::10';
  let a: Host;
  let b: Host;

  beforeAll(async () => {
    [a, b] = await lanHosts(232, 'a6', 'b6');
    // nodad: the addresses are usable at once (no duplicate-address detection delay).
    for (const [host, addr] of [
      [a, `${A6}/64`],
      [b, `${B6}/64`],
      [b, `${SERVICE6}/128`],
    ] as const) {
      await host.exec('ip', ['-6', 'addr', 'add', addr, 'dev', 'eth0', 'nodad']);
    }
    await a.exec('ip', ['-6', 'route', 'add', 'default', 'dev', 'eth0']);
    await startProbe(b, ['b-8080=:::8080']);
    // "::" is dual-stack, as an interception listener bound to [::] would be.
    await startProbe(a, ['outbound=:::15001:orig', 'inbound=:::15006:orig']);
    const installed = await outrigger(a, ['iptables', 'install', '--proxy-uid', String(PROXY_UID)]);
    expect(installed.code, installed.stderr).toBe(0);
  });
  afterAll(closeAll);

  it('an app connection to an IPv6 service address lands on the outbound port with its original destination; the proxy uid goes direct', async () => {
    const [answer] = await probeConnect(a, APP_UID, SERVICE6, 8080);
    expect(answer).toMatchObject({ listener: 'outbound', original: `${SERVICE6}:8080` });
    expect(await probeConnect(a, PROXY_UID, SERVICE6, 8080)).toEqual([{ listener: 'b-8080' }]);
  });

  it('an IPv6 connection from another host lands on the inbound port with the original port', async () => {
    const [answer] = await probeConnect(b, 0, A6, 8080);
    expect(answer).toMatchObject({ listener: 'inbound', original: `${A6}:8080` });
  });
});
