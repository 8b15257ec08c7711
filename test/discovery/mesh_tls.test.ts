// `outrigger mesh` against an etcd that asks every client for a certificate (TLS, RBAC on, the
// certificate's CN as the etcd user; test/helpers/etcd_tls.ts). With --cacert/--cert/--key, or
// -c CONFIG taking them from a sidecar config's discovery.etcd, apply, status and rollback reach
// it; an operator user with write on <p>/mesh/ only is enough. Without a certificate, or as a
// user without write on <p>/mesh/, each command exits 1 with one line naming the cause.

import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdUnavailable } from '../helpers/etcd.js';
import { addRoleUser, startTlsEtcd, type TlsEtcd } from '../helpers/etcd_tls.js';
import { closeAll, deadPort, eventually, httpGet, spawnCli, startSidecar, startUpstream, tempDir, type Sidecar } from '../helpers/sidecar.js';

const why = etcdUnavailable();

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

async function mesh(args: readonly string[]): Promise<CliResult> {
  const p = spawnCli(['mesh', ...args]);
  const code = await p.exit(30_000);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

function writeJson(name: string, doc: unknown): string {
  const file = path.join(tempDir('outrigger-mesh-tls-'), name);
  writeFileSync(file, JSON.stringify(doc));
  return file;
}

/** A refusal as the operator should see it: exit 1, one line, no stack trace. */
function expectOneLineFailure(r: CliResult): void {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe('');
  // One line: nothing else on stderr either (node's DEP0123 for an IP-literal TLS server name included).
  expect(r.stderr.trimEnd().split('\n'), r.stderr).toHaveLength(1);
  expect(r.stderr).toMatch(/^outrigger mesh: etcd: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe.skipIf(why !== null)(`outrigger mesh against etcd with client certificates${why === null ? '' : ` (skipped: ${why})`}`, () => {
  let etcd: TlsEtcd;
  let api: Sidecar;
  /** --etcd, --cacert and the operator's --cert/--key. */
  let operatorFlags: string[];
  afterAll(closeAll);

  beforeAll(async () => {
    etcd = await startTlsEtcd();
    // The operator's role: the mesh config, and reading what status shows (README "Running a mesh").
    await addRoleUser(etcd, 'operator', 'mesh-operator', [
      ['readwrite', '/outrigger/mesh/'],
      ['read', '/outrigger/sidecars/'],
      ['read', '/outrigger/services/'],
    ]);
    // Service api's role, as etcd_rbac.test sets it up.
    await addRoleUser(etcd, 'api.default', 'svc-api', [
      ['readwrite', '/outrigger/services/api/'],
      ['readwrite', '/outrigger/sidecars/'],
      ['read', '/outrigger/mesh/'],
    ]);

    const operator = etcd.cert('operator');
    operatorFlags = ['--etcd', etcd.endpoint, '--cacert', etcd.ca, '--cert', operator.cert, '--key', operator.key];
    const up = await startUpstream('app');
    const port = await deadPort();
    api = await startSidecar({
      node: { workers: 1, drain_timeout_ms: 1000, service: { name: 'api', address: '127.0.0.1', port } },
      discovery: { etcd: { endpoints: [etcd.endpoint], tls: { ca: etcd.ca, ...etcd.cert('api.default') } } },
      listeners: [{ name: 'main', address: `127.0.0.1:${port}`, routes: [{ name: 'all', match: { path_prefix: '/' }, cluster: 'app' }] }],
      clusters: [{ name: 'app', endpoints: [{ address: up.address }] }],
    });
  }, 120_000);

  it('apply and rollback with --cacert/--cert/--key; status with -c CONFIG shows the sidecar at each version', async () => {
    const blue = await startUpstream('blue');
    const meshFile = writeJson('mesh.json', {
      services: { api: { clusters: [{ name: 'app', endpoints: [{ address: blue.address }] }] } },
    });
    const applied = await mesh(['apply', '-f', meshFile, ...operatorFlags]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toBe('mesh version 1 written\n');

    // -c: an operator's sidecar-shaped config naming etcd, its TLS and the operator's certificate.
    const operator = etcd.cert('operator');
    const config = writeJson('operator.json', {
      discovery: { etcd: { endpoints: [etcd.endpoint], tls: { ca: etcd.ca, cert: operator.cert, key: operator.key } } },
      listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }],
      clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1:9' }] }],
    });
    const apiRow = async (): Promise<Record<string, unknown> | undefined> => {
      const r = await mesh(['status', '-c', config, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const s = JSON.parse(r.stdout) as { current_version: number; sidecars: Array<Record<string, unknown>> };
      return s.sidecars.find((row) => row['id'] === `${os.hostname()}-${api.pid}`);
    };
    await eventually(async () => ((await apiRow())?.['applied_version'] === 1 ? true : undefined), 'the api sidecar at mesh version 1', 30_000, 200);
    expect(await apiRow()).toMatchObject({ service: 'api', registered: true, status: 'ok', lag: 0 });
    expect((await httpGet(api.url('/x'))).text).toBe('blue /x');

    const rolledBack = await mesh(['rollback', '--to', '1', '-c', config]);
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    expect(rolledBack.stdout).toContain('mesh version 2 written');
    await eventually(async () => ((await apiRow())?.['applied_version'] === 2 ? true : undefined), 'the api sidecar at mesh version 2', 30_000, 200);
  });

  it('without a client certificate: exit 1, one line', async () => {
    const r = await mesh(['status', '--etcd', etcd.endpoint, '--cacert', etcd.ca]);
    expectOneLineFailure(r);
    expect(r.stderr).toContain('TLS handshake failed');
    expect(r.stderr).toContain('etcd wants a client certificate it trusts (--cert FILE --key FILE)');
  });

  it('plain http to the TLS port: exit 1, one line', async () => {
    expectOneLineFailure(await mesh(['status', '--etcd', etcd.endpoint]));
  });

  it("a service's certificate cannot write the mesh config: exit 1, permission denied, nothing written", async () => {
    const before = await etcd.ctl(['get', '/outrigger/mesh/current', '--print-value-only']);
    const asApi = etcd.cert('api.default');
    const meshFile = writeJson('forged.json', { services: { api: { clusters: [{ name: 'app', endpoints: [{ address: '127.0.0.1:9' }] }] } } });
    const r = await mesh(['apply', '-f', meshFile, '--etcd', etcd.endpoint, '--cacert', etcd.ca, '--cert', asApi.cert, '--key', asApi.key]);
    expectOneLineFailure(r);
    expect(r.stderr).toContain('permission denied');
    expect(await etcd.ctl(['get', '/outrigger/mesh/current', '--print-value-only'])).toBe(before);
  });

  it('bad TLS flags are usage errors (exit 2) before etcd is contacted', async () => {
    const cert = etcd.cert('operator');
    const noKey = await mesh(['status', '--etcd', etcd.endpoint, '--cacert', etcd.ca, '--cert', cert.cert]);
    expect(noKey).toMatchObject({ code: 2, stderr: 'outrigger mesh: --cert and --key go together\n' });
    const noCa = await mesh(['status', '--etcd', etcd.endpoint, '--cert', cert.cert, '--key', cert.key]);
    expect(noCa.code).toBe(2);
    expect(noCa.stderr).toContain('--cert needs --cacert FILE');
    const missing = await mesh(['status', '--etcd', etcd.endpoint, '--cacert', '/nonexistent/ca.pem']);
    expect(missing).toMatchObject({ code: 2, stderr: 'outrigger mesh: cannot read the TLS file "/nonexistent/ca.pem" (ENOENT)\n' });
  });
});
