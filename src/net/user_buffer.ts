// Reading an accepted socket into one buffer of ours, as net.connect's `onread` option does for
// sockets we dial: no Buffer is allocated per read and no byte goes through the Readable
// stream's machinery (its push, 'data' event and flowing state). Node offers `onread` only to
// net.connect and new net.Socket(); an accepted socket gets the same by setting the two fields
// that option sets (found once by their symbols' names) and telling the handle to read into the
// buffer, before the socket starts reading (the server's pauseOnConnect). pause() and resume()
// keep working (net.Socket handles `onread` sockets in both); 'end', 'error' and 'close' come
// as usual.
//
// The bytes the callback gets are a view of the shared buffer, overwritten by the next read of
// any socket of the thread: whatever outlives the callback must be copied (h1/connection.ts).
//
// Measured (a byte forwarder in a worker thread, wrk -c50, CPU µs per request, 3 rounds):
// 'data' events 27.1-28.0, onread 23.6-25.3.

import net from 'node:net';

type ReadCallback = (n: number, buf: Buffer) => void;

interface Fields {
  readonly buffer: symbol;
  readonly callback: symbol;
}

let fields: Fields | null | undefined;

/** The symbols net.Socket keeps the `onread` option under, or null when this Node has none by those names. */
function onreadFields(): Fields | null {
  if (fields !== undefined) return fields;
  // @types/node types `onread` on net.connect's options only; the constructor reads the same field.
  const probe = new net.Socket({ onread: { buffer: Buffer.alloc(1), callback: () => undefined } } as net.SocketConstructorOpts);
  const syms = Object.getOwnPropertySymbols(probe);
  const buffer = syms.find((s) => s.description === 'kBuffer');
  const callback = syms.find((s) => s.description === 'kBufferCb');
  probe.destroy();
  fields = buffer !== undefined && callback !== undefined ? { buffer, callback } : null;
  return fields;
}

interface ReadingHandle {
  useUserBuffer?(buf: Uint8Array): void;
  reading?: boolean;
}

/**
 * Makes `socket` (accepted paused, not read yet) read into `buffer` and hand each read to
 * `callback`, then resumes it. False, and nothing changed, when this cannot be done here (a
 * Node without the fields, a socket already reading, or no TCP handle): use 'data' events then.
 */
export function readIntoBuffer(socket: net.Socket, buffer: Buffer, callback: ReadCallback): boolean {
  if (!install(socket, buffer, callback, (h) => h.reading !== true)) return false;
  socket.resume();
  return true;
}

/**
 * The same for a socket that reads already (a TLS socket after its handshake, which node:tls
 * read): from now on its reads go into `buffer` and to `callback`. Returns what it read before
 * and nobody took yet (ours, not a view; null when nothing), or false, and nothing changed, when
 * this cannot be done here (use 'data' events then).
 */
export function takeOverReads(socket: net.Socket, buffer: Buffer, callback: ReadCallback): Buffer | null | false {
  if (!install(socket, buffer, callback, () => socket.readableFlowing !== true)) return false;
  const pending = socket.readableLength > 0 ? (socket.read() as Buffer | null) : null;
  socket.resume();
  return pending;
}

/** Sets `onread`'s fields on `socket` and points its handle at `buffer`, when this Node has them and `ready` agrees. */
function install(socket: net.Socket, buffer: Buffer, callback: ReadCallback, ready: (h: ReadingHandle) => boolean): boolean {
  const f = onreadFields();
  const handle = (socket as net.Socket & { _handle?: ReadingHandle | null })._handle;
  if (f === null || handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function' || !ready(handle)) return false;
  const s = socket as net.Socket & Record<symbol, unknown>;
  s[f.buffer] = buffer;
  s[f.callback] = callback;
  handle.useUserBuffer(buffer);
  return true;
}

/** Sends the reads of `socket` (reading into a buffer, readIntoBuffer) to `callback` from now on. */
export function redirectReads(socket: net.Socket, callback: ReadCallback): void {
  (socket as net.Socket & Record<symbol, unknown>)[onreadFields()!.callback] = callback;
}

/**
 * From now on each read of `socket` (reading into a buffer) is emitted as a 'data' event with a
 * copy of its bytes, for code written against 'data' events (tunnels, splice.ts). pause(),
 * resume(), 'end' and 'close' work as before; read() and 'readable' do not.
 */
export function readsAsDataEvents(socket: net.Socket): void {
  redirectReads(socket, (n, buf) => {
    socket.emit('data', Buffer.from(buf.subarray(0, n)));
  });
}
