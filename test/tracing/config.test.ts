// The `tracing` section: defaults and compiled form, and the problems a bad one gets, by path.

import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { OPTS } from '../config/helpers.js';

const BASE = `
listeners:
  - name: main
    address: 127.0.0.1:0
    routes: [{ match: { path_prefix: / }, cluster: app }]
clusters:
  - name: app
    endpoints: [{ address: 127.0.0.1:9 }]
`;

function problems(tracing: string): string[] {
  const r = parseConfigText(`${BASE}tracing: ${tracing}\n`, OPTS, 'test');
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('tracing config', () => {
  it('is off when absent', () => {
    const r = parseConfigText(BASE, OPTS, 'test');
    expect(r.ok && r.snapshot.tracing).toBeNull();
  });

  it('compiles with its defaults; a collector URL without a path gets /v1/traces', () => {
    const r = parseConfigText(`${BASE}tracing: { otlp_endpoint: "http://collector:4318" }\n`, OPTS, 'test');
    if (!r.ok) expect.fail(JSON.stringify(r.problems));
    expect(r.snapshot.tracing).toEqual({
      otlpEndpoint: 'http://collector:4318/v1/traces',
      sampleRate: 1,
      parentBased: true,
      w3c: true,
      b3: false,
      serviceName: 'outrigger',
      maxQueuedSpans: 2048,
      exportTimeoutMs: 10_000,
    });
    const custom = parseConfigText(`${BASE}tracing: { otlp_endpoint: "https://c/x", propagation: [b3], sample_rate: 0.01 }\n`, OPTS, 'test');
    expect(custom.ok && custom.snapshot.tracing).toMatchObject({ otlpEndpoint: 'https://c/x', w3c: false, b3: true, sampleRate: 0.01 });
  });

  it.each([
    ['{ sample_rate: 0.5 }', 'tracing.otlp_endpoint'],
    ['{ otlp_endpoint: "ftp://collector" }', 'tracing.otlp_endpoint'],
    ['{ otlp_endpoint: "collector:4318" }', 'tracing.otlp_endpoint'],
    ['{ otlp_endpoint: "http://c", sample_rate: 1.5 }', 'tracing.sample_rate'],
    ['{ otlp_endpoint: "http://c", sample_rate: -0.1 }', 'tracing.sample_rate'],
    ['{ otlp_endpoint: "http://c", propagation: [jaeger] }', 'tracing.propagation[0]'],
    ['{ otlp_endpoint: "http://c", propagation: [] }', 'tracing.propagation'],
    ['{ otlp_endpoint: "http://c", max_queued_spans: 0 }', 'tracing.max_queued_spans'],
    ['{ otlp_endpoint: "http://c", sampling: 1 }', 'tracing.sampling'],
  ])('%s is refused at %s', (tracing, path) => {
    const p = problems(tracing);
    expect(p.length).toBeGreaterThan(0);
    expect(
      p.some((x) => x.startsWith(`${path}:`)),
      p.join('\n'),
    ).toBe(true);
  });
});
