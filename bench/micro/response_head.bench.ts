// The upstream response head on the hot path (src/upstream/response_parser.ts): a head read whole
// from one socket read, its body after it, as the bench upstream (uWS) and a Node app answer.
// The sink takes nothing, so what is timed is the parser: the search for the head's end, its
// latin1 text, the status line and the field lines (h1/parse.ts parseFieldLine), the framing.

import type { Bench } from 'tinybench';
import { ResponseParser, type ResponseSink } from '../../src/upstream/response_parser.js';

export const title = 'response head: parse a whole response from one read';

const SINK: ResponseSink = { onHead: () => undefined, onBody: () => undefined, onEnd: () => undefined };

function response(head: string, body: string): Buffer {
  return Buffer.from(`${head}\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 'latin1');
}

export function register(bench: Bench): void {
  const parser = new ResponseParser();
  const cases: Array<[string, Buffer]> = [
    ['uWS app, 4 headers', response('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nDate: Mon, 07 Dec 2026 03:11:25 GMT\r\nuWebSockets: 20', 'hello world')],
    [
      'Node app, 5 headers with Connection and Keep-Alive',
      response(
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 07 Dec 2026 03:11:25 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5',
        '{"ok":true}',
      ),
    ],
    ['16 headers', response(`HTTP/1.1 200 OK\r\n${Array.from({ length: 15 }, (_, i) => `X-Header-${i}: value number ${i}`).join('\r\n')}`, 'x'.repeat(100))],
  ];
  for (const [name, bytes] of cases) {
    bench.add(name, () => {
      parser.start(SINK, false);
      parser.execute(bytes, 0, bytes.length);
      if (!parser.done) throw new Error(`response head bench: ${parser.error ?? 'not complete'}`);
    });
  }
}
