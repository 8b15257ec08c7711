// Streaming with backpressure (DESIGN.md §2, STYLE.md item 9): a 200 MB upload and a 200 MB
// download pass through a 1-worker sidecar byte for byte (sha256 on both sides; bytes generated
// on the fly, never held whole); and a client that stops reading makes the upstream's writes back
// up instead of the proxy buffering. (Memory use under load is measured in bench/, not here.)

import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeAll, proxyConfig, startSidecar, startUpstream, waitFor, type Sidecar, type Upstream } from '../helpers/sidecar.js';

const TOTAL = 200 * 1024 * 1024;
const CHUNK = 256 * 1024;
/** A pool of random blocks: the stream is random-looking but costs no CPU to generate. */
const BLOCKS = Array.from({ length: 16 }, () => randomBytes(CHUNK));

let up: Upstream;
let sc: Sidecar;
/** Upstream-side state of the slow-reader test. */
const slow = { written: 0, firstFalseAt: -1, drains: 0, finished: false };
const SLOW_TOTAL = 256 * 1024 * 1024;

beforeAll(async () => {
  up = await startUpstream(
    (req, res, rec) => {
      if (rec.url === '/download') {
        // 200 MB generated on the fly, hashed as sent, honouring backpressure.
        const hash = createHash('sha256');
        let sent = 0;
        let i = 0;
        res.writeHead(200, { 'content-length': String(TOTAL), 'content-type': 'application/octet-stream' });
        const pump = (): void => {
          while (sent < TOTAL) {
            const block = BLOCKS[i++ % BLOCKS.length]!;
            const part = block.subarray(0, Math.min(CHUNK, TOTAL - sent));
            hash.update(part);
            sent += part.length;
            if (!res.write(part)) {
              res.once('drain', pump);
              return;
            }
          }
          downloadSha = hash.digest('hex');
          res.end();
        };
        pump();
        return;
      }
      if (rec.url === '/slow-reader') {
        res.writeHead(200, { 'content-length': String(SLOW_TOTAL) });
        const block = BLOCKS[0]!;
        const pump = (): void => {
          while (slow.written < SLOW_TOTAL) {
            slow.written += block.length;
            if (!res.write(block)) {
              if (slow.firstFalseAt < 0) slow.firstFalseAt = slow.written;
              res.once('drain', () => {
                slow.drains++;
                pump();
              });
              return;
            }
          }
          slow.finished = true;
          res.end();
        };
        pump();
        return;
      }
      // Upload: answer once the whole body is in, with what arrived.
      void rec.settled.then(() => {
        const body = JSON.stringify({ length: rec.bodyLength, sha256: rec.bodySha256, complete: rec.complete });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      void req;
    },
    { recordBody: false },
  );
  sc = await startSidecar(proxyConfig([up.address]), { workers: 1 });
});
afterAll(closeAll);

let downloadSha = '';

describe('200 MB bodies', () => {
  it('a 200 MB upload arrives intact', async () => {
    const clientHash = createHash('sha256');
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        sc.url('/upload'),
        { method: 'POST', agent: false, headers: { host: 'example', 'content-length': String(TOTAL), 'content-type': 'application/octet-stream' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      let sent = 0;
      let i = 0;
      const pump = (): void => {
        while (sent < TOTAL) {
          const part = BLOCKS[i++ % BLOCKS.length]!.subarray(0, Math.min(CHUNK, TOTAL - sent));
          clientHash.update(part);
          sent += part.length;
          if (!req.write(part)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    expect(result.status).toBe(200);
    const got = JSON.parse(result.body) as { length: number; sha256: string; complete: boolean };
    expect(got.complete).toBe(true);
    expect(got.length).toBe(TOTAL);
    expect(got.sha256).toBe(clientHash.digest('hex'));
  });

  it('a 200 MB download arrives intact', async () => {
    const clientHash = createHash('sha256');
    const got = await new Promise<{ status: number; length: number; complete: boolean }>((resolve, reject) => {
      const req = http.get(sc.url('/download'), { agent: false, headers: { host: 'example' } }, (res) => {
        let length = 0;
        res.on('data', (d: Buffer) => {
          length += d.length;
          clientHash.update(d);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, length, complete: res.complete }));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
    expect(got.status).toBe(200);
    expect(got.complete).toBe(true);
    expect(got.length).toBe(TOTAL);
    expect(clientHash.digest('hex')).toBe(downloadSha);
  });
});

describe('slow-reading client', () => {
  it("makes the upstream's writes back up instead of the proxy buffering the response", async () => {
    const sock = net.connect({ host: '127.0.0.1', port: sc.port() });
    await new Promise<void>((r) => sock.once('connect', () => r()));
    let received = 0;
    sock.on('data', (d: Buffer) => (received += d.length));
    sock.write('GET /slow-reader HTTP/1.1\r\nHost: example\r\n\r\n');
    await waitFor(() => received > 0, 'first response bytes');
    sock.pause(); // stop reading: the kernel buffers fill, then the proxy must push back

    // The upstream must see backpressure (res.write() returning false)...
    await waitFor(() => slow.firstFalseAt >= 0, "the upstream's write() to return false", 20_000);
    // ...and then stall: wait until its byte count stops moving. (A quiet period, not a
    // synchronisation: a slow machine only makes it wait longer; the bound below is what matters.)
    let last = -1;
    while (slow.written !== last) {
      last = slow.written;
      await delay(500);
    }
    expect(slow.finished).toBe(false);
    // Only socket buffers and the proxy's bounded window are in flight, far from 256 MB.
    expect(slow.written).toBeLessThan(64 * 1024 * 1024);

    // Reading again lets the whole response through.
    sock.resume();
    await waitFor(() => slow.finished, 'the upstream to finish writing', 30_000);
    // Body plus a response head of some bytes.
    await waitFor(() => received > SLOW_TOTAL, 'the whole response to arrive', 30_000);
    sock.destroy();
  });
});
