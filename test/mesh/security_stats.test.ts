// Authorization decisions are counted per rule, and refused inbound handshakes per listener, in
// GET /stats (JSON) and GET /metrics (Prometheus) of the server-side sidecar. One counter
// pipeline (issue 10): the retry, overflow, retry-budget and upstream TLS handshake series are in
// /metrics at zero before any traffic, the whole /metrics text parses (promtool when installed,
// a strict line parser always), and the counters never go down across a rule change and a
// listener re-bind (new data-plane objects whose own counts start at zero).

import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  adminCall,
  caSource,
  clientSideConfig,
  closeAll,
  deadPort,
  eventually,
  get,
  parsePrometheus,
  sampleValue,
  startMeshServer,
  startSidecar,
  tempDir,
  WEB,
  type Sample,
  type Sidecar,
} from '../helpers/sidecar.js';

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

/** promtool's path, or null when it is not installed (then the strict parser alone judges). */
function promtool(): string | null {
  try {
    return execFileSync('which', ['promtool'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/** GET /metrics, checked: `promtool check metrics` when installed, and always the strict parser. */
async function scrape(sc: Sidecar): Promise<Sample[]> {
  const text = await adminGet(sc, '/metrics');
  const tool = promtool();
  if (tool !== null) {
    const file = path.join(tempDir(), 'metrics.txt');
    writeFileSync(file, text);
    // Exits non-zero on a parse error; lint findings (e.g. naming advice) are printed, not fatal.
    execFileSync('sh', ['-c', `"${tool}" check metrics < "${file}"`], { encoding: 'utf8' });
  }
  return parsePrometheus(text);
}

/** A TLS client without a certificate: the inbound listener refuses the handshake. */
function refusedHandshake(port: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca: ca.certPem, rejectUnauthorized: false }, () => s.write('GET /v1/a HTTP/1.1\r\nhost: x\r\n\r\n'));
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
}

describe('security counters', () => {
  it('before any traffic: retries, overflow and retry-budget exhaustion per cluster, upstream TLS handshakes per mTLS endpoint, all at 0; /metrics parses', async () => {
    const upstream = `127.0.0.1:${server.port('inbound')}`;
    const c = await scrape(client);
    for (const name of ['outrigger_retries_total', 'outrigger_overflow_total', 'outrigger_retry_budget_exhausted_total']) {
      expect([name, sampleValue(c, name, { cluster: 'api' })]).toEqual([name, 0]);
    }
    for (const name of ['outrigger_upstream_tls_handshakes_total', 'outrigger_upstream_tls_resumptions_total']) {
      expect([name, sampleValue(c, name, { cluster: 'api', endpoint: upstream })]).toEqual([name, 0]);
    }
    const s = await scrape(server);
    for (const name of ['outrigger_retries_total', 'outrigger_overflow_total', 'outrigger_retry_budget_exhausted_total']) {
      expect([name, sampleValue(s, name, { cluster: 'local-app' })]).toEqual([name, 0]);
    }
    expect(sampleValue(s, 'outrigger_tls_handshake_failures_total', { listener: 'inbound' })).toBe(0);
    expect(sampleValue(s, 'outrigger_authz_decisions_total', { listener: 'inbound', rule: '', decision: 'deny' })).toBe(0);

    // The first request through the mTLS cluster is one full handshake (counted, then it stays counted).
    expect((await get(client.port('outbound'), '/v1/first')).status).toBe(200);
    await eventually(
      async () =>
        (sampleValue(await scrape(client), 'outrigger_upstream_tls_handshakes_total', { cluster: 'api', endpoint: upstream }) ?? 0) >= 1 ? true : undefined,
      'the upstream handshake in /metrics',
    );
  });

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
      return row?.authorization.denied === 2 && row.authorization.allowed_by_rule[0] === 4 ? row : undefined;
    }, 'the authorization counters in /stats');
    expect(inbound.authorization).toEqual({ allowed_by_rule: [4, 1], denied: 2 }); // and /v1/first of the test above
    const metrics = await adminGet(server, '/metrics');
    expect(metrics).toContain('outrigger_authz_decisions_total{listener="inbound",rule="0",decision="allow"} 4');
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

  it('never go down: not across a rule change (PUT /config, new authorizer) nor a listener re-bind (PUT /config, new address)', async () => {
    const ALLOW0 = { listener: 'inbound', rule: '0', decision: 'allow' };
    const DENY = { listener: 'inbound', rule: '', decision: 'deny' };
    const FAILED = { listener: 'inbound' };
    const read = async (): Promise<{ allow0: number; deny: number; failed: number }> => {
      const m = await scrape(server);
      return {
        allow0: sampleValue(m, 'outrigger_authz_decisions_total', ALLOW0) ?? -1,
        deny: sampleValue(m, 'outrigger_authz_decisions_total', DENY) ?? -1,
        failed: sampleValue(m, 'outrigger_tls_handshake_failures_total', FAILED) ?? -1,
      };
    };
    const before = await read();
    expect(before.allow0).toBeGreaterThanOrEqual(4);
    expect(before.deny).toBe(2);
    expect(before.failed).toBeGreaterThanOrEqual(1);

    const running = (await adminCall(server, 'GET', '/config')).json.config as { listeners: Array<Record<string, unknown>> };
    const put = async (edit: (inbound: Record<string, unknown>) => void): Promise<void> => {
      const cfg = structuredClone(running);
      edit(cfg.listeners.find((l) => l['name'] === 'inbound')!);
      const r = await adminCall(server, 'PUT', '/config', cfg);
      expect([r.status, r.text]).toEqual([200, r.text]);
      Object.assign(running, cfg);
    };

    // A changed rule: the listener's authorizer is replaced, its own counts start at zero.
    await put((l) => {
      l['authorization'] = [
        { from: [WEB], paths: ['/v1/*', '/v3/*'], methods: ['GET'] },
        { from: [WEB], paths: ['/v2/*'] },
      ];
    });
    expect(await read()).toEqual(before);
    const out = client.port('outbound');
    expect((await get(out, '/v3/new')).status).toBe(200);
    expect((await get(out, '/nope')).status).toBe(403);
    await eventually(async () => {
      const now = await read();
      return now.deny === before.deny + 1 && now.allow0 === before.allow0 + 1 ? now : undefined;
    }, "the new authorizer's decisions added to the totals");
    await refusedHandshake(server.port('inbound'));
    await eventually(async () => ((await read()).failed === before.failed + 1 ? true : undefined), 'the refused handshake added');
    const afterRule = await read();

    // A re-bind: the listener moves to another port (a new listener object, counts at zero).
    const port = await deadPort();
    await put((l) => {
      l['address'] = `127.0.0.1:${port}`;
    });
    expect(await read()).toEqual(afterRule);
    await refusedHandshake(port);
    await eventually(async () => ((await read()).failed === afterRule.failed + 1 ? true : undefined), 'a refused handshake on the new address added');
    const last = await read();
    expect(last.allow0).toBe(afterRule.allow0);
    expect(last.deny).toBe(afterRule.deny);
  });
});
