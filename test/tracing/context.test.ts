// Trace context headers and sampling, in process: W3C traceparent parse/format (versions,
// lengths, case, all-zero ids, flags), B3 single and multi, the order a caller's contexts are
// read in, and the sampling decision (rate, parent-based, B3's deferred decision).

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatB3, formatTraceparent, parseB3Multi, parseB3Single, parseTraceparent } from '../../src/tracing/context.js';
import { randomId, readParent, Tracer } from '../../src/tracing/tracer.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('reads a valid version 00 value and its sampled flag', () => {
    expect(parseTraceparent(`00-${T}-${S}-01`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseTraceparent(`00-${T}-${S}-00`)).toEqual({ traceId: T, spanId: S, sampled: false });
    // Only bit 0 is the sampled flag; other bits are kept out of the decision.
    expect(parseTraceparent(`00-${T}-${S}-03`)?.sampled).toBe(true);
    expect(parseTraceparent(`00-${T}-${S}-02`)?.sampled).toBe(false);
  });

  it.each([
    ['version ff', `ff-${T}-${S}-01`],
    ['version 00 with more after it', `00-${T}-${S}-01-extra`],
    ['version 00 too short', `00-${T}-${S}-1`],
    ['upper-case hex', `00-${T.toUpperCase()}-${S}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${S}-01`],
    ['all-zero parent id', `00-${T}-${'0'.repeat(16)}-01`],
    ['a short trace id', `00-${T.slice(2)}-${S}-01`],
    ['non-hex flags', `00-${T}-${S}-0x`],
    ['garbage', 'hello'],
    ['empty', ''],
  ])('refuses %s', (_what, value) => {
    expect(parseTraceparent(value)).toBeNull();
  });

  it('reads a higher version by its version-00 prefix when a dash follows', () => {
    expect(parseTraceparent(`01-${T}-${S}-01-whatever`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseTraceparent(`01-${T}-${S}-01`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseTraceparent(`01-${T}-${S}-01x`)).toBeNull();
  });

  it('formats what it parses back (property)', () => {
    const hex = (n: number): fc.Arbitrary<string> => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
    fc.assert(
      fc.property(hex(32), hex(16), fc.boolean(), (t, s, sampled) => {
        fc.pre(/[1-9a-f]/.test(t) && /[1-9a-f]/.test(s));
        expect(parseTraceparent(formatTraceparent(t, s, sampled))).toEqual({ traceId: t, spanId: s, sampled });
      }),
    );
  });
});

