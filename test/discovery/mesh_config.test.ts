// The mesh file's validation (src/discovery/mesh_config.ts): every problem by its path under
// `services.<name>`, with its line; a part without clusters is checked with the clusters its
// routes name assumed present; a part replaces exactly the local parts it sets.

import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import { parseMeshText, serviceConfig, validateMesh } from '../../src/discovery/mesh_config.js';
import { minimal, ok, OPTS } from '../config/helpers.js';

const listener = (cluster: string): Record<string, unknown> => ({ name: 'out', address: '127.0.0.1:15001', routes: [{ cluster }] });

describe('mesh file validation', () => {
  it('lists every problem of every service by path, with its line', () => {
    // The line numbers below count from 'services:' (line 1).
    const text = `services:
  web:
    listeners:
      - {name: out, address: "127.0.0.1:15001", routes: [{cluster: ap}]}
    clusters:
      - {name: api, endpoints: [{address: "127.0.0.1:8080"}]}
  db:
    clusters: [{name: pg, lb: fastest, endpoints: [{address: "127.0.0.1:5432"}]}]
    routes: []
extra: 1`;
    const r = parseMeshText(text, OPTS);
    expect(r.ok).toBe(false);
    const lines = r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message} @${p.line}`);
    expect(lines).toContainEqual(expect.stringMatching(/^extra: unknown key .* @10$/));
    expect(lines).toContainEqual(expect.stringMatching(/^services\.web\.listeners\[0\]\.routes\[0\]\.cluster: unknown cluster "ap".* @4$/));
    expect(lines).toContainEqual(expect.stringMatching(/^services\.db\.routes: unknown key/));
    expect(lines).toHaveLength(3);
  });

  it('refuses names that cannot be an etcd key segment, empty parts and an empty file', () => {
    const r = validateMesh({ services: { 'a/b': { clusters: [] }, web: {} } }, OPTS);
    expect(r.ok ? [] : r.problems.map((p) => p.path)).toEqual(['services["a/b"]', 'services.web.listeners']);
    expect(validateMesh({ services: {} }, OPTS).ok).toBe(false);
    expect(parseMeshText('', OPTS).ok).toBe(false);
  });

  it('checks a part without clusters with the clusters its routes name assumed present, and still checks the rest', () => {
    expect(validateMesh({ services: { web: { listeners: [listener('from-local-file')] } } }, OPTS).ok).toBe(true);
    const bad = validateMesh({ services: { web: { listeners: [{ ...listener('x'), address: 'nowhere' }] } } }, OPTS);
    expect(bad.ok ? [] : bad.problems.map((p) => p.path)).toEqual(['services.web.listeners[0].address']);
  });

  it('a part replaces exactly the local parts it sets', () => {
    const local = ok(compileConfig(minimal(), OPTS)).source;
    const clusters = [{ name: 'api', endpoints: [{ address: '127.0.0.1:9090' }] }];
    const merged = serviceConfig(local, { clusters });
    expect(merged['clusters']).toEqual(clusters);
    expect(merged['listeners']).toEqual(local.listeners);
    expect(merged['node']).toEqual(local.node);
    expect(ok(compileConfig(merged, OPTS)).snapshot.clusters[0]?.endpoints[0]?.address).toBe('127.0.0.1:9090');
  });
});
