// Property tests (fast-check): any generated valid config compiles, round-trips through YAML,
// JSON and structuredClone unchanged; and no input at all — junk values, mutated configs,
// random text — makes the config layer throw instead of answering with problems.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { compileConfig, parseConfigText } from '../../src/config/load.js';
import { OPTS } from './helpers.js';

const name = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,11}$/);
const port = fc.integer({ min: 1, max: 65535 });

const validConfig = fc.uniqueArray(name, { minLength: 1, maxLength: 4 }).chain((clusterNames) => {
  const clusterRef = fc.constantFrom(...clusterNames);
  const cluster = (n: string) =>
    fc.record(
      {
        name: fc.constant(n),
        lb: fc.constantFrom('least_request', 'round_robin', 'random'),
        endpoints: fc
          .uniqueArray(port, { minLength: 1, maxLength: 3 })
          .chain((ports) =>
            fc.tuple(...ports.map((p) => fc.record({ address: fc.constantFrom(`127.0.0.1:${p}`, `[::1]:${p}`), weight: fc.integer({ min: 1, max: 1000 }) }))),
          )
          .map((eps) => dedupeBy(eps, (e) => e.address)),
        pool: fc.record(
          { connections_per_worker: fc.integer({ min: 1, max: 10000 }), idle_timeout_ms: fc.integer({ min: 1, max: 1e6 }) },
          { requiredKeys: [] },
        ),
        circuit_breaker: fc.record(
          { max_pending: fc.integer({ min: 0, max: 100000 }), max_requests: fc.integer({ min: 1, max: 100000 }) },
          { requiredKeys: [] },
        ),
        retry_budget: fc.record(
          {
            percent: fc.integer({ min: 0, max: 100 }),
            min_concurrent: fc.integer({ min: 0, max: 100 }),
            min_retries_per_second: fc.integer({ min: 0, max: 100 }),
          },
          { requiredKeys: [] },
        ),
      },
      { requiredKeys: ['name', 'endpoints'] },
    );
  const match = fc.record(
    {
      host: fc.constantFrom('api', '*.svc.local', 'Example.COM', '*'),
      path_prefix: fc.stringMatching(/^\/[a-z0-9/]{0,8}$/),
      methods: fc.uniqueArray(fc.constantFrom('GET', 'post', 'Put', 'DELETE'), { minLength: 1 }),
      headers: fc.dictionary(
        fc.stringMatching(/^x-[a-z]{1,6}$/),
        fc.oneof(fc.string(), fc.record({ present: fc.boolean() }), fc.record({ regex: fc.constantFrom('a.*', '[0-9]+', 'x|y') })),
      ),
    },
    { requiredKeys: [] },
  );
  const split = fc
    .uniqueArray(clusterRef, { minLength: 1 })
    .chain((cs) => fc.tuple(...cs.map((c) => fc.record({ cluster: fc.constant(c), weight: fc.integer({ min: 1, max: 100 }) }))));
  const route = fc.oneof(
    fc.record({ match, cluster: clusterRef, timeout_ms: fc.nat() }, { requiredKeys: ['cluster'] }),
    fc.record({ match, split }, { requiredKeys: ['split'] }),
  );
  const listener = (n: string) =>
    fc.record(
      {
        name: fc.constant(n),
        address: fc.constantFrom('127.0.0.1:0', '[::1]:0', 'localhost:0'),
        max_request_headers_bytes: fc.integer({ min: 1024, max: 1048576 }),
        routes: fc.array(route, { minLength: 1, maxLength: 3 }),
        rate_limit: fc.record(
          { requests_per_second: fc.double({ min: 0.01, max: 1e6, noNaN: true }), burst: fc.integer({ min: 1, max: 1e6 }) },
          { requiredKeys: ['requests_per_second'] },
        ),
      },
      { requiredKeys: ['name', 'address', 'routes'] },
    );
  return fc.record(
    {
      node: fc.record({ workers: fc.oneof(fc.constant('auto'), fc.integer({ min: 1, max: 64 })) }, { requiredKeys: [] }),
      listeners: fc.uniqueArray(name, { maxLength: 3 }).chain((ns) => fc.tuple(...ns.map(listener))),
      clusters: fc.tuple(...clusterNames.map(cluster)),
    },
    { requiredKeys: ['listeners', 'clusters'] },
  );
});

