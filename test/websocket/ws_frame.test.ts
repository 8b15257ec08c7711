// The uws engine's frame codec (src/dataplane/ws_frame.ts): masked client frames unmask to the
// payload with the right header at every length boundary and alignment; the reader of server
// frames gives back the same frames however the bytes are split into reads (fast-check), and
// refuses what a server may not send with the close code the adapter passes on.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as wsFrame from '../../src/dataplane/ws_frame.js';

/** Decodes one masked frame: FIN, opcode, payload (unmasked), and that it was masked. */
function decodeMasked(bytes: Buffer): { fin: boolean; opcode: number; masked: boolean; payload: Buffer } {
  let len = bytes[1]! & 0x7f;
  let at = 2;
  if (len === 126) {
    len = bytes.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    len = Number(bytes.readBigUInt64BE(2));
    at = 10;
  }
  const key = bytes.subarray(at, at + 4);
  const payload = Buffer.from(bytes.subarray(at + 4, at + 4 + len).map((b, i) => b ^ key[i % 4]!));
  expect(bytes.length).toBe(at + 4 + len);
  return { fin: (bytes[0]! & 0x80) !== 0, opcode: bytes[0]! & 0x0f, masked: (bytes[1]! & 0x80) !== 0, payload };
}

function masked(opcode: number, payload: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  wsFrame.writeMaskedFrame(opcode, payload, (b) => parts.push(b));
  return Buffer.concat(parts);
}

/** An unmasked server frame. */
function serverFrame(fin: boolean, opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0, n]) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (n >= 126 && n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else if (n >= 65536) {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = (fin ? 0x80 : 0) | opcode;
  return Buffer.concat([head, payload]);
}

class Collect implements wsFrame.FrameSink {
  frames: Array<{ fin: boolean; opcode: number; payload: Buffer }> = [];
  error: { code: number; reason: string } | null = null;
  frame(fin: boolean, opcode: number, payload: Buffer): void {
    this.frames.push({ fin, opcode, payload: Buffer.from(payload) });
  }
  frameError(code: number, reason: string): void {
    this.error = { code, reason };
  }
}

describe('masked client frames', () => {
  it.each([0, 1, 125, 126, 1023, 1024, 1027, 65535, 65536, 300_001])('a %i-byte payload unmasks to itself, with the length in the right form', (n) => {
    const payload = Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
    const f = decodeMasked(masked(wsFrame.OP_BINARY, payload));
    expect(f).toMatchObject({ fin: true, opcode: wsFrame.OP_BINARY, masked: true });
    expect(f.payload.equals(payload)).toBe(true);
  });

  it('a payload that is not word-aligned in its buffer is masked right too', () => {
    const backing = Buffer.alloc(5000, 0xab);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 1, 4097);
    expect(decodeMasked(masked(wsFrame.OP_TEXT, view)).payload.equals(Buffer.from(view))).toBe(true);
  });

  it('each frame gets a fresh key', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 64; i++) keys.add(masked(wsFrame.OP_PING, Buffer.from('p')).subarray(2, 6).toString('hex'));
    expect(keys.size).toBeGreaterThan(60);
  });
});

describe('reading server frames', () => {
  const frameArb = fc.record({
    fin: fc.boolean(),
    opcode: fc.constantFrom(wsFrame.OP_CONTINUATION, wsFrame.OP_TEXT, wsFrame.OP_BINARY),
    payload: fc.uint8Array({ maxLength: 70_000 }).map((a) => Buffer.from(a)),
  });
  const controlArb = fc.record({
    fin: fc.constant(true),
    opcode: fc.constantFrom(wsFrame.OP_CLOSE, wsFrame.OP_PING, wsFrame.OP_PONG),
    payload: fc.uint8Array({ maxLength: 125 }).map((a) => Buffer.from(a)),
  });

  it('gives back the frames as sent, however the bytes are split into reads', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(frameArb, controlArb), { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (frames, cuts) => {
        const bytes = Buffer.concat(frames.map((f) => serverFrame(f.fin, f.opcode, f.payload)));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const reader = new wsFrame.ServerFrameReader(1 << 20);
        const sink = new Collect();
        let from = 0;
        for (const p of [...points, bytes.length]) {
          reader.feed(bytes.subarray(from, p), sink);
          from = p;
        }
        expect(sink.error).toBeNull();
        expect(sink.frames).toEqual(frames);
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ['a masked frame', 1002, Buffer.from([0x81, 0x81, 1, 2, 3, 4, 0x61])],
    ['reserved bits set', 1002, Buffer.from([0xc1, 0x01, 0x61])],
    ['an unknown opcode', 1002, Buffer.from([0x83, 0x00])],
    ['a fragmented control frame', 1002, Buffer.from([0x09, 0x00])],
    ['a control frame over 125 bytes', 1002, serverFrame(true, wsFrame.OP_PING, Buffer.alloc(126))],
    ['a frame over the limit', 1009, serverFrame(true, wsFrame.OP_BINARY, Buffer.alloc(1025))],
  ])('%s is refused with close code %i, and nothing after it is read', (_what, code, bytes) => {
    const reader = new wsFrame.ServerFrameReader(1024);
    const sink = new Collect();
    reader.feed(Buffer.concat([bytes, serverFrame(true, wsFrame.OP_TEXT, Buffer.from('after'))]), sink);
    expect(sink.error?.code).toBe(code);
    expect(sink.frames).toEqual([]);
  });
});
