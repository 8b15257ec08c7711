// Authorization decisions are counted per rule, and refused inbound handshakes per listener, in
// GET /stats (JSON) and GET /metrics (Prometheus) of the server-side sidecar.

import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import { caSource, clientSideConfig, closeAll, eventually, get, startMeshServer, startSidecar, WEB, type Sidecar } from '../helpers/sidecar.js';

let ca: Ca;
let server: Sidecar;
let client: Sidecar;

beforeAll(async () => {
  ({ ca, server } = await startMeshServer({
    authorization: [
      { from: [WEB], paths: ['/v1/*'], methods: ['GET'] },
      { from: [WEB], paths: ['/v2/*'] },
    ],
  }));
  client = await startSidecar(clientSideConfig({ tls: caSource(ca), upstream: `127.0.0.1:${server.port('inbound')}` }));
});
afterAll(closeAll);

async function adminGet(sc: Sidecar, p: string): Promise<string> {
  const r = await fetch(`${sc.admin}${p}`, { headers: { authorization: `Bearer ${sc.token}` } });
  expect(r.status).toBe(200);
  return r.text();
}

describe('security counters', () => {
  it('counts allowed requests per rule and denials', async () => {
    const out = client.port('outbound');
    for (let i = 0; i < 3; i++) expect((await get(out, '/v1/a')).status).toBe(200);
    expect((await get(out, '/v2/b', { method: 'POST' })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await get(out, '/nope')).status).toBe(403);
    // Workers post their counters' growth once a second: wait for this batch to arrive.
    const inbound = await eventually(async () => {
      const stats = JSON.parse(await adminGet(server, '/stats')) as {
        security: Array<{ listener: string; authorization: { allowed_by_rule: number[]; denied: number } }>;
      };
      const row = stats.security.find((s) => s.listener === 'inbound');
      return row?.authorization.denied === 2 ? row : undefined;
    }, 'the authorization counters in /stats');
    expect(inbound.authorization).toEqual({ allowed_by_rule: [3, 1], denied: 2 });
    const metrics = await adminGet(server, '/metrics');
    expect(metrics).toContain('outrigger_authz_decisions_total{listener="inbound",rule="0",decision="allow"} 3');
    expect(metrics).toContain('outrigger_authz_decisions_total{listener="inbound",rule="1",decision="allow"} 1');
    expect(metrics).toContain('outrigger_authz_decisions_total{listener="inbound",rule="",decision="deny"} 2');
  });

  it('counts inbound handshakes refused for want of a client certificate', async () => {
    const port = server.port('inbound');
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, rejectUnauthorized: false }, () => s.write('GET /v1/a HTTP/1.1\r\nhost: x\r\n\r\n'));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
    });
    const line = await eventually(async () => {
      const metrics = await adminGet(server, '/metrics');
      return /outrigger_tls_handshake_failures_total\{listener="inbound"\} [1-9]/.exec(metrics)?.[0];
    }, 'a refused handshake in /metrics');
    expect(line).toBeDefined();
  });
});