function dedupeBy<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => !seen.has(key(t)) && seen.add(key(t)) !== undefined);
}

describe('properties', () => {
  it('any generated valid config compiles and round-trips', () => {
    fc.assert(
      fc.property(validConfig, (cfg) => {
        const r = compileConfig(cfg, OPTS);
        if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
        const s = r.snapshot;
        expect(structuredClone(s)).toEqual(s);
        expect(Object.isFrozen(s.clusters)).toBe(true);
        // The same config as YAML text, and the defaulted source fed back, give the same snapshot.
        const fromText = parseConfigText(stringify(cfg), OPTS);
        expect(fromText.ok && fromText.snapshot).toEqual(s);
        const again = compileConfig(JSON.parse(JSON.stringify(r.source)), OPTS);
        expect(again.ok && again.snapshot).toEqual(s);
        // Invariants of the compiled form.
        expect(s.listeners).toHaveLength(cfg.listeners.length);
        for (const l of s.listeners) {
          for (const route of l.routes) {
            if (route.action.kind === 'split') {
              expect(route.action.totalWeight).toBe(route.action.split.reduce((a, x) => a + x.weight, 0));
            }
            for (const h of route.match.headers) expect(h.name).toBe(h.name.toLowerCase());
            for (const m of route.match.methods ?? []) expect(m).toBe(m.toUpperCase());
          }
        }
        for (const c of s.clusters) {
          const raw = cfg.clusters.find((x) => x.name === c.name);
          const workers = s.node.workers;
          const pending = raw?.circuit_breaker?.max_pending ?? 1024;
          expect(c.pool.maxPending).toBe(pending === 0 ? 0 : Math.ceil(pending / workers));
          // Per-worker shares never fall below the sidecar-wide value divided, and max_requests stays ≥ 1.
          const maxRequests = raw?.circuit_breaker?.max_requests ?? 1024;
          expect(c.maxRequests).toBe(Math.ceil(maxRequests / workers));
          expect(c.maxRequests).toBeGreaterThanOrEqual(1);
          expect(c.retryBudget.percent).toBe(raw?.retry_budget?.percent ?? 20);
          expect(c.retryBudget.minConcurrent).toBe(Math.ceil((raw?.retry_budget?.min_concurrent ?? 3) / workers));
          expect(c.retryBudget.minPerSecond * workers).toBeCloseTo(raw?.retry_budget?.min_retries_per_second ?? 10);
        }
        for (const l of s.listeners) {
          // Generated listeners are plaintext: served by every worker, so the limit is divided.
          const raw = cfg.listeners.find((x) => x.name === l.name)?.rate_limit;
          if (raw === undefined) {
            expect(l.rateLimit).toBeNull();
            continue;
          }
          expect(l.rateLimit?.tokensPerSecond).toBeCloseTo(raw.requests_per_second / s.node.workers);
          const burst = raw.burst ?? Math.ceil(raw.requests_per_second);
          expect(l.rateLimit?.burst).toBe(Math.max(1, Math.ceil(burst / s.node.workers)));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('never throws on arbitrary values, answering with problems instead', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const r = compileConfig(value, OPTS);
        if (!r.ok) expect(r.problems.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on a valid config with one value replaced by junk', () => {
    fc.assert(
      fc.property(validConfig, fc.jsonValue(), fc.nat(), (cfg, junk, pick) => {
        const copy = JSON.parse(JSON.stringify(cfg)) as unknown;
        const slots = containers(copy);
        const slot = slots[pick % slots.length];
        if (slot !== undefined) {
          const keys = Object.keys(slot);
          const key = keys[pick % Math.max(1, keys.length)] ?? 'extra';
          (slot as Record<string, unknown>)[key] = junk;
        }
        const r = compileConfig(copy, OPTS);
        if (!r.ok) {
          expect(r.problems.length).toBeGreaterThan(0);
          for (const p of r.problems) expect(p.message.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on random text', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          validConfig.map((c) => stringify(c).slice(0, 40)),
        ),
        (text) => {
          expect(typeof parseConfigText(text, OPTS).ok).toBe('boolean');
        },
      ),
      { numRuns: 500 },
    );
  });
});

/** Every object and array inside a value, the value itself first. */
function containers(value: unknown): object[] {
  if (value === null || typeof value !== 'object') return [];
  return [value, ...Object.values(value).flatMap(containers)];
}
