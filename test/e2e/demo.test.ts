// Smoke test of the demo (`npm start` = build, then `node dist/demo/start.js`) on free ports and
// in a temp directory (OUTRIGGER_DEMO_* variables): its two sidecars run in signer mode with
// identities `outrigger ca serve` signed (neither config names a CA directory, so neither holds
// ca.key), a request through the mesh answers 200 and /admin answers 403 (authorization). The demo
// runs in a process group of its own, killed as a whole at the end; every wait is bounded.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { API, closeAll, deadPort, eventually, get, ROOT, tempDir, WEB } from '../helpers/sidecar.js';

let demo: ChildProcess | null = null;
let output = '';

/** SIGTERM to the demo's whole process group, then (bounded) SIGKILL to whatever is left of it. */
async function killDemoGroup(): Promise<void> {
  const child = demo;
  demo = null;
  if (child?.pid === undefined) return;
  const group = -child.pid;
  const signal = (sig: NodeJS.Signals): boolean => {
    try {
      process.kill(group, sig);
      return true;
    } catch {
      return false; // ESRCH: the group is gone
    }
  };
  if (!signal('SIGTERM')) return;
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  // Sidecars drain and the signer stops on SIGTERM; anything still in the group now is killed.
  await eventually(() => (signal('SIGKILL') ? undefined : true), 'the demo process group to be gone', 10_000, 100);
}

afterAll(async () => {
  await killDemoGroup();
  await closeAll();
});

interface AdminOf {
  readonly admin: string;
  readonly token: string;
}

async function adminJson(a: AdminOf, p: string): Promise<Record<string, unknown>> {
  const r = await fetch(`${a.admin}${p}`, { headers: { authorization: `Bearer ${a.token}` } });
  expect(r.status, `${p}: ${r.status}`).toBe(200);
  return (await r.json()) as Record<string, unknown>;
}

describe('npm start (the demo)', () => {
  it('runs on free ports: signer-signed sidecars, 200 through the mesh, 403 for /admin', async () => {
    const ports = [];
    for (let i = 0; i < 7; i++) ports.push(await deadPort());
    const [web, webAdmin, api, apiAdmin, signer, app1, app2] = ports as [number, number, number, number, number, number, number];
    const dir = tempDir('outrigger-demo-');
    demo = spawn(process.execPath, [path.join(ROOT, 'dist/demo/start.js')], {
      cwd: ROOT,
      detached: true, // its own process group: killDemoGroup() reaches the signer and both sidecars
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        OUTRIGGER_DEMO_DIR: dir,
        OUTRIGGER_DEMO_WEB_PORT: String(web),
        OUTRIGGER_DEMO_WEB_ADMIN_PORT: String(webAdmin),
        OUTRIGGER_DEMO_API_PORT: String(api),
        OUTRIGGER_DEMO_API_ADMIN_PORT: String(apiAdmin),
        OUTRIGGER_DEMO_SIGNER_PORT: String(signer),
        OUTRIGGER_DEMO_APP_PORTS: `${app1},${app2}`,
      },
    });
    demo.stdout?.setEncoding('utf8').on('data', (s: string) => (output += s));
    demo.stderr?.setEncoding('utf8').on('data', (s: string) => (output += s));
    try {
      await eventually(
        () => {
          if (demo?.exitCode !== null && demo?.exitCode !== undefined) throw new Error(`the demo exited (${demo.exitCode}):\n${output}`);
          return output.includes('outrigger demo is running') ? true : undefined;
        },
        'the demo to be running',
        45_000,
        100,
      );
    } catch (err) {
      // What the demo printed says where it stopped (a CI run once timed out here without a word).
      throw new Error(`${(err as Error).message}\n--- the demo's output ---\n${output.slice(-6000)}`);
    }
    // The printed instructions name the chosen ports.
    expect(output).toContain(`curl -s http://127.0.0.1:${web}/v1/hello`);
    expect(output).toContain(`https://127.0.0.1:${signer} (outrigger ca serve`);

    // Each sidecar's admin token file, from its ready line.
    const tokenOf = (who: string): string => {
      const line = output.split('\n').find((l) => l.startsWith(`[${who}] `) && l.includes('"msg":"ready"'));
      expect(line, `${who} ready line`).toBeDefined();
      const file = String((JSON.parse((line as string).slice(who.length + 3)) as { admin_token_file: string }).admin_token_file);
      return readFileSync(file, 'utf8').trim();
    };
    const sidecars = [
      { who: 'web', identity: WEB, admin: `http://127.0.0.1:${webAdmin}`, token: tokenOf('web') },
      { who: 'api', identity: API, admin: `http://127.0.0.1:${apiAdmin}`, token: tokenOf('api') },
    ];
    for (const sc of sidecars) {
      const certs = ((await adminJson(sc, '/certs')) as { certs: Array<Record<string, unknown>> }).certs;
      expect(certs).toHaveLength(1);
      expect(certs[0]).toMatchObject({ source: 'signer', identity: sc.identity, signer: { address: `127.0.0.1:${signer}` }, warning: null });
      // The running config: a signer source, no CA directory (so no ca.key) on the sidecar's side.
      const running = JSON.stringify(await adminJson(sc, '/config'));
      expect(running).toContain(`127.0.0.1:${signer}`);
      expect(running).not.toMatch(/ca\.key|"dir"/);
    }
    // The signer logged signing both identities, on their bootstrap tokens.
    const signed = output
      .split('\n')
      .filter((l) => l.startsWith('[signer] ') && l.includes('"msg":"signed"'))
      .map((l) => JSON.parse(l.slice('[signer] '.length)) as { identity: string; by: string });
    expect(signed.map((s) => s.identity).sort()).toEqual([API, WEB]);

    const ok = await get(web, '/v1/hello');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ url: '/v1/hello', caller: expect.stringContaining(`URI=${WEB}`) as unknown });
    const denied = await get(web, '/admin');
    expect(denied.status).toBe(403);

    await killDemoGroup();
  }, 90_000);
});
