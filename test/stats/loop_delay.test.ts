// Event-loop delay per thread: the sampling side reads a real stall of this thread (also right
// after an interval boundary), the main-thread totals merge intervals exactly (counts add, max is
// the max), and the numbers reach /stats JSON and /metrics text through the aggregator.
import { describe, expect, it } from 'vitest';
import { StatsAggregator } from '../../src/stats/aggregate.js';
import { LOOP_DELAY_IDLE_MS, LOOP_DELAY_RESOLUTION_MS, LoopDelayMonitor, nextPeriod, type LoopDelaySample } from '../../src/stats/loop_delay.js';
import { LoopDelayTotals } from '../../src/stats/loop_delay_totals.js';
import { LatencyRecorder } from '../../src/stats/recorder.js';

function spin(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    /* a stall */
  }
}

/** Polls take() until an interval's max reaches `atLeastMicros`; returns every interval seen. */
async function takeUntil(m: LoopDelayMonitor, atLeastMicros: number): Promise<LoopDelaySample[]> {
  const seen: LoopDelaySample[] = [];
  await expect
    .poll(
      () => {
        const s = m.take();
        if (s !== null) seen.push(s);
        return Math.max(0, ...seen.map((x) => x.maxMicros));
      },
      { timeout: 10_000, interval: 5 },
    )
    .toBeGreaterThanOrEqual(atLeastMicros);
  return seen;
}

/** A sample of the given delays (µs), as a monitor would hand it over. */
function sample(thread: string, delaysMicros: readonly number[]): LoopDelaySample {
  const r = new LatencyRecorder();
  for (const d of delaysMicros) r.record(d);
  const sumMicros = r.sumMicros;
  return { thread, intervalMs: 1000, count: delaysMicros.length, maxMicros: Math.max(...delaysMicros), sumMicros, delays: r.takeSparse() };
}

// A stall of S ms delays the timer due during it by at least S − one period: a lower bound the
// loop cannot beat however slow the machine is (a slow machine only reads more).
const floorMicros = (stallMs: number): number => (stallMs - LOOP_DELAY_RESOLUTION_MS) * 1000;

// The stall tests sample at the fixed shortest period (the period otherwise grows while this
// thread idles between them, and a stall shorter than the period in force can be missed).
const FIXED = { maxMs: LOOP_DELAY_RESOLUTION_MS };

describe('LoopDelayMonitor', () => {
  it('reads a stall of this thread; its percentiles and max are in order', async () => {
    const m = new LoopDelayMonitor('main', FIXED);
    try {
      spin(120);
      const seen = await takeUntil(m, floorMicros(120));
      const s = seen.find((x) => x.maxMicros >= floorMicros(120))!;
      expect(s.thread).toBe('main');
      expect(s.count).toBeGreaterThan(0);
      expect(s.sumMicros).toBeGreaterThanOrEqual(s.maxMicros);
      const slots = [...s.delays].filter((_, i) => i % 2 === 0);
      expect([...slots].sort((a, b) => a - b)).toEqual(slots);
    } finally {
      m.close();
    }
  });

  it('sees a stall right after take() (no blind spot at the interval boundary)', async () => {
    const m = new LoopDelayMonitor('worker-1', FIXED);
    try {
      await takeUntil(m, 0); // some interval exists
      m.take();
      spin(80);
      await takeUntil(m, floorMicros(80));
    } finally {
      m.close();
    }
  });
});

