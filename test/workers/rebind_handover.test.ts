// A reload that rebinds a listener on the same address (another engine, protocol or TLS setting)
// hands the listening socket to the new listener instead of binding a new one (workers/runtime.ts
// bindFresh, dataplane/listener.ts listen). The attack: clients opening a new connection per
// request while the config flips the listener's engine and protocol. Before, every worker bound a
// new socket and closed the old one, and the kernel reset the connections still waiting in the
// old socket's accept queue (ECONNRESET on connect or on the first read). Now the same sockets
// (the same inodes in /proc/net/tcp) stay bound through every reload, and no connection fails.
// The strict engine's drain (dataplane/h1): a connection accepted before the old listener stopped
// that has not sent its first head yet is served that request (with Connection: close) instead of
// being closed or destroyed, whether it was still in the preface check of `protocol: auto` or
// already an HTTP/1 connection.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { adminCall, closeAll, cluster, config, header, RawClient, startSidecar, startUpstream } from '../helpers/sidecar.js';

afterAll(closeAll);

/** Inodes of the sockets listening on 127.0.0.1:`port` (every worker has its own). */
function listeningInodes(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes: string[] = [];
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // sl local_address rem_address st ... inode (10th field); st 0A = LISTEN
    if (f[1] === `0100007F:${hexPort}` && f[3] === '0A') inodes.push(f[9]!);
  }
  return inodes.sort();
}

/** One GET on a connection of its own; resolves to the status, or to the error's code. */
function getOnNewConnection(port: number, path: string): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('a listener rebound on the same address keeps its socket', () => {
  it('engine and protocol flips under a storm of new connections: same listening sockets, no connection reset', async () => {
    const up = await startUpstream('app');
    const routes = [{ match: { path_prefix: '/' }, cluster: 'app' }];
    const cfg = config(routes, [cluster('app', [up.address])], { node: { workers: 2 }, listener: { engine: 'strict', protocol: 'auto' } });
    const sc = await startSidecar(cfg, { workers: 2 });
    const port = sc.port();
    const inodes = listeningInodes(port);
    expect(inodes).toHaveLength(2); // one SO_REUSEPORT socket per worker

    let stop = false;
    let sent = 0;
    const outcomes = new Map<string, number>();
    const loop = async (): Promise<void> => {
      while (!stop) {
        const r = await getOnNewConnection(port, `/storm/${sent++}`);
        const key = String(r);
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
    };
    const loops = Array.from({ length: 32 }, loop);

    const flips: Array<Record<string, string>> = [
      { engine: 'strict', protocol: 'http1' },
      { engine: 'node', protocol: 'http1' },
      { engine: 'node', protocol: 'auto' },
      { engine: 'strict', protocol: 'auto' },
      { engine: 'node', protocol: 'auto' },
      { engine: 'strict', protocol: 'http1' },
    ];
    for (const flip of flips) {
      const target = sent + 300;
      await expect.poll(() => sent >= target, { timeout: 20_000 }).toBe(true);
      Object.assign((cfg['listeners'] as Array<Record<string, unknown>>)[0]!, flip);
      const put = await adminCall(sc, 'PUT', '/config', cfg);
      expect(put.status, put.text).toBe(200);
      expect(put.text).toContain('rebound');
      expect(listeningInodes(port)).toEqual(inodes);
    }
    const target = sent + 300;
    await expect.poll(() => sent >= target, { timeout: 20_000 }).toBe(true);
    stop = true;
    await Promise.all(loops);

    expect(Object.fromEntries(outcomes)).toEqual({ '200': sent });
    expect(listeningInodes(port)).toEqual(inodes);
  });

  it('a connection that connected before the reload and sends its request after is served, then closed', async () => {
    const up = await startUpstream('app');
    const routes = [{ match: { path_prefix: '/' }, cluster: 'app' }];
    const cfg = config(routes, [cluster('app', [up.address])], { listener: { engine: 'strict', protocol: 'auto' } });
    const sc = await startSidecar(cfg);
    const listener = (cfg['listeners'] as Array<Record<string, unknown>>)[0]!;
    const request = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const reload = async (protocol: string): Promise<void> => {
      listener['protocol'] = protocol;
      const put = await adminCall(sc, 'PUT', '/config', cfg);
      expect(put.status, put.text).toBe(200);
      expect(put.text).toContain('rebound');
    };

    // In the preface check of `protocol: auto` (no byte yet) when the listener is replaced.
    const sniffing = await RawClient.connect(sc.port());
    await reload('http1');
    sniffing.send(request('/after-reload-1'));
    const a = await sniffing.readResponse();
    expect([a.status, a.body.toString()]).toEqual([200, 'app /after-reload-1']);
    expect(header(a, 'connection')).toBe('close');
    expect(await sniffing.waitClosed()).toBe(true);

    // An HTTP/1 connection of the strict engine that has sent nothing yet.
    const fresh = await RawClient.connect(sc.port());
    // One served request first on another connection: the listener has surely taken `fresh` in.
    const warm = await RawClient.connect(sc.port());
    warm.send(request('/warm'));
    expect((await warm.readResponse()).status).toBe(200);
    await reload('auto');
    expect(fresh.closed).toBe(false);
    fresh.send(request('/after-reload-2'));
    const b = await fresh.readResponse();
    expect([b.status, b.body.toString()]).toEqual([200, 'app /after-reload-2']);
    expect(header(b, 'connection')).toBe('close');
    expect(await fresh.waitClosed()).toBe(true);
    // A connection between requests closes at once, as before (its client sends again on a new one).
    expect(await warm.waitClosed()).toBe(true);
  });
});
