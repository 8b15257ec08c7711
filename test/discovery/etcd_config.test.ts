// Top-level `discovery.etcd` and `node.service` in the config: what they compile to, defaults, and
// the shapes refused (one problem each, by path). The etcd parts themselves run against a real
// cluster (etcd_registration, etcd_discovery, etcd_churn).
import { describe, expect, it } from 'vitest';
import { compileEtcd, compileServiceRegistration } from '../../src/config/etcd.js';
import { compileConfig } from '../../src/config/load.js';
import { listed, minimal, OPTS, ok } from '../config/helpers.js';

const ETCD = { etcd: { endpoints: ['127.0.0.1:2379', 'etcd-1.mesh:2379', '[::1]:2379'] } };
const SERVICE = { name: 'api', address: '10.0.0.5', port: 15006 };

function withEtcd(discovery: unknown, service: unknown = SERVICE): Record<string, unknown> {
  const m = minimal();
  return { ...m, node: { ...(m['node'] as object), service }, discovery };
}

const refusals = (discovery: unknown, service: unknown = SERVICE): string[] => listed(compileConfig(withEtcd(discovery, service), OPTS));

describe('discovery.etcd and node.service config', () => {
  it('compiles with defaults: prefix /outrigger, plaintext, weight 1, no metadata, ttl_s 10', () => {
    const r = ok(compileConfig(withEtcd(ETCD), OPTS));
    expect(compileEtcd(r.source.discovery)).toEqual({ endpoints: ETCD.etcd.endpoints, prefix: '/outrigger', tls: null });
    expect(compileServiceRegistration(r.source.node.service)).toEqual({ ...SERVICE, weight: 1, metadata: {}, ttlS: 10 });
  });

  it('compiles TLS with and without a client certificate, a custom prefix, weight, metadata and ttl', () => {
    const tls = { ca: 'ca.pem', cert: 'c.pem', key: 'k.pem' };
    const r = ok(
      compileConfig(withEtcd({ etcd: { ...ETCD.etcd, prefix: '/prod/mesh', tls } }, { ...SERVICE, weight: 5, metadata: { zone: 'b' }, ttl_s: 30 }), OPTS),
    );
    expect(compileEtcd(r.source.discovery)).toMatchObject({ prefix: '/prod/mesh', tls: { ca: 'ca.pem', cert: 'c.pem', key: 'k.pem' } });
    expect(compileServiceRegistration(r.source.node.service)).toMatchObject({ weight: 5, metadata: { zone: 'b' }, ttlS: 30 });
    const caOnly = ok(compileConfig(withEtcd({ etcd: { ...ETCD.etcd, tls: { ca: 'ca.pem' } } }), OPTS));
    expect(compileEtcd(caOnly.source.discovery)?.tls).toEqual({ ca: 'ca.pem', cert: null, key: null });
  });

  it('refuses bad endpoints, prefixes, half a client certificate, and node.service without discovery', () => {
    expect(refusals({ etcd: { endpoints: [] } })[0]).toMatch(/^discovery\.etcd\.endpoints: /);
    expect(refusals({ etcd: { endpoints: ['etcd:0'] } })).toEqual([
      'discovery.etcd.endpoints[0]: must be host:port (a host name or IP literal, IPv6 in brackets; port 1-65535)',
    ]);
    expect(refusals({ etcd: { ...ETCD.etcd, prefix: '/outrigger/' } })[0]).toMatch(/^discovery\.etcd\.prefix: must be an absolute key path/);
    expect(refusals({ etcd: { ...ETCD.etcd, tls: { ca: 'a', cert: 'c' } } })).toEqual(['discovery.etcd.tls: give cert and key together']);
    expect(listed(compileConfig({ ...minimal(), node: { service: SERVICE } }, OPTS))).toEqual([
      'node.service: needs the top-level discovery: {etcd: {endpoints}} (the etcd cluster to register in)',
    ]);
  });

  it('refuses a service address that is not an IP literal, a bad port and a ttl below 2 s', () => {
    expect(refusals(ETCD, { ...SERVICE, address: 'api.local' })).toEqual([
      'node.service.address: must be an IP literal other sidecars connect to (IPv6 without brackets)',
    ]);
    expect(refusals(ETCD, { ...SERVICE, port: 0 })[0]).toMatch(/^node\.service\.port: /);
    expect(refusals(ETCD, { ...SERVICE, ttl_s: 1 })[0]).toMatch(/^node\.service\.ttl_s: /);
  });
});
