// The strict engine's request head parse on the hot path (src/dataplane/h1/parse.ts parseHead),
// from the head's bytes as the connection hands them over: the latin1 text of the whole head,
// the request line, each field line checked as it is read, names lower-cased, the Connection and
// Expect tokens. What request_head.ts judges afterwards (framing, Host) is not in it. Three heads
// of the sizes real clients send: wrk's (Host only), curl's, a browser's (17 fields, cookies).

import type { Bench } from 'tinybench';
import { emptyHead, HeadError, parseHead } from '../../src/dataplane/h1/parse.js';

export const title = 'request head: the strict engine parses a whole head';

const HEADS: Array<[string, string]> = [
  ['wrk, Host only (41 bytes)', 'GET / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n'],
  ['curl, 3 fields', 'GET /api/v1/users?limit=10 HTTP/1.1\r\nHost: api.internal:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n'],
  [
    'browser, 17 fields with cookies',
    [
      'GET /app/dashboard?tab=overview&range=24h HTTP/1.1',
      'Host: shop.example.internal',
      'Connection: keep-alive',
      'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"',
      'sec-ch-ua-mobile: ?0',
      'sec-ch-ua-platform: "Linux"',
      'Upgrade-Insecure-Requests: 1',
      'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
      'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8',
      'Sec-Fetch-Site: same-origin',
      'Sec-Fetch-Mode: navigate',
      'Sec-Fetch-User: ?1',
      'Sec-Fetch-Dest: document',
      'Referer: https://shop.example.internal/app/login',
      'Accept-Encoding: gzip, deflate, br, zstd',
      'Accept-Language: en-US,en;q=0.9,de;q=0.8',
      'Cookie: session=4f9c2a7e1b8d4c3f9a6e5d2c1b0a9f8e; theme=dark; _ga=GA1.1.123456789.1700000000',
      'If-None-Match: W/"5e-1a2b3c4d"',
      '',
      '',
    ].join('\r\n'),
  ],
];

export function register(bench: Bench): void {
  const out = emptyHead();
  for (const [name, text] of HEADS) {
    const bytes = Buffer.from(text, 'latin1');
    const fields = text.split('\r\n').length - 3;
    bench.add(name, () => {
      const e = parseHead(bytes.toString('latin1', 0, bytes.length), out);
      if (e !== HeadError.None || out.headers.length !== fields * 2) throw new Error(`request head bench: error ${e}, ${out.headers.length / 2} fields`);
    });
  }
}
