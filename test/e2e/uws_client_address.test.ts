// The uws engine's client address for x-forwarded-for (src/dataplane/uws_address.ts): made from
// getRemoteAddress()'s bytes, the text of the last address kept. It must read exactly as uWS's
// own getRemoteAddressAsText() (which the engine used before), for IPv4 and IPv6 clients, and a
// new client address must never get the previous one's text.
import uWS from 'uWebSockets.js';
import { afterAll, describe, expect, it } from 'vitest';
import { addressText, remoteAddressText } from '../../src/dataplane/uws_address.js';
import { closeAll, httpGet, proxyConfig, startSidecar, startUpstream } from '../helpers/sidecar.js';

afterAll(closeAll);

describe('addressText', () => {
  it('renders 4 bytes as dotted decimal and 16 as eight full groups of lower-case hex, as uWS does', () => {
    expect(addressText(Uint8Array.from([127, 0, 0, 1]))).toBe('127.0.0.1');
    expect(addressText(Uint8Array.from([10, 200, 0, 255]))).toBe('10.200.0.255');
    const v6 = new Uint8Array(16);
    v6[15] = 1;
    expect(addressText(v6)).toBe('0000:0000:0000:0000:0000:0000:0000:0001');
    const doc = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0x0c, 0xff, 0x0a]);
    expect(addressText(doc)).toBe('2001:0db8:0000:0000:0000:0000:ab0c:ff0a');
    expect(addressText(new Uint8Array(0))).toBe('');
  });
});

describe('remoteAddressText on a real uWS app', () => {
  it('reads as getRemoteAddressAsText() for IPv4 and IPv6 clients, across changes of client address', async () => {
    const app = uWS.App().get('/*', (res) => {
      const theirs = Buffer.from(res.getRemoteAddressAsText()).toString('latin1');
      const ours = remoteAddressText(res);
      res.end(JSON.stringify({ theirs, ours }));
    });
    const listen = (host: string): Promise<{ socket: uWS.us_listen_socket; port: number }> =>
      new Promise((resolve, reject) =>
        app.listen(host, 0, (s) => (s === false ? reject(new Error(`listen on ${host}`)) : resolve({ socket: s, port: uWS.us_socket_local_port(s) }))),
      );
    const v4 = await listen('127.0.0.1');
    const v6 = await listen('::1');
    try {
      // Alternating sources: each request's address differs from the one before, then repeats.
      const a = `http://127.0.0.1:${v4.port}/`;
      const b = `http://[::1]:${v6.port}/`;
      const calls: Array<[string, string]> = [
        [a, '127.0.0.2'],
        [a, '127.0.0.1'],
        [b, '::1'],
        [a, '127.0.0.2'],
        [a, '127.0.0.2'],
        [b, '::1'],
        [a, '127.0.0.1'],
      ];
      const seen: string[] = [];
      for (const [url, localAddress] of calls) {
        const r = await httpGet(url, { localAddress });
        expect(r.status).toBe(200);
        const { theirs, ours } = JSON.parse(r.text) as { theirs: string; ours: string };
        expect(ours).toBe(theirs);
        seen.push(ours);
      }
      expect(seen).toEqual([
        '127.0.0.2',
        '127.0.0.1',
        '0000:0000:0000:0000:0000:0000:0000:0001',
        '127.0.0.2',
        '127.0.0.2',
        '0000:0000:0000:0000:0000:0000:0000:0001',
        '127.0.0.1',
      ]);
    } finally {
      uWS.us_listen_socket_close(v4.socket);
      uWS.us_listen_socket_close(v6.socket);
    }
  });
});

describe('x_forwarded_for on the uws engine', () => {
  it('appends each client its own address, whichever client came before', async () => {
    const up = await startUpstream();
    const sc = await startSidecar(proxyConfig([up.address], { engine: 'uws' }), { workers: 1 });
    const port = sc.port();
    const got: unknown[] = [];
    for (const from of ['127.0.0.3', '127.0.0.1', '127.0.0.1', '127.0.0.3']) {
      const r = await httpGet({ port, path: '/xff' }, { localAddress: from });
      expect(r.status).toBe(200);
      got.push(up.requests.at(-1)!.headers['x-forwarded-for']);
    }
    expect(got).toEqual(['127.0.0.3', '127.0.0.1', '127.0.0.1', '127.0.0.3']);
  });
});