describe('the sampling period follows the load', () => {
  it('nextPeriod: shortest at or above 20 % utilization, longest at rest, in inverse proportion between', () => {
    expect(nextPeriod(5, 10)).toBe(LOOP_DELAY_RESOLUTION_MS);
    expect(nextPeriod(2, 10)).toBe(LOOP_DELAY_RESOLUTION_MS);
    expect(nextPeriod(2, 100)).toBe(100); // 2 %: ten times the shortest
    expect(nextPeriod(0.1, 100)).toBe(LOOP_DELAY_IDLE_MS); // 0.1 %: capped
    expect(nextPeriod(0, 1000)).toBe(LOOP_DELAY_IDLE_MS);
    expect(nextPeriod(0, 0)).toBe(LOOP_DELAY_RESOLUTION_MS);
    expect(nextPeriod(1, 1000, 5, 5)).toBe(5); // a fixed period
  });

  it('an idle thread samples rarely; a busy one every 10 ms', async () => {
    const idle = new LoopDelayMonitor('main');
    await new Promise((r) => setTimeout(r, 1500));
    const rest = idle.take();
    idle.close();
    // A fixed 10 ms period takes ~150 samples in 1.5 s; backing off (10, ~200, 1000 ms), a few.
    expect(rest?.count ?? 0).toBeLessThanOrEqual(15);

    const busy = new LoopDelayMonitor('main');
    const until = performance.now() + 1000;
    await new Promise<void>((resolve) => {
      const work = (): void => {
        spin(2);
        if (performance.now() < until) setImmediate(work);
        else resolve();
      };
      work();
    });
    const worked = busy.take();
    busy.close();
    expect(worked?.count ?? 0).toBeGreaterThanOrEqual(20); // ~80 at a 10 ms period behind 2 ms spins
  });

  it("runs the thread's periodic job from its own timer: every `everyMs`, at a new period when asked, not after close()", async () => {
    const runs: number[] = [];
    const m = new LoopDelayMonitor('main', { job: { everyMs: 100, run: () => runs.push(performance.now()) } });
    try {
      await expect.poll(() => runs.length, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(8);
      // Never sooner than its period (less half the shortest one: 90 allows for the clock reads); at rest the sampler's period is
      // capped at the job's, so the two share each wake-up (one wake-up a second per idle thread,
      // measured with /proc schedstat, README "Idle CPU"; not asserted here, where other test
      // files load the machine and the period follows this thread's load).
      for (let i = 1; i < runs.length; i++) expect(runs[i]! - runs[i - 1]!).toBeGreaterThanOrEqual(100 - LOOP_DELAY_RESOLUTION_MS);
      // A longer period: the job slows down with it.
      m.setJobEvery(1000);
      const before = runs.length;
      await new Promise((r) => setTimeout(r, 600));
      expect(runs.length - before).toBeLessThanOrEqual(1);
      // A shorter one: the job speeds up again (setJobEvery moves a timer armed for up to 1 s earlier).
      m.setJobEvery(50);
      const at = runs.length;
      await expect.poll(() => runs.length, { timeout: 2000, interval: 10 }).toBeGreaterThanOrEqual(at + 3);
    } finally {
      m.close();
    }
    const after = runs.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(runs.length).toBe(after); // close() stops the job with the sampler
  });
});

describe('LoopDelayTotals', () => {
  it('merges intervals per thread: samples and sums add, max is the largest, percentiles exact', () => {
    const t = new LoopDelayTotals();
    t.add(sample('worker-1', [...Array<number>(98).fill(100), 300, 5000]));
    t.add(sample('worker-1', [...Array<number>(99).fill(120), 40_000]));
    t.add(sample('main', [50, 900]));
    const [main, w1] = t.json();
    expect(main!.thread).toBe('main');
    expect(w1!.thread).toBe('worker-1');
    expect(w1!.since_start.samples).toBe(200);
    expect(w1!.since_start.max_ms).toBe(40);
    // Sorted: 98 × 100 µs, 99 × 120 µs, 300, 5000, 40 000.
    expect(w1!.since_start.p50_ms).toBe(0.12);
    expect(w1!.since_start.p99_ms).toBe(0.3);
    expect(w1!.since_start.p99_9_ms).toBeCloseTo(40, 1); // the bucket's highest equivalent value
    expect(w1!.last_interval.samples).toBe(100);
    expect(w1!.last_interval.p50_ms).toBe(0.12);
    // The second interval alone (its histogram is refilled in place): 99 × 120 µs then 40 ms.
    expect(w1!.last_interval.p99_ms).toBe(0.12);
    expect(w1!.last_interval.max_ms).toBe(40);
    expect(main!.since_start.max_ms).toBe(0.9);
  });

  it('writes a Prometheus summary per thread and the last interval as gauges', () => {
    const t = new LoopDelayTotals();
    t.add(sample('worker-2', [...Array<number>(9).fill(100), 2000]));
    const text = t.prometheus();
    expect(text).toContain('# TYPE outrigger_event_loop_delay_seconds summary');
    expect(text).toMatch(/^outrigger_event_loop_delay_seconds\{thread="worker-2",quantile="1"\} 0\.002$/m);
    expect(text).toMatch(/^outrigger_event_loop_delay_seconds_count\{thread="worker-2"\} 10$/m);
    expect(text).toMatch(/^outrigger_event_loop_delay_seconds_sum\{thread="worker-2"\} 0\.0029$/m);
    expect(text).toMatch(/^outrigger_event_loop_delay_last_interval_seconds\{thread="worker-2",stat="p99"\} 0\.002$/m);
    expect(new LoopDelayTotals().prometheus()).toBe('');
  });
});

describe('StatsAggregator and the event-loop delay', () => {
  it('a worker delta carries its loop delay through structured clone into /stats and /metrics', async () => {
    const agg = new StatsAggregator();
    expect(agg.toJSON().event_loop_delay).toEqual([]);
    agg.apply(structuredClone({ workerId: 1, cells: [], clusters: [], loopDelay: sample('worker-1', [150, 7000]) }));
    const rows = agg.toJSON().event_loop_delay;
    expect(rows.map((r) => r.thread)).toEqual(['worker-1']);
    expect(rows[0]!.since_start.max_ms).toBe(7);
    const text = await agg.prometheus();
    expect(text).toContain('outrigger_requests_total'); // prom-client's part, loaded on this first scrape
    expect(text).toContain('outrigger_event_loop_delay_seconds{thread="worker-1",quantile="0.5"}');
    expect(agg.prometheusContentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  });
});