describe('B3', () => {
  it('single: ids with and without a sampling state and parent; 64-bit trace ids padded', () => {
    expect(parseB3Single(`${T}-${S}-1`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseB3Single(`${T}-${S}-d`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseB3Single(`${T}-${S}-0-${S}`)).toEqual({ traceId: T, spanId: S, sampled: false });
    expect(parseB3Single(`${T}-${S}`)).toEqual({ traceId: T, spanId: S, sampled: null });
    expect(parseB3Single(`a3ce929d0e0e4736-${S}-1`)).toEqual({ traceId: `0000000000000000a3ce929d0e0e4736`, spanId: S, sampled: true });
  });

  it.each([['0'], ['1'], [`${T}-${S}-x`], [`${T}-${S}-true`], [`${T}`], [`${T}-short-1`], [`${'0'.repeat(32)}-${S}-1`], [`${T}-${S}-1-bad`]])(
    'single refuses %s',
    (v) => {
      expect(parseB3Single(v)).toBeNull();
    },
  );

  it('multi: X-B3-Sampled 1/0/true/false or absent, X-B3-Flags 1 (debug) samples', () => {
    expect(parseB3Multi(T, S, '1', undefined)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseB3Multi(T, S, 'false', undefined)).toEqual({ traceId: T, spanId: S, sampled: false });
    expect(parseB3Multi(T, S, undefined, undefined)).toEqual({ traceId: T, spanId: S, sampled: null });
    expect(parseB3Multi(T, S, '0', '1')).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseB3Multi(T, S, 'maybe', undefined)).toBeNull();
    expect(parseB3Multi('xyz', S, '1', undefined)).toBeNull();
  });

  it('formats the single header', () => {
    expect(formatB3(T, S, true)).toBe(`${T}-${S}-1`);
    expect(formatB3(T, S, false)).toBe(`${T}-${S}-0`);
  });
});

describe("the caller's context", () => {
  const other = 'a'.repeat(32);
  it('a valid traceparent wins over B3; an invalid one gives way to B3 single, then multi', () => {
    expect(readParent(['traceparent', `00-${T}-${S}-01`, 'b3', `${other}-${S}-1`])?.traceId).toBe(T);
    expect(readParent(['traceparent', 'junk', 'b3', `${other}-${S}-1`])?.traceId).toBe(other);
    expect(readParent(['x-b3-traceid', other, 'x-b3-spanid', S, 'x-b3-sampled', '1'])).toEqual({ traceId: other, spanId: S, sampled: true });
    expect(readParent(['traceparent', 'junk', 'x-b3-traceid', other])).toBeNull();
    expect(readParent(['host', 'a'])).toBeNull();
  });

  it('the first of repeated traceparent lines counts', () => {
    expect(readParent(['traceparent', `00-${T}-${S}-01`, 'traceparent', `00-${other}-${S}-01`])?.traceId).toBe(T);
  });
});

describe('sampling', () => {
  const spec = { sampleRate: 0.25, parentBased: true, w3c: true, b3: false };
  const seq = (...values: number[]): (() => number) => {
    let i = 0;
    return () => values[i++ % values.length]!;
  };

  it('without a parent: sampled when the draw is below sample_rate', () => {
    const tracer = new Tracer(spec, seq(0.1, 0.3, 0.2499, 0.25));
    expect([1, 2, 3, 4].map(() => tracer.sample(null))).toEqual([true, false, true, false]);
  });

  it('rate 0 never and rate 1 always, whatever the draw', () => {
    expect(new Tracer({ ...spec, sampleRate: 0 }, () => 0).sample(null)).toBe(false);
    expect(new Tracer({ ...spec, sampleRate: 1 }, () => 0.999999).sample(null)).toBe(true);
  });

  it("parent_based follows the caller's flag; B3 without a decision, or parent_based false, draws", () => {
    const tracer = new Tracer(spec, () => 0.9);
    expect(tracer.sample({ traceId: T, spanId: S, sampled: true })).toBe(true);
    expect(tracer.sample({ traceId: T, spanId: S, sampled: false })).toBe(false);
    expect(tracer.sample({ traceId: T, spanId: S, sampled: null })).toBe(false);
    const independent = new Tracer({ ...spec, parentBased: false }, () => 0.1);
    expect(independent.sample({ traceId: T, spanId: S, sampled: false })).toBe(true);
  });

  it('begin: a sampled child keeps the trace id and names its client span upstream; an unsampled one forwards the caller unchanged', () => {
    const tracer = new Tracer({ ...spec, b3: true });
    const child = tracer.begin(['traceparent', `00-${T}-${S}-01`]);
    expect(child).toMatchObject({ traceId: T, parentSpanId: S, sampled: true });
    expect(child.outgoing).toBe(
      `traceparent: 00-${T}-${child.clientSpanId}-01\r\nb3: ${T}-${child.clientSpanId}-1\r\n` +
        `x-b3-traceid: ${T}\r\nx-b3-spanid: ${child.clientSpanId}\r\nx-b3-sampled: 1\r\n`,
    );
    expect(child.spanId).not.toBe(child.clientSpanId);
    const passed = tracer.begin(['traceparent', `00-${T}-${S}-00`]);
    expect(passed).toMatchObject({ traceId: T, sampled: false, outgoing: '', spanId: '' });
  });

  it('begin without a context at rate 0: a new unsampled trace goes upstream (flag 00), nothing is recorded', () => {
    const t = new Tracer({ ...spec, sampleRate: 0 }).begin([]);
    expect(t.sampled).toBe(false);
    expect(t.outgoing).toMatch(new RegExp(`^traceparent: 00-${t.traceId}-[0-9a-f]{16}-00\\r\\n$`));
    expect(t.startMs).toBe(0);
  });

  it('random ids are hex of the asked length and never all zero', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const id = randomId(i % 2 === 0 ? 8 : 16);
      expect(id).toMatch(i % 2 === 0 ? /^[0-9a-f]{16}$/ : /^[0-9a-f]{32}$/);
      expect(/^0+$/.test(id)).toBe(false);
      ids.add(id);
    }
    expect(ids.size).toBe(1000);
  });
});
