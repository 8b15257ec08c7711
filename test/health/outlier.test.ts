// Passive outlier detection with a fake clock (`now` option + `sweep()`); intervals are long so
// the real unref'd timers never fire during these tests, except in the one that uses them.

import { afterEach, describe, expect, it } from 'vitest';
import type { OutlierSpec } from '../../src/config/types.js';
import { MAX_EJECTION_MS, OutlierDetector, type Outcome, type OutlierState } from '../../src/health/outlier.js';
import { waitFor } from '../helpers/sidecar.js';
import { cluster, endpoint, outlier } from './helpers.js';

type Event = [cluster: string, address: string, ejected: boolean];

const detectors: OutlierDetector[] = [];
afterEach(() => {
  for (const d of detectors.splice(0)) d.close();
});

function addr(i: number): string {
  return `10.0.0.${i + 1}:80`;
}

function endpoints(n: number): ReturnType<typeof endpoint>[] {
  return Array.from({ length: n }, (_, i) => endpoint(`10.0.0.${i + 1}`, 80));
}

/** A detector on a fake clock over cluster `api` with `n` endpoints 10.0.0.1:80 … */
function setup(
  spec: Partial<OutlierSpec> = {},
  n = 10,
): {
  od: OutlierDetector;
  events: Event[];
  clock: { t: number };
  state: (i: number) => OutlierState;
  send: (i: number, outcome: Outcome, times?: number) => void;
} {
  const clock = { t: 1_700_000_000_000 };
  const events: Event[] = [];
  const od = new OutlierDetector((c, a, e) => events.push([c, a, e]), { now: () => clock.t });
  detectors.push(od);
  od.update([cluster('api', endpoints(n), { outlier: outlier(spec) })]);
  const state = (i: number): OutlierState => {
    const s = od.states().find((x) => x.address === addr(i));
    if (s === undefined) throw new Error(`no state for ${addr(i)}`);
    return s;
  };
  const send = (i: number, outcome: Outcome, times = 1): void => {
    for (let k = 0; k < times; k++) od.record('api', addr(i), outcome);
  };
  return { od, events, clock, state, send };
}

/** Ejects endpoint 0 `n` times in a row (one 5xx each), each time waiting out the ejection on the clock; the lengths. */
function ejectionDurations(t: ReturnType<typeof setup>, n: number): number[] {
  const durations: number[] = [];
  for (let k = 0; k < n; k++) {
    const start = t.clock.t;
    t.send(0, '5xx');
    const s = t.state(0);
    expect(s.ejected).toBe(true);
    const until = Date.parse(s.ejected_until!);
    durations.push(until - start);
    t.clock.t = until;
    t.od.sweep();
    expect(t.state(0).ejected).toBe(false);
  }
  return durations;
}

