// HTTP/2 on TLS listeners: ALPN offers h2 and http/1.1 (`protocol: auto`), h2 connections go to
// node:http2 after the listener's own handshake and mTLS peer check, so identity, authorization
// and x-forwarded-client-cert hold exactly as for HTTP/1 on the same listener (strict and node
// engines); a client without a certificate is refused at the handshake whatever it negotiates.

import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { closeAll, directRequest, headerValues, leaf, startMeshServer, tempDir, WEB, API, spiffe, type MeshServer } from '../helpers/sidecar.js';
import { h2connect, h2request } from './h2_client.js';

const curlHasHttp2 = await new Promise<boolean>((resolve) => execFile('curl', ['-V'], (err, out) => resolve(err === null && /HTTP2/.test(out))));

describe.each(['strict', 'node'] as const)('h2 over mTLS on the %s engine', (engine) => {
  let mesh: MeshServer;
  let web: { certPem: string; keyPem: string };
  let other: { certPem: string; keyPem: string };
  beforeAll(async () => {
    mesh = await startMeshServer({
      authorization: [{ from: [WEB], paths: ['/v1/*'] }],
      edit: (cfg) => {
        const l = (cfg['listeners'] as Array<Record<string, unknown>>)[0]!;
        l['engine'] = engine;
      },
    });
    web = leaf(mesh.ca, WEB);
    other = leaf(mesh.ca, spiffe('other'));
  }, 60_000);
  afterAll(closeAll);

  /** An h2 session to the inbound listener presenting `creds` (null: no client certificate), closed when the test finishes. */
  const connect = async (creds: { certPem: string; keyPem: string } | null): Promise<ClientHttp2Session> => {
    const s = await h2connect(`https://127.0.0.1:${mesh.inbound}`, {
      ca: mesh.ca.certPem,
      ...(creds === null ? {} : { cert: creds.certPem, key: creds.keyPem }),
      // SPIFFE IDs, not DNS names, identify sidecars.
      checkServerIdentity: () => undefined,
    });
    onTestFinished(() => {});
    return s;
  };

  it('ALPN h2: the peer identity reaches the app in x-forwarded-client-cert', async () => {
    const s = await connect(web);
    expect(s.alpnProtocol).toBe('h2');
    const before = mesh.app.requests.length;
    const r = await h2request(s, { ':path': '/v1/hello', 'x-forwarded-client-cert': 'By=forged;URI=spiffe://evil/x' });
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('app GET /v1/hello');
    const seen = mesh.app.requests[before]!;
    expect(headerValues(seen.rawHeaders, 'x-forwarded-client-cert')).toEqual([`By=${API};URI=${WEB}`]);
    expect(headerValues(seen.rawHeaders, 'x-forwarded-proto')).toEqual(['https']);
  });

  it('authorization over h2: a path the rule does not allow is 403, and another identity is 403', async () => {
    const s = await connect(web);
    const r = await h2request(s, { ':path': '/admin' });
    expect(r.status).toBe(403);
    expect(r.headers['x-outrigger-error']).toBe('unauthorized');
    // The session goes on after a refusal (it concerns one stream).
    expect((await h2request(s, { ':path': '/v1/again' })).status).toBe(200);
    const o = await connect(other);
    expect((await h2request(o, { ':path': '/v1/hello' })).status).toBe(403);
  });

  it('HTTP/1.1 over TLS on the same listener still works (ALPN http/1.1 or none)', async () => {
    const r = await directRequest(mesh.inbound, { ca: mesh.ca.certPem, cert: web.certPem, key: web.keyPem }, { path: '/v1/h1' });
    expect(r.ok && r.status).toBe(200);
  });

  it.skipIf(!curlHasHttp2)('curl --http2 with a client certificate negotiates h2 by ALPN; --http1.1 gets HTTP/1.1', async () => {
    const dir = tempDir();
    const cert = path.join(dir, 'web.pem');
    const key = path.join(dir, 'web.key');
    writeFileSync(cert, web.certPem);
    writeFileSync(key, web.keyPem, { mode: 0o600 });
    // -k: the server's certificate names a SPIFFE ID, not 127.0.0.1 (its chain is what the handshake above checks).
    const curl = (v: string): Promise<string> =>
      new Promise((resolve, reject) =>
        execFile(
          'curl',
          [
            '-s',
            '-S',
            '-k',
            '--max-time',
            '10',
            v,
            '--cert',
            cert,
            '--key',
            key,
            '-w',
            '\n%{http_version} %{http_code}',
            `https://127.0.0.1:${mesh.inbound}/v1/curl`,
          ],
          (err, out) => (err === null ? resolve(out) : reject(new Error(err.message))),
        ),
      );
    expect((await curl('--http2')).split('\n')).toEqual(['app GET /v1/curl', '2 200']);
    expect((await curl('--http1.1')).split('\n')).toEqual(['app GET /v1/curl', '1.1 200']);
  });

  it('no client certificate: refused at the handshake, h2 or not', async () => {
    // TLS 1.3: the client may finish its side of the handshake before the server's refusal arrives.
    const status = await connect(null).then(
      async (s) => (await h2request(s, { ':path': '/v1/hello' }, null, 5000)).status,
      () => -1,
    );
    expect(status).toBeLessThanOrEqual(0);
    expect(mesh.app.requests.some((r) => r.url === '/v1/hello' && headerValues(r.rawHeaders, 'x-forwarded-client-cert').length === 0)).toBe(false);
  });
});
