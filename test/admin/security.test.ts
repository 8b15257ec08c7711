// The admin API against an attacker on the same host or in a browser on it (DESIGN.md §8, "Admin
// is safe with no configuration"). Each test sends what the attacker would send, to a sidecar
// started with no admin settings but a port-0 address: DNS rebinding (a foreign Host), a
// cross-site form (text/plain from another Origin) to /shutdown and /config/rollback, reads and
// dry runs without the token, the generated token file, file paths that lead out of the allowed
// directories (plainly or through a symlink), a listener opened to the network, and YAML built
// to burn main-thread CPU. Each refusal is followed by a check that nothing happened.

import { closeSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLogFile } from '../../src/admin/log_open.js';
import { aliasBombYaml } from '../helpers/configs.js';
import {
  adminCall,
  closeAll,
  request,
  runUntilExit,
  startSidecar,
  startUpstream,
  tempDir,
  type Config,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';

afterAll(closeAll);

let up: Upstream;
let sc: Sidecar;

function config(extra: { listeners?: Array<Record<string, unknown>>; admin?: Record<string, unknown> } = {}): Config {
  return {
    node: { workers: 1, drain_timeout_ms: 2000 },
    admin: extra.admin ?? { address: '127.0.0.1:0' },
    listeners: [{ name: 'main', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }, ...(extra.listeners ?? [])],
    clusters: [{ name: 'app', endpoints: [{ address: up.address }] }],
  };
}

/** The running config version, read with the token. */
async function version(): Promise<number> {
  return (await adminCall(sc, 'GET', '/config')).json.version as number;
}

function port(s: Pick<Sidecar, 'admin'>): number {
  return Number(new URL(s.admin).port);
}

beforeAll(async () => {
  up = await startUpstream('APP');
  sc = await startSidecar(config());
});

describe('DNS rebinding: a foreign Host is refused (421) on every endpoint', () => {
  it('Host: evil.example (a page whose name now resolves to 127.0.0.1) → 421, whatever it asks', async () => {
    const p = port(sc);
    for (const host of [`evil.example:${p}`, 'evil.example', `localhost.evil.example:${p}`, `127.0.0.1.nip.io:${p}`]) {
      // What the rebound page's fetch() sends: Host and Origin both the attacker's name (same-origin to the browser).
      const attacker = { host, origin: `http://${host}` };
      for (const [method, pathname] of [
        ['GET', '/metrics'],
        ['GET', '/live'],
        ['GET', '/config'],
        ['POST', '/shutdown'],
      ] as const) {
        const r = await request(`${sc.admin}${pathname}`, { method, headers: attacker });
        expect([host, method, pathname, r.status]).toEqual([host, method, pathname, 421]);
        expect(JSON.parse(r.text).error).toContain('Host');
      }
      // Even with the token (had it leaked), a foreign Host is not served.
      const withToken = await request(`${sc.admin}/config`, { headers: { host, authorization: `Bearer ${sc.token}` } });
      expect(withToken.status).toBe(421);
    }
    expect((await request(`${sc.admin}/ready`)).status).toBe(200);
    // Loopback names and literals, with any port, are served.
    for (const host of [`localhost:${p}`, `127.0.0.1:${p}`, `127.1.2.3:${p}`, `[::1]:${p}`, 'localhost']) {
      expect([host, (await request(`${sc.admin}/live`, { headers: { host } })).status]).toEqual([host, 200]);
    }
  });
});

describe('cross-site requests (a form or fetch on another site) are refused (403)', () => {
  const form = 'version=1';

  it('a cross-site form POST (text/plain, Origin: http://evil.example) to /shutdown and /config/rollback → 403, the sidecar stays up', async () => {
    const v = await version();
    for (const pathname of ['/shutdown', '/drain', '/config/rollback']) {
      const r = await request(`${sc.admin}${pathname}`, {
        method: 'POST',
        headers: { origin: 'http://evil.example', 'content-type': 'text/plain', 'sec-fetch-site': 'cross-site' },
        body: `{"version": 1, "x": "${form}"}`,
      });
      expect([pathname, r.status]).toEqual([pathname, 403]);
      expect(JSON.parse(r.text).error).toContain('cross-site');
      // Without Sec-Fetch-Site (an older browser): the Origin alone is enough.
      const r2 = await request(`${sc.admin}${pathname}`, {
        method: 'POST',
        headers: { origin: 'http://evil.example', 'content-type': 'text/plain' },
        body: form,
      });
      expect([pathname, r2.status]).toEqual([pathname, 403]);
    }
    // Origin: null (a sandboxed iframe, a data: URL), another port on localhost, https, and
    // Sec-Fetch-Site: same-site / cross-site without any Origin are all cross-site.
    const p = port(sc);
    for (const headers of [
      { origin: 'null' },
      { origin: `http://127.0.0.1:${p + 1}` },
      { origin: `http://localhost:${p}` },
      { origin: `https://127.0.0.1:${p}` },
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
    ]) {
      const r = await request(`${sc.admin}/shutdown`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
      });
      expect([headers, r.status]).toEqual([headers, 403]);
    }
    expect(await version()).toBe(v);
    expect((await request(`${sc.admin}/ready`)).status).toBe(200);
    expect(sc.exited()).toBe(false);
    // A same-origin page (the admin's own origin) and tools that send no Origin are not refused for it.
    const same = await adminCall(sc, 'GET', '/config', undefined, { origin: `http://127.0.0.1:${p}`, 'sec-fetch-site': 'same-origin' });
    expect(same.status).toBe(200);
  });

  it('bodies in form and text types are refused even with the token (415): only JSON and YAML types', async () => {
    const v = await version();
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
      const rb = await request(`${sc.admin}/config/rollback`, {
        method: 'POST',
        headers: { ...headers, authorization: `Bearer ${sc.token}` },
        body: '{"version": 1}',
      });
      expect([type, rb.status]).toEqual([type, 415]);
      expect(JSON.parse(rb.text).error).toContain('Content-Type');
    }
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/yaml', 'application/x-yaml', 'text/yaml']) {
      const r = await adminCall(sc, 'POST', '/config/validate', config(), { 'content-type': type });
      expect([type, r.status]).toEqual([type, 200]);
    }
    expect(await version()).toBe(v);
  });
});