describe('OutlierDetector', () => {
  it('ejects at exactly consecutive5xx', () => {
    const { events, clock, state, send } = setup({ consecutive5xx: 5, baseEjectionMs: 30_000 });
    send(0, '5xx', 4);
    expect(events).toEqual([]);
    expect(state(0)).toMatchObject({ ejected: false, consecutive_5xx: 4, consecutive_gateway_failure: 0 });
    send(0, '5xx');
    expect(events).toEqual([['api', addr(0), true]]);
    expect(state(0)).toMatchObject({ ejected: true, ejections_total: 1, ejected_until: new Date(clock.t + 30_000).toISOString() });
  });

  it('a success in between resets the streak', () => {
    const { events, send } = setup({ consecutive5xx: 5 });
    send(0, '5xx', 4);
    send(0, 'success');
    send(0, '5xx', 4);
    expect(events).toEqual([]);
    send(0, '5xx');
    expect(events).toEqual([['api', addr(0), true]]);
  });

  it('ejects at consecutiveGatewayFailure; a non-gateway 5xx resets the gateway streak', () => {
    const { events, state, send } = setup({ consecutive5xx: 100, consecutiveGatewayFailure: 3 });
    send(0, 'gateway', 2);
    send(0, '5xx');
    expect(state(0)).toMatchObject({ consecutive_5xx: 3, consecutive_gateway_failure: 0 });
    send(0, 'gateway', 2);
    expect(events).toEqual([]);
    send(0, 'gateway');
    expect(events).toEqual([['api', addr(0), true]]);
  });

  it('counts gateway failures toward consecutive5xx too', () => {
    const { events, send } = setup({ consecutive5xx: 3, consecutiveGatewayFailure: 100 });
    send(0, 'gateway');
    send(0, '5xx');
    send(0, 'gateway');
    expect(events).toEqual([['api', addr(0), true]]);
  });

  it('ignores outcomes of an ejected endpoint and un-ejects when its time is up', () => {
    const { od, events, clock, state, send } = setup({ consecutive5xx: 2, baseEjectionMs: 1000, intervalMs: 10_000 });
    send(0, '5xx', 2);
    send(0, '5xx', 10);
    expect(state(0)).toMatchObject({ ejected: true, ejections_total: 1, consecutive_5xx: 0 });
    clock.t += 999;
    od.sweep();
    expect(state(0).ejected).toBe(true);
    clock.t += 1;
    od.sweep();
    expect(events).toEqual([
      ['api', addr(0), true],
      ['api', addr(0), false],
    ]);
    expect(state(0)).toMatchObject({ ejected: false, ejected_until: null, ejections_total: 1, consecutive_5xx: 0 });
  });

  it('un-ejects lazily in record() and resets the counters', () => {
    const { events, clock, state, send } = setup({ consecutive5xx: 3, consecutiveGatewayFailure: 3, baseEjectionMs: 1000 });
    send(0, 'gateway', 2);
    send(0, '5xx'); // 5xx streak 3 → ejected; gateway streak reset by the 5xx
    expect(events).toHaveLength(1);
    clock.t += 1000;
    send(0, 'gateway');
    expect(events).toEqual([
      ['api', addr(0), true],
      ['api', addr(0), false],
    ]);
    expect(state(0)).toMatchObject({ ejected: false, consecutive_5xx: 1, consecutive_gateway_failure: 1 });
  });

  it('un-ejects on its own interval timer', async () => {
    const events: Event[] = [];
    const od = new OutlierDetector((c, a, e) => events.push([c, a, e]));
    detectors.push(od);
    od.update([cluster('api', endpoints(3), { outlier: outlier({ consecutive5xx: 1, intervalMs: 10, baseEjectionMs: 20 }) })]);
    od.record('api', addr(1), '5xx');
    expect(events).toEqual([['api', addr(1), true]]);
    await waitFor(() => events.length === 2, 'un-ejection');
    expect(events[1]).toEqual(['api', addr(1), false]);
  });

  it('max_ejection_percent 10 with 10 endpoints: one ejected at a time', () => {
    const { od, events, clock, state, send } = setup({ consecutive5xx: 5, baseEjectionMs: 1000, maxEjectionPercent: 10 }, 10);
    send(0, '5xx', 5);
    send(1, '5xx', 5);
    expect(events).toEqual([['api', addr(0), true]]);
    // The refused trip restarted the streak (as Envoy): a full threshold is needed again.
    expect(state(1)).toMatchObject({ ejected: false, consecutive_5xx: 0 });
    clock.t += 1000;
    od.sweep();
    send(1, '5xx', 5);
    expect(events).toEqual([
      ['api', addr(0), true],
      ['api', addr(0), false],
      ['api', addr(1), true],
    ]);
  });

  it('max_ejection_percent 10 with 3 endpoints: still one (at least one)', () => {
    const { events, send } = setup({ consecutive5xx: 1, maxEjectionPercent: 10 }, 3);
    send(0, '5xx');
    send(1, '5xx');
    send(2, '5xx');
    expect(events).toEqual([['api', addr(0), true]]);
  });

  it('max_ejection_percent 10 with 20 endpoints: two', () => {
    const { od, events, send } = setup({ consecutive5xx: 1, maxEjectionPercent: 10 }, 20);
    for (let i = 0; i < 20; i++) send(i, '5xx');
    expect(events).toEqual([
      ['api', addr(0), true],
      ['api', addr(1), true],
    ]);
    expect(od.states().filter((s) => s.ejected)).toHaveLength(2);
  });

  it('doubles the ejection time on repeated ejections', () => {
    const base = 1000;
    const t = setup({ consecutive5xx: 1, baseEjectionMs: base, intervalMs: 60_000 });
    expect(ejectionDurations(t, 4)).toEqual([base, 2 * base, 4 * base, 8 * base]);
    expect(t.state(0).ejections_total).toBe(4);
  });

  it('caps one ejection at MAX_EJECTION_MS', () => {
    const base = 100_000;
    const t = setup({ consecutive5xx: 1, baseEjectionMs: base, intervalMs: 10_000_000 });
    expect(ejectionDurations(t, 5)).toEqual([base, 2 * base, MAX_EJECTION_MS, MAX_EJECTION_MS, MAX_EJECTION_MS]);
  });

  it('decays the multiplier by one per quiet interval; a failure restarts the interval', () => {
    const base = 1000;
    const interval = 5000;
    const { od, clock, state, send } = setup({ consecutive5xx: 2, baseEjectionMs: base, intervalMs: interval });
    const eject = (): number => {
      const start = clock.t;
      send(0, '5xx', 2);
      const until = Date.parse(state(0).ejected_until!);
      clock.t = until;
      od.sweep();
      expect(state(0).ejected).toBe(false);
      return until - start;
    };
    expect(eject()).toBe(base); // n = 1
    expect(eject()).toBe(2 * base); // n = 2
    clock.t += interval; // one quiet interval → n = 1
    od.sweep();
    expect(eject()).toBe(2 * base); // n back to 2

    // A failure inside the interval: the quiet stretch starts again from it.
    clock.t += interval - 1;
    send(0, '5xx'); // streak 1 of 2, not ejected
    send(0, 'success');
    clock.t += interval - 1;
    od.sweep(); // no full quiet interval since the failure → still n = 2
    expect(eject()).toBe(4 * base); // n = 3

    clock.t += 3 * interval; // three quiet intervals → n = 0 (states() decays lazily too)
    od.states();
    expect(eject()).toBe(base);
  });

  it('treats outcomes from several workers, interleaved, as one stream', () => {
    const { events, state, send } = setup({ consecutive5xx: 5 });
    // Three workers each see some of the failures; none alone reaches 5.
    const workers: Outcome[][] = [
      ['5xx', '5xx'],
      ['5xx', 'success', '5xx'],
      ['5xx', '5xx'],
    ];
    // Arrival order: w0 w1 w2 w0 w1 w2 w1 → 5xx 5xx 5xx 5xx success 5xx 5xx: the success resets.
    const order = [0, 1, 2, 0, 1, 2, 1];
    const cursor = [0, 0, 0];
    for (const w of order) send(0, workers[w]![cursor[w]!++]!);
    expect(events).toEqual([]);
    expect(state(0).consecutive_5xx).toBe(2);
    send(0, '5xx', 2); // streak 3, 4
    expect(events).toEqual([]);
    send(0, '5xx'); // streak 5
    expect(events).toEqual([['api', addr(0), true]]);

    // Without a success, failures split across workers add up to the threshold.
    const { events: e2, send: send2 } = setup({ consecutive5xx: 4 });
    for (let k = 0; k < 4; k++) send2(3, k % 2 === 0 ? '5xx' : 'gateway');
    expect(e2).toEqual([['api', addr(3), true]]);
  });

  it('update(): staying endpoints keep state, removed ones are forgotten, unknown ones ignored', () => {
    const { od, events, state, send } = setup({ consecutive5xx: 3 }, 3);
    send(0, '5xx', 3);
    send(1, '5xx', 2);
    od.update([cluster('api', [endpoint('10.0.0.1', 80), endpoint('10.0.0.2', 80), endpoint('10.0.0.9', 80)], { outlier: outlier({ consecutive5xx: 3 }) })]);
    expect(state(0)).toMatchObject({ ejected: true, ejections_total: 1 });
    expect(state(1)).toMatchObject({ consecutive_5xx: 2 });
    expect(od.states().map((s) => s.address)).toEqual([addr(0), addr(1), addr(8)]);
    od.record('api', addr(2), '5xx');
    od.record('nope', addr(0), '5xx');
    expect(events).toEqual([['api', addr(0), true]]);
  });

  it('update(): outlier null un-ejects everything and stops; a removed cluster is dropped', () => {
    const { od, events, send } = setup({ consecutive5xx: 1 }, 3);
    send(0, '5xx');
    od.update([cluster('api', endpoints(3)), cluster('other', endpoints(2), { outlier: outlier() })]);
    expect(events).toEqual([
      ['api', addr(0), true],
      ['api', addr(0), false],
    ]);
    send(1, '5xx');
    expect(events).toHaveLength(2);
    expect(od.states().map((s) => s.cluster)).toEqual(['other', 'other']);
    od.update([]);
    expect(od.states()).toEqual([]);
  });
});
