// The deployment examples hold the security properties the README promises: in Kubernetes,
// NET_ADMIN only in the iptables init container, the sidecar a native sidecar (an init container
// with restartPolicy: Always) running as the uid iptables exempts, probes on /ready and /live on
// the admin port that iptables leaves alone; in systemd, the sidecar as its own user with the
// iptables unit exempting that user, undone on stop. The embedded sidecar configs pass
// `outrigger validate`.

import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { closeAll, CLI, ROOT, tempDir } from '../helpers/sidecar.js';

interface Probe {
  httpGet?: { path?: string; port?: number };
}
interface Container {
  name: string;
  args?: string[];
  restartPolicy?: string;
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
}
interface PodSpec {
  initContainers: Container[];
  containers: Container[];
}

const K8S = path.join(ROOT, 'deploy', 'kubernetes', 'web.yaml');
const docs = parseAllDocuments(readFileSync(K8S, 'utf8')).map(
  (d) => d.toJS() as { kind: string; data?: Record<string, string>; spec?: { template: { spec: PodSpec } } },
);
const byKind = (kind: string): (typeof docs)[number] => {
  const d = docs.find((x) => x.kind === kind);
  if (d === undefined) throw new Error(`${K8S} has no ${kind}`);
  return d;
};

/** The value of `--flag=V` or `--flag V` in args. */
function flag(args: readonly string[], name: string): string | undefined {
  const i = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const a = args[i]!;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[i + 1];
}

function validate(configText: string): { status: number | null; out: string } {
  const file = path.join(tempDir('outrigger-deploy-'), 'outrigger.yaml');
  writeFileSync(file, configText);
  const r = spawnSync(process.execPath, [CLI, 'validate', '-c', file], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('deploy/kubernetes/web.yaml', () => {
  afterAll(closeAll);
  const pod = byKind('Deployment').spec!.template.spec;
  const iptables = pod.initContainers.find((c) => c.args?.includes('iptables'))!;
  const sidecar = pod.initContainers.find((c) => c.args?.[0] === 'run')!;

  it('has a ServiceAccount, a ConfigMap and a Deployment whose init containers run iptables install, then the sidecar', () => {
    expect(docs.map((d) => d.kind)).toEqual(['ServiceAccount', 'ConfigMap', 'Deployment']);
    expect(pod.initContainers.map((c) => c.name)).toEqual([iptables.name, sidecar.name]);
    expect(iptables.args?.slice(0, 2)).toEqual(['iptables', 'install']);
  });

  it('gives NET_ADMIN to the iptables init container only', () => {
    expect(iptables.securityContext?.capabilities?.add).toEqual(['NET_ADMIN']);
    for (const c of [sidecar, ...pod.containers]) {
      expect(c.securityContext?.capabilities?.add ?? [], c.name).toEqual([]);
      expect(c.securityContext?.capabilities?.drop, c.name).toEqual(['ALL']);
      expect(c.securityContext?.runAsNonRoot, c.name).toBe(true);
      expect(c.securityContext?.allowPrivilegeEscalation, c.name).toBe(false);
    }
  });

  it('runs the sidecar as a native sidecar with the uid iptables exempts, the app as another uid', () => {
    expect(sidecar.restartPolicy).toBe('Always');
    expect(iptables.restartPolicy).toBeUndefined();
    const proxyUid = Number(flag(iptables.args ?? [], '--proxy-uid'));
    expect(sidecar.securityContext?.runAsUser).toBe(proxyUid);
    for (const app of pod.containers) expect(app.securityContext?.runAsUser).not.toBe(proxyUid);
  });

  it('probes /ready (startup, readiness) and /live on the admin port, which iptables does not redirect', () => {
    expect(sidecar.startupProbe?.httpGet?.path).toBe('/ready');
    expect(sidecar.readinessProbe?.httpGet?.path).toBe('/ready');
    expect(sidecar.livenessProbe?.httpGet?.path).toBe('/live');
    const config = byKind('ConfigMap').data!['outrigger.yaml']!;
    const adminPort = Number(/^\s*address: [\d.]+:(\d+)$/m.exec(config.slice(config.indexOf('admin:')))?.[1]);
    for (const p of [sidecar.startupProbe, sidecar.readinessProbe, sidecar.livenessProbe]) expect(p?.httpGet?.port).toBe(adminPort);
    expect(flag(iptables.args ?? [], '--exclude-inbound-ports')?.split(',')).toContain(String(adminPort));
  });

  it("embeds a sidecar config that outrigger validate accepts, with interception listeners on iptables' ports", () => {
    const config = byKind('ConfigMap').data!['outrigger.yaml']!;
    expect(config).toContain('address: 127.0.0.1:15001');
    expect(config).toContain('address: 0.0.0.0:15006');
    const r = validate(config);
    expect(r.out).toBe('ok\n');
    expect(r.status).toBe(0);
  });
});

describe('deploy/systemd', () => {
  afterAll(closeAll);
  const unit = (name: string): string => readFileSync(path.join(ROOT, 'deploy', 'systemd', name), 'utf8');
  const setting = (text: string, key: string): string[] => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);

  it('runs the sidecar as its own user without capabilities, after the iptables unit that exempts that user', () => {
    const sidecar = unit('outrigger.service');
    const iptables = unit('outrigger-iptables.service');
    expect(setting(sidecar, 'User')).toEqual(['outrigger']);
    expect(setting(sidecar, 'CapabilityBoundingSet')).toEqual(['']);
    expect(setting(sidecar, 'Requires')).toEqual(['outrigger-iptables.service']);
    expect(setting(sidecar, 'ExecStartPost')[0]).toContain('outrigger wait-ready --admin 127.0.0.1:15000');
    expect(setting(iptables, 'User')).toEqual(['root']);
    expect(setting(iptables, 'ExecStart')[0]).toContain('iptables install --proxy-uid "$(id -u outrigger)"');
    expect(setting(iptables, 'ExecStop')).toEqual(['/usr/bin/outrigger iptables uninstall']);
    expect(setting(iptables, 'PartOf')).toEqual(['outrigger.service']);
  });

  it('ships a sidecar config that outrigger validate accepts', () => {
    const r = validate(unit('outrigger.yaml'));
    expect(r.out).toBe('ok\n');
    expect(r.status).toBe(0);
  });
});
