// `engine: strict` in the config (src/config/schema.ts, compile.ts): accepted on plaintext and
// TLS listeners, never chosen unless named (the default stays node, TLS listeners stay on node),
// and an unknown engine is still a schema error.

import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import type { ListenerSpec } from '../../src/config/types.js';
import { minimal, ok, OPTS, problems } from '../config/helpers.js';

type Obj = Record<string, unknown>;

function config(listener: Obj, tls: boolean): Obj {
  const cfg = minimal();
  cfg['listeners'] = [{ name: 'l', address: '127.0.0.1:0', routes: [{ cluster: 'api' }], ...listener }];
  cfg['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }] }];
  if (tls) {
    cfg['tls'] = { ca: { dir: './ca' } };
    cfg['node'] = { identity: 'spiffe://td/ns/a/sa/me' };
  }
  return cfg;
}

function listenerOf(listener: Obj, tls = false): ListenerSpec {
  const l = ok(compileConfig(config(listener, tls), OPTS)).snapshot.listeners[0];
  if (l === undefined) expect.fail('no listener');
  return l;
}

describe('engine: strict', () => {
  it('plaintext listener', () => {
    expect(listenerOf({ engine: 'strict' })).toMatchObject({ engine: 'strict', tls: null });
  });

  it('TLS and mTLS listeners that name it', () => {
    expect(listenerOf({ engine: 'strict', tls: { mode: 'tls' } }, true)).toMatchObject({ engine: 'strict', tls: 'tls' });
    expect(listenerOf({ engine: 'strict', tls: { mode: 'mtls' } }, true)).toMatchObject({ engine: 'strict', tls: 'mtls' });
  });

  it('is the default for plaintext and TLS listeners; node is chosen by naming it', () => {
    expect(listenerOf({}).engine).toBe('strict');
    expect(listenerOf({ tls: { mode: 'mtls' } }, true).engine).toBe('strict');
    expect(listenerOf({ engine: 'node', tls: { mode: 'tls' } }, true).engine).toBe('node');
    expect(listenerOf({ engine: 'node' }).engine).toBe('node');
  });

  it('an unknown engine is refused', () => {
    expect(problems(compileConfig(config({ engine: 'llhttp' }, false), OPTS)).map((p) => String(p.path))).toEqual(['listeners[0].engine']);
  });
});
