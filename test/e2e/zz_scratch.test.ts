import { afterAll, it } from 'vitest';
import { closeAll, proxyConfig, rawRequest, startSidecar, startUpstream } from '../helpers/sidecar.js';
afterAll(closeAll);
it('probe', async () => {
  const up = await startUpstream();
  const sc = await startSidecar(proxyConfig([up.address]));
  const p = sc.port();
  const cases: Record<string, string> = {
    ok: 'GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n',
    badline: 'GET /a HTTP/1.1 x\r\nHost: x\r\n\r\n',
    badline2: 'G@T /a HTTP/1.1\r\nHost: x\r\n\r\n',
    clte: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    twocl: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    duphost: 'GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
    nohost: 'GET / HTTP/1.1\r\n\r\n',
    frag: 'GET /a#frag HTTP/1.1\r\nHost: x\r\n\r\n',
    absolute: 'GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n',
    absolute2: 'GET http://y/a HTTP/1.1\r\nHost: x\r\n\r\n',
    obsfold: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n',
    barelf: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nX-B: b\r\n\r\n',
    barecr: 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n',
    badname: 'GET / HTTP/1.1\r\nHost: x\r\nX(A): a\r\n\r\n',
    badname2: 'GET / HTTP/1.1\r\nHost: x\r\nX A: a\r\n\r\n',
    chunkoverflow: 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n',
    gzipchunked: 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
    big5k: 'GET / HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(5000) + '\r\n\r\n',
    big3k: 'GET / HTTP/1.1\r\nHost: x\r\nX-Big: ' + 'a'.repeat(3000) + '\r\n\r\n',
    invalidutf8: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nX-A: a\xff\xfeb\r\n\r\n', 'latin1').toString('latin1'),
    expect: 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n',
  };
  await Promise.all(Object.entries(cases).map(async ([k, v]) => {
    const t0 = Date.now();
    const r = await rawRequest(p, v, { timeoutMs: 25000 });
    console.log(k, JSON.stringify(r.raw.toString('latin1').slice(0, 120)), 'closed', r.closed, r.error, 'timedOut', r.timedOut, Date.now()-t0);
  }));
  for (const r of up.requests) console.log(r.url, r.complete, r.aborted, r.bodyLength, r.rawHeaders.join('|').slice(0,100));
  console.log(sc.logs().slice(-5).join('\n'));
  console.log(await sc.stop());
}, 60000);
