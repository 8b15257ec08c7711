// `protocol: auto` on plaintext listeners: the first bytes of a connection decide whether it
// speaks HTTP/2 with prior knowledge (RFC 9113 §3.3: the client connection preface
// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) or HTTP/1.1. Runs once per connection, before the HTTP/1
// engine sees a byte; the bytes read are put back (`unshift`) for whichever engine takes over.
// HTTP/1.1 `Upgrade: h2c` is never honoured: such a request is served as HTTP/1.1 (README).

import type { Socket } from 'node:net';
import { readIntoBuffer } from '../../net/user_buffer.js';

/** The HTTP/2 client connection preface. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Whether `b` starts with the preface (2), could still become it (1), or cannot (0). */
export function prefaceMatch(b: Buffer): 0 | 1 | 2 {
  const n = Math.min(b.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (b[i] !== H2_PREFACE[i]) return 0;
  return n === H2_PREFACE.length ? 2 : 1;
}

/**
 * Reads the first bytes of `socket` and hands it to `h2` or `h1` with those bytes put back
 * (`unshift`; the socket comes back paused: the taker resumes it). `readShared`: the socket was
 * accepted paused and reads into that shared buffer (src/net/user_buffer.ts) when this can be
 * arranged; `h1` then gets a socket that keeps reading into it and `first`, the bytes read (a
 * view of the buffer until its next read; h1/connection.ts takes the reads over).
 * A connection that sends nothing within `timeoutMs` (the listener's headers_ms) is closed, as a
 * slow HTTP/1 head would be.
 */
export function sniffPreface(
  socket: Socket,
  timeoutMs: number,
  h2: (s: Socket) => void,
  h1: (s: Socket, first: Buffer | null) => void,
  readShared: Buffer | null = null,
): void {
  let got: Buffer | null = null;
  // Nothing (or a part of the preface) and then silence or a FIN: nothing to serve.
  const onTimeout = (): void => {
    socket.destroy();
  };
  const onChunk = (chunk: Buffer, shared: boolean): void => {
    const all = got === null ? chunk : Buffer.concat([got, chunk]);
    const m = prefaceMatch(all);
    if (m === 1) {
      got = shared && got === null ? Buffer.from(all) : all; // a prefix of the preface so far: wait for more
      return;
    }
    socket.off('data', onData);
    socket.off('timeout', onTimeout);
    socket.off('end', onTimeout);
    socket.off('error', noop);
    socket.setTimeout(0);
    if (m === 0 && shared) {
      h1(socket, all);
      return;
    }
    socket.pause();
    socket.unshift(shared && all === chunk ? Buffer.from(all) : all);
    if (m === 2) h2(socket);
    else h1(socket, null);
  };
  const onData = (chunk: Buffer): void => onChunk(chunk, false);
  socket.setTimeout(timeoutMs);
  socket.on('timeout', onTimeout);
  socket.on('end', onTimeout);
  socket.on('error', noop); // 'close' follows; nobody else listens yet
  if (readShared !== null && readIntoBuffer(socket, readShared, (n, b) => onChunk(b.subarray(0, n), true))) return;
  socket.on('data', onData);
  if (readShared !== null) socket.resume(); // accepted paused
}

function noop(): void {}
