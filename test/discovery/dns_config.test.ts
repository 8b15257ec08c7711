// Cluster `discovery` in the config: the shapes refused (one problem each, by path) and what a
// valid one compiles to. The sources themselves are tested against dnsmasq (dns_*.test.ts).
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import { listed, minimal, OPTS, ok } from '../config/helpers.js';

function withDiscovery(discovery: unknown): Record<string, unknown> {
  return { ...minimal(), clusters: [{ name: 'api', discovery }] };
}

function refusals(discovery: unknown): string[] {
  return listed(compileConfig(withDiscovery(discovery), OPTS));
}

describe('cluster discovery config', () => {
  it('compiles dns (A by default, system resolvers) and etcd', () => {
    const dns = ok(compileConfig(withDiscovery({ dns: { name: 'api.mesh.local.', port: 8080 } }), OPTS));
    expect(dns.snapshot.clusters[0]?.discovery).toEqual({ kind: 'dns', name: 'api.mesh.local.', type: 'A', port: 8080, refreshMs: 5000, resolvers: [] });
    expect(dns.snapshot.clusters[0]?.endpoints).toEqual([]);
    const aaaa = ok(compileConfig(withDiscovery({ dns: { name: 'api', port: 80, type: 'AAAA', refresh_ms: 2000, resolvers: ['[::1]:53'] } }), OPTS));
    expect(aaaa.snapshot.clusters[0]?.discovery).toEqual({ kind: 'dns', name: 'api', type: 'AAAA', port: 80, refreshMs: 2000, resolvers: ['[::1]:53'] });
    const etcd = ok(compileConfig(withDiscovery({ etcd: { service: 'api' } }), OPTS));
    expect(etcd.snapshot.clusters[0]?.discovery).toEqual({ kind: 'etcd', service: 'api' });
  });

  it('needs exactly one of dns or etcd', () => {
    expect(refusals({})).toEqual(['clusters[0].discovery: give exactly one of dns or etcd']);
    expect(refusals({ dns: { name: 'a', port: 1 }, etcd: { service: 'a' } })).toEqual(['clusters[0].discovery: give exactly one of dns or etcd']);
  });

  it('A and AAAA need the port; SRV refuses it (its records carry theirs)', () => {
    expect(refusals({ dns: { name: 'api' } })).toEqual(["clusters[0].discovery.dns: type A needs port (the endpoints' port)"]);
    expect(refusals({ dns: { name: 'api', type: 'AAAA' } })).toEqual(["clusters[0].discovery.dns: type AAAA needs port (the endpoints' port)"]);
    expect(refusals({ dns: { name: '_api._tcp.mesh', type: 'SRV', port: 80 } })).toEqual([
      'clusters[0].discovery.dns.port: SRV records carry their own port: leave port out',
    ]);
  });

  it('refuses a bad name, type, refresh below the 1 s floor, resolver that is not an IP and port, unknown keys', () => {
    expect(refusals({ dns: { name: 'a b', port: 80 } })).toEqual(['clusters[0].discovery.dns.name: must be a DNS name (got "a b")']);
    expect(refusals({ dns: { name: 'a', port: 80, type: 'MX' } })).toHaveLength(1);
    expect(refusals({ dns: { name: 'a', port: 80, refresh_ms: 10 } })[0]).toMatch(/^clusters\[0\]\.discovery\.dns\.refresh_ms: /);
    expect(refusals({ dns: { name: 'a', port: 80, resolvers: ['dns.google:53'] } })[0]).toMatch(
      /^clusters\[0\]\.discovery\.dns\.resolvers\[0\]: .*must be an IP address/,
    );
    expect(refusals({ dns: { name: 'a', port: 80, resolvers: [] } })[0]).toMatch(/^clusters\[0\]\.discovery\.dns\.resolvers: /);
    expect(refusals({ etcd: { service: 'a', prefix: '/x' } })[0]).toMatch(/^clusters\[0\]\.discovery\.etcd\.prefix: unknown key/);
  });

  it('refuses endpoints together with discovery', () => {
    const cfg = { ...minimal(), clusters: [{ name: 'api', endpoints: [{ address: '127.0.0.1:1' }], discovery: { etcd: { service: 'api' } } }] };
    expect(listed(compileConfig(cfg, OPTS))).toEqual(['clusters[0]: give endpoints or discovery, not both']);
  });
});
