// listeners[].protocol and http2.* in the config: defaults per engine, what uws refuses (it has
// no HTTP/2), bounds, and that a protocol change rebinds the listener.

import { describe, expect, it } from 'vitest';
import { compileDelta } from '../../src/config/delta.js';
import { compileConfig } from '../../src/config/load.js';
import { listed, minimal, ok, OPTS } from '../config/helpers.js';

function withListener(extra: Record<string, unknown>): Record<string, unknown> {
  const cfg = minimal();
  const l = (cfg['listeners'] as Array<Record<string, unknown>>)[0]!;
  Object.assign(l, extra);
  return cfg;
}

describe('listeners[].protocol', () => {
  it('defaults to auto with 100 concurrent streams; uws defaults to http1', () => {
    const l = ok(compileConfig(minimal(), OPTS)).snapshot.listeners[0]!;
    expect(l.protocol).toBe('auto');
    expect(l.h2MaxConcurrentStreams).toBe(100);
    expect(ok(compileConfig(withListener({ engine: 'node' }), OPTS)).snapshot.listeners[0]!.protocol).toBe('auto');
    expect(ok(compileConfig(withListener({ engine: 'uws' }), OPTS)).snapshot.listeners[0]!.protocol).toBe('http1');
    expect(ok(compileConfig(withListener({ engine: 'uws', protocol: 'http1' }), OPTS)).snapshot.listeners[0]!.protocol).toBe('http1');
    const set = ok(compileConfig(withListener({ protocol: 'http2', http2: { max_concurrent_streams: 7 } }), OPTS)).snapshot.listeners[0]!;
    expect([set.protocol, set.h2MaxConcurrentStreams]).toEqual(['http2', 7]);
  });

  it('refuses HTTP/2 on engine uws, a protocol it does not know, and stream limits out of range', () => {
    expect(listed(compileConfig(withListener({ engine: 'uws', protocol: 'http2' }), OPTS))).toEqual([
      'listeners[0].protocol: engine uws serves HTTP/1.1 only: protocol http2 needs engine strict (the default) or node',
    ]);
    expect(listed(compileConfig(withListener({ engine: 'uws', protocol: 'auto' }), OPTS))).toEqual([
      'listeners[0].protocol: engine uws serves HTTP/1.1 only: protocol auto needs engine strict (the default) or node',
    ]);
    expect(listed(compileConfig(withListener({ protocol: 'h2c' }), OPTS))[0]).toMatch(/^listeners\[0\]\.protocol: /);
    expect(listed(compileConfig(withListener({ http2: { max_concurrent_streams: 0 } }), OPTS))[0]).toMatch(/^listeners\[0\]\.http2\.max_concurrent_streams: /);
    expect(listed(compileConfig(withListener({ http2: { window: 1 } }), OPTS))[0]).toMatch(/^listeners\[0\]\.http2/);
  });

  it('a protocol change rebinds the listener; a stream limit change does not', () => {
    const a = ok(compileConfig(minimal(), OPTS)).snapshot;
    const b = ok(compileConfig(withListener({ protocol: 'http1' }), { ...OPTS, version: 2 })).snapshot;
    const c = ok(compileConfig(withListener({ http2: { max_concurrent_streams: 50 } }), { ...OPTS, version: 3 })).snapshot;
    expect(compileDelta(a, b, null).listeners.changed[0]?.rebind).toBe(true);
    expect(compileDelta(a, c, null).listeners.changed[0]?.rebind).toBe(false);
  });
});
