// The x-request-id of a request that arrives without one: a random UUID (RFC 9562 version 4) as
// crypto.randomUUID() makes it, rendered straight into one string. randomUUID() joins its 36
// characters from ~30 short strings, which left about 700 B of garbage per request (a heap
// sampling profile of a strict-engine worker under wrk); here the hex digits are written into a
// small buffer and read out once. Random bytes come from a pool refilled 4 KiB at a time
// (randomUUID keeps a 2 KiB cache the same way).

import { randomFillSync } from 'node:crypto';

const IDS_PER_FILL = 256;
const pool = Buffer.allocUnsafeSlow(16 * IDS_PER_FILL);
let used = IDS_PER_FILL;
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** The text of the id being made: 8-4-4-4-12 hex digits, the dashes written once. */
const text = Buffer.allocUnsafeSlow(36);
text[8] = text[13] = text[18] = text[23] = 0x2d;

/** A fresh random request id (UUID version 4, lower-case hex). */
export function newRequestId(): string {
  if (used === IDS_PER_FILL) {
    randomFillSync(pool);
    used = 0;
  }
  const o = 16 * used++;
  pool[o + 6] = (pool[o + 6]! & 0x0f) | 0x40; // version 4
  pool[o + 8] = (pool[o + 8]! & 0x3f) | 0x80; // variant 10
  let t = 0;
  for (let i = 0; i < 16; i++) {
    if (t === 8 || t === 13 || t === 18 || t === 23) t++;
    const b = pool[o + i]!;
    text[t++] = HEX_DIGITS[b >> 4]!;
    text[t++] = HEX_DIGITS[b & 15]!;
  }
  return text.toString('latin1', 0, 36);
}
