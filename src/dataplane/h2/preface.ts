// `protocol: auto` on plaintext listeners: the first bytes of a connection decide whether it
// speaks HTTP/2 with prior knowledge (RFC 9113 §3.3: the client connection preface
// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) or HTTP/1.1. Runs once per connection, before the HTTP/1
// engine sees a byte; the bytes read are put back (`unshift`) for whichever engine takes over.
// HTTP/1.1 `Upgrade: h2c` is never honoured: such a request is served as HTTP/1.1 (README).

import type { Socket } from 'node:net';

/** The HTTP/2 client connection preface. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Whether `b` starts with the preface (2), could still become it (1), or cannot (0). */
export function prefaceMatch(b: Buffer): 0 | 1 | 2 {
  const n = Math.min(b.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (b[i] !== H2_PREFACE[i]) return 0;
  return n === H2_PREFACE.length ? 2 : 1;
}

/**
 * Reads the first bytes of `socket` and hands it, with those bytes put back, to `h2` or `h1`.
 * A connection that sends nothing within `timeoutMs` (the listener's headers_ms) is closed, as a
 * slow HTTP/1 head would be. The socket comes back paused: the taker resumes it.
 */
export function sniffPreface(socket: Socket, timeoutMs: number, h2: (s: Socket) => void, h1: (s: Socket) => void): void {
  let got: Buffer | null = null;
  // Nothing (or a part of the preface) and then silence or a FIN: nothing to serve.
  const onTimeout = (): void => {
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    got = got === null ? chunk : Buffer.concat([got, chunk]);
    const m = prefaceMatch(got);
    if (m === 1) return; // a prefix of the preface so far: wait for more
    socket.off('data', onData);
    socket.off('timeout', onTimeout);
    socket.off('end', onTimeout);
    socket.off('error', noop);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(got);
    if (m === 2) h2(socket);
    else h1(socket);
  };
  socket.setTimeout(timeoutMs);
  socket.on('timeout', onTimeout);
  socket.on('end', onTimeout);
  socket.on('error', noop); // 'close' follows; nobody else listens yet
  socket.on('data', onData);
}

function noop(): void {}
