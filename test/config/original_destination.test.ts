// `original_destination`, `outbound_policy` and `clusters[].addresses` in the config: what
// compiles (the service table every original_destination listener carries, allow_any by
// default), and each combination that could not mean what it says refused at its path.

import { describe, expect, it } from 'vitest';
import { checkInterception } from '../../src/cli/preflight.js';
import { parseConfigText } from '../../src/config/load.js';
import { listed, ok, OPTS } from './helpers.js';

function parse(cfg: Record<string, unknown>): ReturnType<typeof parseConfigText> {
  return parseConfigText(JSON.stringify(cfg), OPTS);
}

const clusters = [
  { name: 'web', endpoints: [{ address: '10.0.0.5:8080' }], addresses: ['10.96.0.10:8080', '[fd00::10]:80'] },
  { name: 'db', endpoints: [{ address: '10.0.0.6:6379' }], addresses: ['10.96.0.11:6379'] },
];
const routes = [{ cluster: 'web' }];
const listener = (extra: Record<string, unknown>): Record<string, unknown> => ({ name: 'out', address: '127.0.0.1:0', routes, ...extra });
const mtls = { node: { identity: 'spiffe://cluster.local/ns/default/sa/api' }, tls: { ca: { dir: './ca' } } };

describe('original_destination in the config', () => {
  it('compiles the service table (IPv6 bracketed) and allow_any by default; off by default', () => {
    const s = ok(parse({ listeners: [listener({ original_destination: true })], clusters })).snapshot;
    expect(s.listeners[0]?.originalDestination).toEqual({
      outboundPolicy: 'allow_any',
      services: { '10.96.0.10:8080': 'web', '[fd00::10]:80': 'web', '10.96.0.11:6379': 'db' },
    });
    const r = ok(parse({ listeners: [listener({ original_destination: true, outbound_policy: 'registry_only' })], clusters })).snapshot;
    expect(r.listeners[0]?.originalDestination?.outboundPolicy).toBe('registry_only');
    expect(ok(parse({ listeners: [listener({})], clusters })).snapshot.listeners[0]?.originalDestination).toBeNull();
  });

  it('compiles on tcp and http1 listeners, and on an inbound mtls listener', () => {
    const tcp = { name: 'tcp', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'db', original_destination: true };
    const s = ok(parse({ listeners: [tcp, listener({ protocol: 'http1', original_destination: true })], clusters })).snapshot;
    expect(s.listeners.map((l) => l.originalDestination !== null)).toEqual([true, true]);
    const inbound = ok(parse({ ...mtls, listeners: [listener({ tls: { mode: 'mtls' }, original_destination: true })], clusters })).snapshot;
    expect(inbound.listeners[0]).toMatchObject({ tls: 'mtls', originalDestination: { outboundPolicy: 'allow_any' } });
  });

  it('needs no routes on an outbound listener (a service address falls back to its cluster), still does inbound', () => {
    const bare = { name: 'out', address: '127.0.0.1:0', original_destination: true };
    const s = ok(parse({ listeners: [bare], clusters })).snapshot;
    expect(s.listeners[0]).toMatchObject({ routes: [], originalDestination: { outboundPolicy: 'allow_any' } });
    expect(listed(parse({ ...mtls, listeners: [{ ...bare, tls: { mode: 'mtls' } }], clusters }))).toContain(
      'listeners[0].routes: required (at least one route), unless protocol is tcp or the listener routes by original_destination',
    );
  });

  it('refuses engine uws (no fd) and protocol http2, naming the reason', () => {
    expect(listed(parse({ listeners: [listener({ engine: 'uws', original_destination: true })], clusters }))).toEqual([
      'listeners[0].original_destination: engine uws cannot read the original destination (uWS hides the socket fd that SO_ORIGINAL_DST is read from): use strict (the default) or node',
    ]);
    expect(listed(parse({ listeners: [listener({ protocol: 'http2', original_destination: true })], clusters }))).toEqual([
      'listeners[0].original_destination: needs protocol tcp, auto or http1 (an intercepted connection may be any TCP, not only HTTP/2)',
    ]);
  });

  it('refuses outbound_policy without original_destination, on an inbound listener, and an unknown policy', () => {
    expect(listed(parse({ listeners: [listener({ outbound_policy: 'registry_only' })], clusters }))).toEqual([
      'listeners[0].outbound_policy: only with original_destination: true (it decides for original destinations no cluster owns)',
    ]);
    expect(listed(parse({ ...mtls, listeners: [listener({ tls: {}, original_destination: true, outbound_policy: 'allow_any' })], clusters }))).toEqual([
      'listeners[0].outbound_policy: a tls listener with original_destination is inbound (each connection goes to the local app at its original port): outbound_policy does not apply',
    ]);
    const bad = listed(parse({ listeners: [listener({ original_destination: true, outbound_policy: 'ALLOW_ANY' })], clusters }));
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatch(/^listeners\[0\]\.outbound_policy: /);
    expect(listed(parse({ listeners: [listener({ original_destination: 'yes' })], clusters }))[0]).toMatch(/^listeners\[0\]\.original_destination: /);
  });

  it('refuses an address owned by two clusters (naming both), listed twice, or not ip:port', () => {
    const two = [clusters[0], { ...clusters[1], addresses: ['10.96.0.11:6379', '10.96.0.10:8080'] }];
    expect(listed(parse({ listeners: [listener({})], clusters: two }))).toEqual([
      'clusters[1].addresses[1]: service address 10.96.0.10:8080 is owned by cluster "web" (clusters[0].addresses[0]) and by cluster "db": an address belongs to one cluster',
    ]);
    const twice = [{ ...clusters[1], addresses: ['10.96.0.11:6379', '10.96.0.11:6379'] }];
    expect(listed(parse({ listeners: [{ name: 't', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'db' }], clusters: twice }))).toEqual([
      'clusters[0].addresses[1]: service address 10.96.0.11:6379 is already listed at clusters[0].addresses[0]: an address belongs to one cluster',
    ]);
    const names = listed(parse({ listeners: [listener({})], clusters: [{ ...clusters[0], addresses: ['web.svc:80', '10.96.0.10:0'] }] }));
    expect(names).toEqual([
      'clusters[0].addresses[0]: host "web.svc" in "web.svc:80" must be an IP address or localhost (DNS names are not resolved here)',
      'clusters[0].addresses[1]: port 0 in "10.96.0.10:0" is not allowed here (1-65535)',
    ]);
  });

  it('a sidecar without the SO_ORIGINAL_DST addon refuses an original_destination config at start, with the reason', () => {
    const s = ok(
      parse({ listeners: [listener({}), listener({ name: 'intercepted', address: '127.0.0.1:1', original_destination: true })], clusters }),
    ).snapshot;
    expect(checkInterception(s.listeners, () => false)).toBe(
      'listener intercepted has original_destination: true, but the native addon that reads SO_ORIGINAL_DST (native/reuseport) is not built or not loadable: run "npm ci"',
    );
    expect(checkInterception(s.listeners, () => true)).toBeNull();
    const plain = ok(parse({ listeners: [listener({})], clusters })).snapshot;
    expect(checkInterception(plain.listeners, () => false)).toBeNull();
    // Here the addon is built (npm ci): the real check passes.
    expect(checkInterception(s.listeners)).toBeNull();
  });
});
