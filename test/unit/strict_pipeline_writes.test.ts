// The strict engine's server (src/dataplane/h1/server.ts) in this process, on a real mTLS
// socket, with a host of the test's own that answers requests when the test says: a pipelined
// connection (ALPN PIPELINE_ALPN) hands the host every request at once, and the responses
// written during one loop turn leave in one write of the socket (counted at the TLS socket's
// _write/_writev, the stream calls that each become one TLS record and one syscall); without the
// ALPN the host sees one request at a time.

import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import type { ListenerSpec } from '../../src/config/types.js';
import type { ResponseHead } from '../../src/dataplane/downstream.js';
import type { StrictDownstream } from '../../src/dataplane/h1/downstream.js';
import { StrictServer } from '../../src/dataplane/h1/server.js';
import { BodyFraming } from '../../src/dataplane/request_head.js';
import { PIPELINE_ALPN } from '../../src/net/alpn.js';
import type { Ca } from '../../src/tls/ca.js';
import { Ticker } from '../../src/upstream/ticker.js';
import { minimal, ok, OPTS } from '../config/helpers.js';
import { API, closeAll, leaf, newCa, RawClient, WEB } from '../helpers/sidecar.js';

interface Held {
  readonly down: StrictDownstream;
  readonly path: string;
}

let ca: Ca;
let ticker: Ticker;
let server: StrictServer;
let port: number;
/** Requests the host holds, in arrival order. */
const held: Held[] = [];
/** Socket writes of each server-side connection, by its client's port. */
const writes = new Map<number, number>();

function listenerSpec(): ListenerSpec {
  const cfg = minimal();
  cfg['listeners'] = [{ name: 'l', address: '127.0.0.1:0', engine: 'strict', routes: [{ cluster: 'api' }] }];
  cfg['clusters'] = [{ name: 'api', endpoints: [{ address: '127.0.0.1:8080' }] }];
  const spec = ok(compileConfig(cfg, OPTS)).snapshot.listeners[0];
  if (spec === undefined) throw new Error('no listener');
  return spec;
}

function head(body: Buffer): ResponseHead {
  return {
    status: 200,
    reason: 'OK',
    headers: ['content-type', 'text/plain'],
    connectionNamed: null,
    nonAscii: false,
    contentLength: body.length,
    bodiless: false,
  };
}

/** Answers a held request (its path as the body), all in the caller's turn. */
function answer(h: Held): void {
  const body = Buffer.from(h.path);
  h.down.writeHead(head(body));
  h.down.writeBody(body);
  h.down.end(null);
}

beforeAll(async () => {
  ca = await newCa();
  const me = leaf(ca, API);
  ticker = new Ticker(25);
  server = new StrictServer(
    listenerSpec(),
    ticker,
    {
      request: (down, h) => {
        down.conn.expectBody(BodyFraming.None, 0);
        held.push({ down, path: h.target });
      },
      refused: () => undefined,
      accepted: () => undefined,
    },
    {
      options: { cert: me.certPem, key: me.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: [PIPELINE_ALPN, 'http/1.1'] },
      peer: () => WEB,
      failed: () => undefined,
    },
  );
  server.server.on('secureConnection', (s: tls.TLSSocket) => {
    const key = s.remotePort!;
    writes.set(key, 0);
    const count = <F extends (...a: never[]) => unknown>(f: F): F =>
      function (this: unknown, ...a: Parameters<F>) {
        writes.set(key, writes.get(key)! + 1);
        return f.apply(this, a);
      } as F;
    const stream = s as unknown as { _write: (...a: never[]) => unknown; _writev: (...a: never[]) => unknown };
    stream._write = count(stream._write);
    stream._writev = count(stream._writev);
  });
  server.server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  port = (server.server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAll();
  ticker.stop();
  await closeAll();
});

async function connect(alpn: string[]): Promise<{ client: RawClient; localPort: number; alpn: string | false | null }> {
  const web = leaf(ca, WEB);
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca: ca.certPem,
    cert: web.certPem,
    key: web.keyPem,
    checkServerIdentity: () => undefined,
    ALPNProtocols: alpn,
  });
  await once(socket, 'secureConnect');
  return { client: RawClient.over(socket), localPort: socket.localPort!, alpn: socket.alpnProtocol };
}

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nhost: app\r\n\r\n`;

describe('strict engine, pipelined (in process)', () => {
  it('six responses answered in one turn, last first, leave in request order in one socket write', async () => {
    const { client, localPort, alpn } = await connect([PIPELINE_ALPN, 'http/1.1']);
    expect(alpn).toBe(PIPELINE_ALPN);
    held.length = 0;
    const paths = Array.from({ length: 6 }, (_, i) => `/turn/${i}`);
    client.send(paths.map(get).join(''));
    await expect.poll(() => held.length).toBe(6);
    const before = writes.get(localPort)!;
    for (const h of [...held].reverse()) answer(h);
    const bodies: string[] = [];
    for (let i = 0; i < paths.length; i++) bodies.push((await client.readResponse()).body.toString());
    expect(bodies).toEqual(paths);
    expect(writes.get(localPort)! - before).toBe(1);
    client.close();
  });

  it('without the ALPN, the host sees the next request only once the previous one is answered', async () => {
    const { client, alpn } = await connect(['http/1.1']);
    expect(alpn).toBe('http/1.1');
    held.length = 0;
    client.send(get('/one/0') + get('/one/1'));
    await expect.poll(() => held.length).toBe(1);
    answer(held[0]!);
    expect((await client.readResponse()).body.toString()).toBe('/one/0');
    await expect.poll(() => held.length).toBe(2);
    answer(held[1]!);
    expect((await client.readResponse()).body.toString()).toBe('/one/1');
    client.close();
  });
});
