// One identity matcher everywhere (DESIGN.md §8): authorization `from` on a real sidecar matches
// whole segments with the trust domain exact, and a pattern that would be a string prefix
// (`ns/x*`, `td*`) is refused when the config is loaded, with its path.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  caSource,
  closeAll,
  leaf,
  runUntilExit,
  serverSideConfig,
  startMeshServer,
  statusPresenting,
  type Sidecar,
  type Upstream as App,
} from '../helpers/sidecar.js';

const TD = 'cluster.local';
let ca: Ca;
let app: App;
let server: Sidecar;

beforeAll(async () => {
  ({ ca, app, server } = await startMeshServer({
    trustDomain: TD,
    authorization: [
      { from: [`spiffe://${TD}/ns/x/*`], paths: ['/x/*'] },
      { from: [`spiffe://${TD}/ns/*/sa/web`], paths: ['/web/*'] },
      { from: [`spiffe://${TD}/ns/prod/sa/*`], paths: ['/prod/*'] },
    ],
  }));
});
afterAll(closeAll);

/** Status of a GET by a client holding a leaf for `identity`. */
function statusAs(identity: string, path: string): Promise<number | string> {
  return statusPresenting(server.port('inbound'), ca.certPem, leaf(ca, identity), path);
}

describe('authorization `from` is segment-wise', () => {
  it.each([
    [`spiffe://${TD}/ns/x/sa/a`, '/x/1', 200],
    [`spiffe://${TD}/ns/x/sa/a/b`, '/x/1', 200], // a last "*": everything under ns/x/
    [`spiffe://${TD}/ns/xy/sa/a`, '/x/1', 403], // ns/x* would have let this through
    [`spiffe://${TD}/ns/x`, '/x/1', 403],
    [`spiffe://${TD}/ns/prod/sa/web`, '/web/1', 200],
    [`spiffe://${TD}/ns/dev/sa/web`, '/web/1', 200],
    [`spiffe://${TD}/ns/a/b/sa/web`, '/web/1', 403], // a middle "*" is exactly one segment
    [`spiffe://${TD}/ns/prod/sa/webx`, '/web/1', 403],
    [`spiffe://${TD}/ns/prod/sa/api`, '/prod/1', 200],
    [`spiffe://${TD}/ns/production/sa/api`, '/prod/1', 403],
  ])('%s GET %s → %i', async (identity, path, status) => {
    expect(await statusAs(identity, path)).toBe(status);
  });
});

describe('malformed patterns are refused at load, with their path', () => {
  it.each([
    [`spiffe://${TD}/ns/x*`, '"*" must be a whole path segment, not part of "x*"'],
    [`spiffe://${TD}*`, `the trust domain is matched exactly: no "*" in "${TD}*"`],
    [`spiffe://${TD}/ns/*x/sa/web`, '"*" must be a whole path segment, not part of "*x"'],
  ])('from: [%s]', async (pattern, why) => {
    const cfg = serverSideConfig({ tls: caSource(ca), app: app.address, authorization: [{ from: [pattern] }] });
    const r = await runUntilExit(cfg);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`listeners[0].authorization[0].from[0]: must be a SPIFFE ID or identity pattern: ${why} (got ${JSON.stringify(pattern)})`);
  });

  it('cluster identities use the same grammar', async () => {
    const cfg = serverSideConfig({ tls: caSource(ca), app: app.address });
    (cfg['clusters'] as Array<Record<string, unknown>>)[0]!['tls'] = { mode: 'mtls', identities: [`spiffe://${TD}/ns/x*`] };
    const r = await runUntilExit(cfg);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('clusters[0].tls.identities[0]: must be a SPIFFE ID or identity pattern: "*" must be a whole path segment');
  });
});
