// The bench's Node floor (bench/node_relay.ts as the node-relay and node-relay-pair configs):
// started through startTarget against a real upstream, it relays requests and bodies byte for
// byte, both ways, on keep-alive connections, and its stop() closes the port.

import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, request, Agent, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTarget, type RunningTarget } from '../../bench/lib/targets.js';
import { ROOT } from '../helpers/sidecar.js';

let upstream: Server;
let upstreamPort = 0;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    if (req.method === 'GET') {
      res.end('hello world');
      return;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (b: Buffer) => {
      hash.update(b);
      bytes += b.length;
    });
    req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

function post(baseUrl: string, body: Buffer, agent: Agent): Promise<{ bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}/echo`, { method: 'POST', agent, headers: { 'content-length': body.length } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(parts).toString()) as { bytes: number; sha256: string }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function start(kind: 'node-relay' | 'node-relay-pair'): Promise<RunningTarget> {
  const r = await startTarget({ name: kind, kind }, { repoRoot: ROOT, tmpDir: mkdtempSync(join(tmpdir(), 'relay-')), upstreamPort, tools: new Map() });
  if (!r.ok) throw new Error(r.reason);
  return r.target;
}

describe.each(['node-relay', 'node-relay-pair'] as const)('%s', (kind) => {
  it('relays GETs and 1 MiB bodies both ways on keep-alive connections, and stops', async () => {
    const target = await start(kind);
    try {
      expect(target.pids.length).toBe(kind === 'node-relay' ? 1 : 2);
      expect(target.parts?.map((p) => p.name) ?? []).toEqual(kind === 'node-relay' ? [] : ['front', 'back']);
      const agent = new Agent({ keepAlive: true, maxSockets: 2 });
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${target.baseUrl}/`);
        expect(await res.text()).toBe('hello world');
      }
      const bodies = [randomBytes(1 << 20), randomBytes(70_001), Buffer.alloc(0)];
      const answers = await Promise.all(bodies.map((b) => post(target.baseUrl, b, agent)));
      expect(answers).toEqual(bodies.map((b) => ({ bytes: b.length, sha256: createHash('sha256').update(b).digest('hex') })));
      agent.destroy();
    } finally {
      await target.stop();
    }
    await expect(fetch(`${target.baseUrl}/`)).rejects.toThrow();
  });
});
