// src/time.ts against Date's own formatters: the same text for every time a sidecar meets
// (1970-9999, drawn from a fixed-seed generator, plus the calendar's edges), and Date's own
// answer outside that range, a RangeError included.
import { describe, expect, it } from 'vitest';
import { imfFixdate, isoTime, pinoIsoTime } from '../../src/time.js';

/** mulberry32: a fixed sequence, so a failure names a time that fails again. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const MAX_MS = 253_402_300_800_000;
const EDGES = [
  0,
  1,
  999,
  86_399_999,
  86_400_000,
  Date.UTC(2000, 1, 28, 23, 59, 59, 999),
  Date.UTC(2000, 1, 29),
  Date.UTC(2000, 2, 1),
  Date.UTC(2100, 1, 28),
  Date.UTC(2100, 2, 1),
  Date.UTC(1972, 11, 31, 23, 59, 59, 999),
  Date.UTC(2026, 11, 7, 13, 49, 0, 708),
  Date.UTC(9999, 11, 31, 23, 59, 59, 999),
  1.5,
  1_000_000.999,
];

describe('isoTime and imfFixdate', () => {
  it("write what Date's toISOString and toUTCString write, for 200 000 times in 1970-9999 and the calendar's edges", () => {
    const next = random(20261207);
    const times = [...EDGES, ...Array.from({ length: 200_000 }, (_, i) => Math.floor(next() * (i % 2 === 0 ? MAX_MS : 4e12)))];
    const wrong = times.filter((ms) => isoTime(ms) !== new Date(ms).toISOString() || imfFixdate(ms) !== new Date(ms).toUTCString());
    expect(wrong).toEqual([]);
  });

  it('outside 1970-9999 they answer as Date does, and an invalid time is a RangeError for isoTime', () => {
    for (const ms of [-1, -86_400_001, MAX_MS, MAX_MS + 1, 8.64e15]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      expect(imfFixdate(ms)).toBe(new Date(ms).toUTCString());
    }
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(imfFixdate(Number.NaN)).toBe('Invalid Date');
  });

  it("pinoIsoTime is pino's isoTime field: now, as JSON", () => {
    const before = Date.now();
    const field = JSON.parse(`{${pinoIsoTime().slice(1)}}`) as { time: string };
    const at = Date.parse(field.time);
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
    expect(field.time).toBe(isoTime(at));
  });
});