describe('the token: always there, needed for everything but /live, /ready and /metrics', () => {
  it('no token: GET /config and /certs (and every read and the dry run) → 401; /live, /ready, /metrics stay open', async () => {
    const anon = { admin: sc.admin };
    for (const p of ['/config', '/certs', '/config/history', '/clusters', '/stats', '/log-level']) {
      const r = await adminCall(anon, 'GET', p);
      expect([p, r.status]).toEqual([p, 401]);
      expect(r.json.error).toBe('missing or wrong bearer token');
      expect(r.text).not.toContain('listeners');
    }
    const dry = await adminCall(anon, 'POST', '/config/validate', config());
    expect(dry.status).toBe(401);
    for (const [method, p] of [
      ['POST', '/shutdown'],
      ['POST', '/drain'],
      ['PUT', '/log-level'],
      ['PUT', '/config'],
    ] as const) {
      expect([p, (await adminCall(anon, method, p, method === 'PUT' ? { level: 'debug' } : undefined)).status]).toEqual([p, 401]);
    }
    for (const p of ['/live', '/ready', '/metrics']) expect([p, (await adminCall(anon, 'GET', p)).status]).toEqual([p, 200]);
    expect(sc.exited()).toBe(false);
  });

  it('without admin.token_file a token is generated: <config dir>/.outrigger/admin.token, 0600 in a 0700 dir, named in the ready line, and it works', async () => {
    const ready = sc.entries().find((e) => e.msg === 'ready')!;
    const file = path.join(sc.dir, '.outrigger', 'admin.token');
    expect(ready['admin_token_file']).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    const token = readFileSync(file, 'utf8').trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    const r = await request(`${sc.admin}/config`, { headers: { authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
    expect((await request(`${sc.admin}/config`, { headers: { authorization: `Bearer ${token.slice(0, -1)}x` } })).status).toBe(401);

    // A second sidecar whose config file shares the directory uses the same token (the file is kept).
    const other = await startSidecar(config(), { dir: sc.dir, yaml: true });
    expect(other.tokenFile).toBe(file);
    expect(other.token).toBe(token);
    expect((await adminCall(other, 'GET', '/config')).status).toBe(200);
    await other.stop();
  });

  it('admin.state_dir moves the generated token; a token file readable by others is replaced', async () => {
    const dir = tempDir();
    const state = path.join(dir, 'state', 'admin');
    mkdirSync(path.dirname(state), { recursive: true });
    mkdirSync(state, { mode: 0o700 });
    const leaked = 'A'.repeat(43);
    writeFileSync(path.join(state, 'admin.token'), `${leaked}\n`, { mode: 0o644 });
    const s2 = await startSidecar(config({ admin: { address: '127.0.0.1:0', state_dir: './state/admin' } }), { dir });
    expect(s2.tokenFile).toBe(path.join(state, 'admin.token'));
    expect(s2.token).not.toBe(leaked);
    expect(statSync(s2.tokenFile).mode & 0o777).toBe(0o600);
    expect((await adminCall({ admin: s2.admin }, 'GET', '/config', undefined, { authorization: `Bearer ${leaked}` })).status).toBe(401);
    expect((await adminCall(s2, 'GET', '/config')).status).toBe(200);
    expect(existsSync(path.join(dir, '.outrigger'))).toBe(false);
    await s2.stop();
  });
});

describe('admin.hosts: a name the admin is reached through, and nothing else', () => {
  it('Host: admin.internal → 421 without admin.hosts; with admin.hosts: [admin.internal] served (any case, with or without the port), other names still 421', async () => {
    const p = port(sc);
    for (const host of ['admin.internal', `admin.internal:${p}`]) {
      expect([host, (await request(`${sc.admin}/live`, { headers: { host } })).status]).toEqual([host, 421]);
      const r = await request(`${sc.admin}/config`, { headers: { host, authorization: `Bearer ${sc.token}` } });
      expect([host, r.status]).toEqual([host, 421]);
    }

    const named = await startSidecar(config({ admin: { address: '127.0.0.1:0', hosts: ['Admin.Internal'] } }));
    const np = port(named);
    for (const host of ['admin.internal', `admin.internal:${np}`, `ADMIN.internal:${np}`]) {
      expect([host, (await request(`${named.admin}/live`, { headers: { host } })).status]).toEqual([host, 200]);
      const r = await request(`${named.admin}/config`, { headers: { host, authorization: `Bearer ${named.token}` } });
      expect([host, r.status]).toEqual([host, 200]);
      // The name opens the Host check only: the token is still needed.
      expect([host, (await request(`${named.admin}/config`, { headers: { host } })).status]).toEqual([host, 401]);
    }
    // Exact names only: no suffix, prefix or sub-domain of it, and the old refusals stand.
    for (const host of ['evil.admin.internal', 'admin.internal.evil.example', 'admininternal', `evil.example:${np}`, 'admin.internal.']) {
      expect([host, (await request(`${named.admin}/live`, { headers: { host } })).status]).toEqual([host, 421]);
    }
    // A same-origin page on the listed name is that name's origin, not cross-site.
    const same = await request(`${named.admin}/config`, {
      headers: { host: `admin.internal:${np}`, origin: `http://admin.internal:${np}`, authorization: `Bearer ${named.token}` },
    });
    expect(same.status).toBe(200);
    await named.stop();
  });

  it('admin.hosts entries must be host names: a port, a wildcard, an IP literal or a URL is a config problem', async () => {
    for (const bad of ['admin.internal:15000', '*.internal', '10.0.0.1', 'http://admin.internal', 'a b']) {
      const r = await adminCall(sc, 'POST', '/config/validate', config({ admin: { address: '127.0.0.1:0', hosts: [bad] } }));
      expect([bad, r.status]).toEqual([bad, 400]);
      expect(JSON.stringify(r.json.problems)).toContain('admin.hosts[0]');
    }
  });
});

describe('admin.metrics_token_file: /metrics behind its own token', () => {
  it('/metrics → 401 without the metrics token or with a wrong one, 200 with it or the admin token; /live and /ready stay open; the metrics token opens nothing else', async () => {
    const dir = tempDir();
    const metricsToken = 'scrape-token-0123456789abcdef';
    writeFileSync(path.join(dir, 'metrics.token'), `${metricsToken}\n`, { mode: 0o600 });
    const s2 = await startSidecar(config({ admin: { address: '127.0.0.1:0', metrics_token_file: './metrics.token' } }), { dir });
    const anon = { admin: s2.admin };
    const none = await adminCall(anon, 'GET', '/metrics');
    expect(none.status).toBe(401);
    expect(none.text).not.toContain('outrigger_requests_total');
    for (const auth of [`Bearer ${metricsToken.slice(0, -1)}x`, `Bearer ${metricsToken}x`, metricsToken, `Basic ${metricsToken}`]) {
      const r = await request(`${s2.admin}/metrics`, { headers: { authorization: auth } });
      expect([auth, r.status]).toEqual([auth, 401]);
    }
    const scraped = await request(`${s2.admin}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
    expect(scraped.status).toBe(200);
    expect(scraped.text).toContain('outrigger_requests_total');
    expect((await request(`${s2.admin}/metrics`, { headers: { authorization: `Bearer ${s2.token}` } })).status).toBe(200);
    for (const p of ['/live', '/ready']) expect([p, (await adminCall(anon, 'GET', p)).status]).toEqual([p, 200]);
    // The scraper's token is not the admin token.
    for (const p of ['/config', '/stats', '/certs']) {
      const r = await request(`${s2.admin}${p}`, { headers: { authorization: `Bearer ${metricsToken}` } });
      expect([p, r.status]).toEqual([p, 401]);
    }
    await s2.stop();
    // Without the setting /metrics stays open (the sidecar of this file has none).
    expect((await adminCall({ admin: sc.admin }, 'GET', '/metrics')).status).toBe(200);
  });

  it('a metrics token file readable by others is warned about; an empty or missing one stops the start (exit 2)', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'metrics.token'), 'loose-token\n', { mode: 0o644 });
    const s2 = await startSidecar(config({ admin: { address: '127.0.0.1:0', metrics_token_file: './metrics.token' } }), { dir });
    expect(s2.entries().some((e) => String(e.msg).includes('admin.metrics_token_file') && String(e.msg).includes('other users'))).toBe(true);
    await s2.stop();
    const missing = await runUntilExit(config({ admin: { address: '127.0.0.1:0', metrics_token_file: '/nonexistent/metrics.token' } }));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('admin.metrics_token_file');
    writeFileSync(path.join(dir, 'empty.token'), '\n', { mode: 0o600 });
    const empty = await runUntilExit(config({ admin: { address: '127.0.0.1:0', metrics_token_file: path.join(dir, 'empty.token') } }));
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('is empty');
  });

  it('through the admin API it may name only a file inside the allowed directories (like admin.token_file)', async () => {
    const r = await adminCall(sc, 'POST', '/config/validate', config({ admin: { address: '127.0.0.1:0', metrics_token_file: '/etc/passwd' } }));
    expect(r.status).toBe(400);
    const problems = r.json.problems as Array<{ path: string; message: string }>;
    expect(problems.find((x) => x.path === 'admin.metrics_token_file')?.message).toContain('outside the allowed directories');
  });
});

describe('file paths a config sent through the admin API may name', () => {
  const withLog = (p: string): Config => {
    const c = config();
    (c['listeners'] as Array<Record<string, unknown>>)[0]!['access_log'] = { path: p, format: 'text' };
    return c;
  };

  it('an access-log path outside the allowed directories (a shell start-up file) → 400 with the path; nothing is created', async () => {
    const v = await version();
    const home = tempDir(); // stands in for the attacker's target, e.g. ~/.bashrc
    const bashrc = path.join(home, '.bashrc');
    for (const method of ['PUT', 'POST'] as const) {
      const r = await adminCall(sc, method, method === 'PUT' ? '/config' : '/config/validate', withLog(bashrc));
      expect(r.status, r.text).toBe(400);
      expect(r.json.problems).toContainEqual(
        expect.objectContaining({ path: 'listeners[0].access_log.path', message: expect.stringContaining('outside the allowed directories') }),
      );
      expect(JSON.stringify(r.json.problems)).toContain(bashrc);
    }
    // A directory that does not exist (even inside an allowed one) is not created.
    const deep = path.join(home, 'new', 'dir', 'access.log');
    const inDir = path.join(sc.dir, 'logs', 'new', 'access.log');
    for (const p of [deep, inDir]) {
      const r = await adminCall(sc, 'PUT', '/config', withLog(p));
      expect([p, r.status]).toEqual([p, 400]);
      expect(r.json.problems[0].path).toBe('listeners[0].access_log.path');
    }
    expect(JSON.stringify((await adminCall(sc, 'PUT', '/config', withLog(inDir))).json)).toContain('creates no directories');
    // Nor may an access log be written into the config file or the token.
    for (const p of [sc.file, sc.tokenFile]) {
      const r = await adminCall(sc, 'PUT', '/config', withLog(p));
      expect([p, r.status]).toEqual([p, 400]);
    }
    // Other path fields are held to the same rule.
    const c = config();
    c['admin'] = { address: '127.0.0.1:0', token_file: path.join(home, 'token') };
    const t = await adminCall(sc, 'PUT', '/config', c);
    expect(t.status).toBe(400);
    expect(t.json.problems.map((p: { path: string }) => p.path)).toContain('admin.token_file');
    expect(existsSync(bashrc)).toBe(false);
    expect(existsSync(path.join(home, 'new'))).toBe(false);
    expect(existsSync(path.join(sc.dir, 'logs'))).toBe(false);
    expect(await version()).toBe(v);

    // Inside the config file's directory, in an existing directory: applied, and the log is written there.
    const fine = path.join(sc.dir, 'access.log');
    const ok = await adminCall(sc, 'PUT', '/config', withLog(fine));
    expect(ok.status, ok.text).toBe(200);
    expect((await request(sc.url('/hello'))).status).toBe(200);
  });

  it('a symlink from inside an allowed directory to outside → 400 (the real path counts)', async () => {
    const v = await version();
    const outside = tempDir();
    const target = path.join(outside, '.profile');
    writeFileSync(target, '# shell start-up file\n');
    symlinkSync(outside, path.join(sc.dir, 'logs-link'));
    symlinkSync(target, path.join(sc.dir, 'file-link.log'));
    for (const p of [path.join(sc.dir, 'logs-link', 'access.log'), path.join(sc.dir, 'logs-link', '.profile'), path.join(sc.dir, 'file-link.log')]) {
      const r = await adminCall(sc, 'PUT', '/config', withLog(p));
      expect([p, r.status]).toEqual([p, 400]);
      expect(r.json.problems[0]).toMatchObject({ path: 'listeners[0].access_log.path', message: expect.stringContaining('outside the allowed directories') });
      expect(r.json.problems[0].message).toContain(`resolves to ${outside}`);
    }
    // A symlink to a file that does not exist yet: opening it would create the target, outside.
    symlinkSync(path.join(outside, '.bash_login'), path.join(sc.dir, 'dangling.log'));
    const dangling = await adminCall(sc, 'PUT', '/config', withLog(path.join(sc.dir, 'dangling.log')));
    expect(dangling.status).toBe(400);
    expect(dangling.json.problems[0]).toMatchObject({ path: 'listeners[0].access_log.path', message: expect.stringContaining('symlink') });
    expect(await version()).toBe(v);
    expect(readFileSync(target, 'utf8')).toBe('# shell start-up file\n');
    expect(existsSync(path.join(outside, 'access.log'))).toBe(false);
    expect(existsSync(path.join(outside, '.bash_login'))).toBe(false);
  });
});

describe('an access log swapped for a symlink after the admin API checked it', () => {
  it('PUT /config with an allowed path, then the file is replaced by a symlink to a shell start-up file: the workers write to the checked file, the target is untouched', async () => {
    const outside = tempDir();
    const target = path.join(outside, '.profile');
    writeFileSync(target, '# shell start-up file\n');
    const log = path.join(sc.dir, 'swap.log');
    const c = config();
    (c['listeners'] as Array<Record<string, unknown>>)[0]!['access_log'] = { path: log, format: 'text' };
    const r = await adminCall(sc, 'PUT', '/config', c);
    expect(r.status, r.text).toBe(200);
    // The workers open the log on the first request: swap it before that.
    renameSync(log, `${log}.checked`);
    symlinkSync(target, log);
    expect((await request(sc.url('/hello'))).status).toBe(200);
    await adminCall(sc, 'PUT', '/config', config()); // drops the log: the workers flush it
    expect(readFileSync(target, 'utf8')).toBe('# shell start-up file\n');
    expect(readFileSync(`${log}.checked`, 'utf8')).toContain('"GET /hello');
  });

  it('PUT /config names every change that takes effect: an access log and node.error_detail are not "no change"', async () => {
    const c = config();
    (c['listeners'] as Array<Record<string, unknown>>)[0]!['access_log'] = { path: path.join(sc.dir, 'summary.log'), format: 'json' };
    const on = await adminCall(sc, 'PUT', '/config', c);
    expect(on.status, on.text).toBe(200);
    expect(on.json.summary).toContain('listener main access log changed');
    const detail = config();
    (detail['node'] as Record<string, unknown>)['error_detail'] = 'full';
    const d = await adminCall(sc, 'PUT', '/config', detail);
    expect(d.status, d.text).toBe(200);
    expect(d.json.summary).not.toBe('no change');
    expect(d.json.summary).toContain('listener main');
    expect((await adminCall(sc, 'PUT', '/config', detail)).json.summary).toBe('no change');
    await adminCall(sc, 'PUT', '/config', config());
  });

  it('openLogFile: a symlink in the last component is not followed, a directory swapped for a symlink to outside is refused after the open, nothing is created', () => {
    const allowed = tempDir();
    const outside = tempDir();
    writeFileSync(path.join(outside, '.profile'), 'x\n');
    symlinkSync(path.join(outside, '.profile'), path.join(allowed, 'link.log'));
    symlinkSync(path.join(outside, 'new.log'), path.join(allowed, 'dangling.log'));
    symlinkSync(outside, path.join(allowed, 'dir'));
    expect(openLogFile(path.join(allowed, 'link.log'), [allowed])).toEqual({ ok: false, error: expect.stringContaining('is a symlink: not followed') });
    expect(openLogFile(path.join(allowed, 'dangling.log'), [allowed])).toEqual({ ok: false, error: expect.stringContaining('is a symlink') });
    expect(openLogFile(path.join(allowed, 'dir', '.profile'), [allowed])).toEqual({
      ok: false,
      error: expect.stringContaining(`opened ${path.join(outside, '.profile')}, outside`),
    });
    expect(openLogFile(path.join(allowed, 'no', 'such', 'a.log'), [allowed])).toEqual({
      ok: false,
      error: expect.stringContaining('no directories are created'),
    });
    expect(existsSync(path.join(outside, 'new.log'))).toBe(false);
    expect(existsSync(path.join(allowed, 'no'))).toBe(false);
    const ok = openLogFile(path.join(allowed, 'a.log'), [allowed]);
    expect(ok).toMatchObject({ ok: true, real: path.join(allowed, 'a.log') });
    if (ok.ok) closeSync(ok.fd);
  });
});

describe('TLS material paths a config sent through the admin API may name', () => {
  it('signer ca_bundle/token_file and federation bundles outside the allowed directories → 400 with their paths', async () => {
    const v = await version();
    const outside = tempDir();
    const base = config();
    const c = {
      ...base,
      node: { ...(base['node'] as object), identity: 'spiffe://cluster.local/ns/default/sa/web' },
      tls: {
        signer: { address: '127.0.0.1:15200', ca_bundle: path.join(outside, 'ca.pem'), token_file: path.join(outside, 'token') },
        federation: [{ trust_domain: 'partner.example', bundle: path.join(outside, 'partner.pem') }],
      },
    };
    const r = await adminCall(sc, 'PUT', '/config', c);
    expect(r.status, r.text).toBe(400);
    for (const at of ['tls.signer.ca_bundle', 'tls.signer.token_file', 'tls.federation[0].bundle']) {
      expect(r.json.problems).toContainEqual(expect.objectContaining({ path: at, message: expect.stringContaining('outside the allowed directories') }));
    }
    expect(await version()).toBe(v);
  });
});

describe('listeners reachable from other hosts', () => {
  it('a non-loopback listener added through PUT /config → 400 on its address; a loopback one is fine', async () => {
    const v = await version();
    for (const address of ['0.0.0.0:0', '[::]:0', '10.1.2.3:15001']) {
      const c = config({ listeners: [{ name: 'open', address, routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }] });
      const r = await adminCall(sc, 'PUT', '/config', c);
      expect([address, r.status]).toEqual([address, 400]);
      expect(r.json.problems).toContainEqual(
        expect.objectContaining({ path: 'listeners[1].address', message: expect.stringContaining('allow_remote_listeners') }),
      );
    }
    // Moving the existing listener to 0.0.0.0 is a change too.
    const moved = config();
    (moved['listeners'] as Array<Record<string, unknown>>)[0]!['address'] = '0.0.0.0:0';
    expect((await adminCall(sc, 'PUT', '/config', moved)).status).toBe(400);
    expect(await version()).toBe(v);
    // The admin API cannot lift the restriction itself.
    const lift = config({ admin: { address: '127.0.0.1:0', allow_remote_listeners: true, allowed_dirs: ['/'] } });
    const l = await adminCall(sc, 'PUT', '/config', lift);
    expect(l.status).toBe(400);
    expect(l.json.problems.map((p: { path: string }) => p.path)).toEqual(expect.arrayContaining(['admin.allow_remote_listeners', 'admin.allowed_dirs']));
    const local = config({ listeners: [{ name: 'local', address: '127.0.0.1:0', routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }] });
    expect((await adminCall(sc, 'POST', '/config/validate', local)).status).toBe(200);
  });

  it('with admin.allow_remote_listeners: true in the config file, the dry run accepts one', async () => {
    const s2 = await startSidecar(config({ admin: { address: '127.0.0.1:0', allow_remote_listeners: true } }));
    const c = config({
      admin: { address: '127.0.0.1:0', allow_remote_listeners: true },
      listeners: [{ name: 'open', address: '0.0.0.0:0', routes: [{ match: { path_prefix: '/' }, cluster: 'app' }] }],
    });
    const r = await adminCall(s2, 'POST', '/config/validate', c);
    expect(r.status, r.text).toBe(200);
    await s2.stop();
  });
});

describe('YAML built to burn main-thread CPU is refused before the expensive work', () => {
  it('1 MiB of nested flow YAML → 400 "nested deeper than 64 levels"', async () => {
    const depth = 512 * 1024 - 8;
    const text = `${'['.repeat(depth)}${']'.repeat(depth)}`;
    expect(text.length).toBeLessThanOrEqual(1024 * 1024);
    for (const p of ['/config/validate', '/config']) {
      const r = await adminCall(sc, p === '/config' ? 'PUT' : 'POST', p, text);
      expect(r.status).toBe(400);
      expect(r.json.problems).toEqual([{ path: '', message: expect.stringContaining('nested deeper than 64 levels'), line: 1 }]);
    }
    // Flow mappings and JSON too.
    const json = `${'{"a":'.repeat(100)}1${'}'.repeat(100)}`;
    const j = await adminCall(sc, 'POST', '/config/validate', json, { 'content-type': 'application/json' });
    expect(j.status).toBe(400);
    expect(j.json.problems[0].message).toContain('nested deeper than 64 levels');
  });

  it('deeply nested block YAML → 400 "nested deeper than 64 levels"', async () => {
    let text = 'listeners:\n';
    for (let i = 1; i <= 100; i++) text += `${'  '.repeat(i)}k${i}:\n`;
    text += `${'  '.repeat(101)}v: 1\n`;
    const r = await adminCall(sc, 'POST', '/config/validate', text);
    expect(r.status).toBe(400);
    expect(r.json.problems[0].message).toContain('nested deeper than 64 levels');
  });

  it('an alias bomb ("billion laughs") → 400 naming the aliases', async () => {
    const r = await adminCall(sc, 'POST', '/config/validate', aliasBombYaml());
    expect(r.status).toBe(400);
    expect(r.json.problems[0].message).toMatch(/aliases counted each time they are used/);
    // Wide instead of deep: one big list used 99 times.
    const wide = `x: &a [${Array(5000).fill('1').join(',')}]\nlisteners: [${Array(99).fill('*a').join(',')}]\n`;
    const w = await adminCall(sc, 'POST', '/config/validate', wide);
    expect(w.status).toBe(400);
    expect(w.json.problems[0].message).toMatch(/aliases counted each time they are used/);
    expect((await request(`${sc.admin}/ready`)).status).toBe(200);
  });

  it('1 MiB of 60k small mappings and a 190k-item flow list → 400 "more than 100000 values"; wide bodies under the limit get at most 100 problems', async () => {
    let mappings = '';
    for (let i = 0; mappings.length < 1024 * 1024 - 64; i++) mappings += `k${i}: {a: 1}\n`;
    const flow = `listeners: [${Array(190_000).fill('1').join(',')}]\n`;
    const json = JSON.stringify({ listeners: Array.from({ length: 60_000 }, () => ({ a: 1 })) });
    for (const text of [mappings, flow, json]) {
      const r = await adminCall(sc, 'POST', '/config/validate', text);
      expect(r.status).toBe(400);
      expect(r.json.problems).toEqual([{ path: '', message: expect.stringContaining('more than 100000 values'), line: expect.any(Number) }]);
    }
    // Just under the limit: 45k unknown keys are answered with 100 problems and a note, not 45k.
    const wide = Array.from({ length: 45_000 }, (_, i) => `k${i}: {a: 1}`).join('\n');
    const w = await adminCall(sc, 'POST', '/config/validate', wide);
    expect(w.status).toBe(400);
    expect(w.json.problems).toHaveLength(101);
    expect(w.json.problems[100]).toEqual({ path: '', message: expect.stringContaining('only the first 100 are listed'), line: null });
    // One mapping of many keys, with a tag (read by the `yaml` document, whose own duplicate-key check is quadratic).
    const dup = `x: !!str 1\n${Array.from({ length: 4_000 }, (_, i) => `k${i}: 1`).join('\n')}\nk1: 2\n`;
    const d = await adminCall(sc, 'POST', '/config/validate', dup);
    expect(d.json.problems).toEqual([{ path: '', message: 'syntax error: Map keys must be unique', line: 4002 }]);
    // A tag in a body too large for the document model is refused, not read.
    const tagged = `x: !!str 1\n${Array.from({ length: 6_000 }, (_, i) => `k${i}: 1`).join('\n')}\n`;
    expect((await adminCall(sc, 'POST', '/config/validate', tagged)).json.problems[0].message).toContain('explicit tags');
    // Block nesting through compact sequences (`- - - …`) is refused without a deep parse.
    const dashes = await adminCall(sc, 'POST', '/config/validate', `${'- '.repeat(400_000)}1\n`);
    expect(dashes.json.problems).toEqual([{ path: '', message: expect.stringContaining('nested deeper than 64 levels'), line: 1 }]);
    expect((await request(`${sc.admin}/live`)).status).toBe(200);
  });

  it('a real large config (10 000 routes, in 1 MiB) is still accepted by the dry run', async () => {
    const routes = Array.from({ length: 10_000 }, (_, i) => ({ match: { path_prefix: `/svc${i}/`, headers: { 'x-tenant': `t${i}` } }, cluster: 'app' }));
    const c = config();
    (c['listeners'] as Array<Record<string, unknown>>)[0]!['routes'] = routes;
    const r = await adminCall(sc, 'POST', '/config/validate', c);
    expect(r.status, r.text.slice(0, 500)).toBe(200);
  });

  it('and none of it is parsed at all without the token', async () => {
    const text = `${'['.repeat(1000)}${']'.repeat(1000)}`;
    const r = await adminCall({ admin: sc.admin }, 'POST', '/config/validate', text);
    expect(r.status).toBe(401);
  });
});
