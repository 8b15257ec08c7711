// Memory and event-loop delay in the bench reports: the RSS gate of bench/baseline.json on a real
// CI run (pass, fail, cannot check, rebaseline), what each extra worker adds, the event-loop delay
// reading of GET /stats, and the report tables.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkBaseline, rebaseline, type Baseline } from '../../bench/lib/baseline.js';
import { keptIdleText, loopDelayTable, memoryLines, memoryTable, parseLoopDelay, perExtraWorkerKb } from '../../bench/lib/memory.js';
import { renderMarkdown } from '../../bench/lib/report.js';
import type { BenchResults } from '../../bench/lib/results.js';
import { startKeptIdleWatch } from '../../bench/lib/rss.js';
import { readIdleRss } from '../../bench/lib/session.js';

function fixture(name: string): BenchResults {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as BenchResults;
}

describe('RSS gate (baseline.json `rss`)', () => {
  const r = fixture('results-ci.json'); // outrigger-1w: idle 81 980 KiB, loaded median 107 060 KiB
  const idleMib = 81_980 / 1024;
  const loadedMib = 107_060 / 1024;
  const base: Baseline = {
    config: 'outrigger-1w',
    cpu_ratio_to_nginx: { threshold: 100, margin_percent: 0, margin_abs: 0 },
    added_p99_us: { rate: 1000, threshold: 1_000_000, margin_percent: 0, margin_abs: 0 },
  };
  const gate = (idle: number, loaded: number): Baseline => ({
    ...base,
    rss: { idle_mib: { threshold: idle, margin_percent: 10, margin_abs: 0 }, loaded_mib: { threshold: loaded, margin_percent: 10, margin_abs: 0 } },
  });

  it('passes within threshold plus margin and shows both rows', () => {
    const v = checkBaseline(r, gate(idleMib, loadedMib));
    expect(v.exitCode).toBe(0);
    expect(v.text).toContain('outrigger-1w: RSS idle (MiB)');
    expect(v.text).toContain('outrigger-1w: RSS loaded, peak under wrk -c50 (MiB)');
    expect(v.measured?.rss).toEqual({ idleMib, loadedMib });
  });

  it('fails when idle or loaded RSS exceeds threshold × (1 + margin)', () => {
    expect(checkBaseline(r, gate(idleMib / 1.11, loadedMib)).exitCode).toBe(1);
    const v = checkBaseline(r, gate(idleMib, loadedMib / 1.11));
    expect(v.exitCode).toBe(1);
    expect(v.text).toMatch(/RSS loaded.*\| FAIL \|/);
  });

  it('a baseline without `rss` gates no memory; a run without an RSS reading cannot be checked', () => {
    expect(checkBaseline(r, base).text).not.toContain('RSS');
    const noRss: BenchResults = { ...r, summary: r.summary.map((s) => (s.config === 'outrigger-1w' ? { ...s, idleRssKb: null } : s)) };
    const v = checkBaseline(noRss, gate(idleMib, loadedMib));
    expect(v.exitCode).toBe(2);
    expect(v.text).toContain('no RSS reading for outrigger-1w');
  });

  it('--write-baseline takes the run’s RSS as the new thresholds (margins kept)', () => {
    const v = checkBaseline(r, gate(50, 50));
    const next = rebaseline(gate(50, 50), v.measured!, 'now');
    expect(next.rss?.idle_mib).toEqual({ threshold: Number(idleMib.toFixed(1)), margin_percent: 10, margin_abs: 0 });
    expect(next.rss?.loaded_mib.threshold).toBe(Number(loadedMib.toFixed(1)));
  });
});

describe('kept-idle RSS gate (baseline.json `rss.kept_idle_mib`)', () => {
  const kept = { config: 'outrigger-1w', fromS: 15, toS: 840, samples: 166, medianKb: 61_440, minKb: 60_416, maxKb: 67_584 };
  const r: BenchResults = { ...fixture('results-ci.json'), keptIdle: kept };
  const rss = { idle_mib: { threshold: 100, margin_percent: 0, margin_abs: 0 }, loaded_mib: { threshold: 200, margin_percent: 0, margin_abs: 0 } };
  const base: Baseline = {
    config: 'outrigger-1w',
    cpu_ratio_to_nginx: { threshold: 100, margin_percent: 0, margin_abs: 0 },
    added_p99_us: { rate: 1000, threshold: 1_000_000, margin_percent: 0, margin_abs: 0 },
  };
  const gate = (threshold: number): Baseline => ({ ...base, rss: { ...rss, kept_idle_mib: { threshold, margin_percent: 5, margin_abs: 0 } } });

  it('gates the median over the run (60.0 MiB): ok at 58 + 5 %, FAIL at 57 + 5 %; --write-baseline takes it', () => {
    const ok = checkBaseline(r, gate(58));
    expect(ok.exitCode).toBe(0);
    expect(ok.text).toMatch(/outrigger-1w: RSS kept idle 15–840 s, median \(MiB\) \| 60\.00 \| 59\.0–66\.0 \|.*\| ok \|/);
    expect(ok.measured?.rss?.keptIdleMib).toBe(60);
    const v = checkBaseline(r, gate(57));
    expect(v.exitCode).toBe(1);
    expect(v.text).toMatch(/RSS kept idle.*\| FAIL \|/);
    expect(rebaseline(gate(57), ok.measured!, 'now').rss?.kept_idle_mib).toEqual({ threshold: 60, margin_percent: 5, margin_abs: 0 });
  });

  it('without the gate no row; a gated run without the reading (or of another config) cannot be checked', () => {
    expect(checkBaseline(r, { ...base, rss }).text).not.toContain('kept idle');
    for (const other of [fixture('results-ci.json'), { ...r, keptIdle: { ...kept, config: 'outrigger-2w' } }]) {
      const v = checkBaseline(other, gate(58));
      expect(v.exitCode).toBe(2);
      expect(v.text).toContain('no kept-idle RSS reading for outrigger-1w');
    }
  });

  it('is one line of bench:ci and of the report', () => {
    expect(keptIdleText(kept)).toBe(
      'outrigger-1w kept idle (a second copy, no traffic), 15–840 s after its start: RSS median 60.0 MiB, 59.0–66.0 over 166 readings',
    );
    expect(memoryLines(r)).toContain(`- ${keptIdleText(kept)}`);
    expect(memoryTable(r).note).toContain(keptIdleText(kept));
  });

  it('startKeptIdleWatch samples a real process from `fromMs` after its start, every `everyMs`', async () => {
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const startedAt = Date.now();
      const w = startKeptIdleWatch('sleep', [sleeper.pid!], startedAt, { fromMs: 300, everyMs: 100 });
      const early = startKeptIdleWatch('never', [sleeper.pid!], startedAt, { fromMs: 60_000, everyMs: 100 });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const k = w.stop()!;
      expect(k.config).toBe('sleep');
      expect(k.fromS).toBe(0);
      expect(k.samples).toBeGreaterThanOrEqual(2);
      expect(k.minKb).toBeGreaterThan(100);
      expect(k.minKb).toBeLessThanOrEqual(k.medianKb);
      expect(k.medianKb).toBeLessThanOrEqual(k.maxKb);
      expect(early.stop()).toBeNull(); // stopped before its first sample
    } finally {
      sleeper.kill('SIGKILL');
    }
  });
});

describe('idle CPU gate (baseline.json `idle_cpu_ms_per_s`)', () => {
  const r: BenchResults = { ...fixture('results-ci.json'), idleCpuMsPerS: { 'outrigger-1w': 2.5, nginx: 0 } };
  const base: Baseline = {
    config: 'outrigger-1w',
    cpu_ratio_to_nginx: { threshold: 100, margin_percent: 0, margin_abs: 0 },
    added_p99_us: { rate: 1000, threshold: 1_000_000, margin_percent: 0, margin_abs: 0 },
  };
  const gate = (threshold: number): Baseline => ({ ...base, idle_cpu_ms_per_s: { threshold, margin_percent: 100, margin_abs: 2 } });

  it('passes within threshold × 2 + 2 ms/s, fails beyond; --write-baseline takes the run’s value', () => {
    const ok = checkBaseline(r, gate(1));
    expect(ok.exitCode).toBe(0);
    expect(ok.text).toMatch(/outrigger-1w: idle CPU \(ms\/s\) \| 2\.50 \|.*\| ok \|/);
    expect(ok.measured?.idleCpuMsPerS).toBe(2.5);
    const v = checkBaseline({ ...r, idleCpuMsPerS: { 'outrigger-1w': 16 } }, gate(3)); // a 10 ms timer per thread, as before 2026-12-06
    expect(v.exitCode).toBe(1);
    expect(v.text).toMatch(/idle CPU.*\| FAIL \|/);
    expect(rebaseline(gate(3), ok.measured!, 'now').idle_cpu_ms_per_s?.threshold).toBe(2.5);
  });

  it('a baseline without it gates no idle CPU; a gated run without the reading cannot be checked', () => {
    expect(checkBaseline(r, base).text).not.toContain('idle CPU');
    const v = checkBaseline({ ...r, idleCpuMsPerS: {} }, gate(3));
    expect(v.exitCode).toBe(2);
    expect(v.text).toContain('no idle CPU reading for outrigger-1w');
  });
});

describe('memory and event-loop delay tables', () => {
  it('per extra worker: (idle of Nw − idle of 1w) ÷ (N − 1), only with a 1-worker partner', () => {
    expect(perExtraWorkerKb({ idleRssKb: { 'outrigger-1w': 80_000, 'outrigger-3w': 110_000, nginx: 9000 } })).toEqual([
      { config: 'outrigger-3w', workers: 3, kb: 15_000 },
    ]);
    expect(perExtraWorkerKb({ idleRssKb: { 'outrigger-2w': 100_000 } })).toEqual([]);
  });

  it('reads GET /stats event_loop_delay since start; an older build has none', () => {
    const body = {
      event_loop_delay: [
        { thread: 'main', since_start: { samples: 10, p50_ms: 0.1, p99_ms: 2, p99_9_ms: 3, max_ms: 4 }, last_interval: {} },
        { thread: 'worker-1', since_start: { samples: 0, p50_ms: null, p99_ms: null, p99_9_ms: null, max_ms: null } },
      ],
    };
    expect(parseLoopDelay(body)).toEqual([
      { thread: 'main', samples: 10, p50_ms: 0.1, p99_ms: 2, p99_9_ms: 3, max_ms: 4 },
      { thread: 'worker-1', samples: 0, p50_ms: null, p99_ms: null, p99_9_ms: null, max_ms: null },
    ]);
    expect(parseLoopDelay({ listeners: [] })).toBeNull();
  });

  it('renders in the markdown report and in bench:ci lines', () => {
    const r: BenchResults = {
      ...fixture('results-ci.json'),
      loopDelay: [
        { config: 'outrigger-1w', part: 'outrigger-1w', threads: [{ thread: 'worker-1', samples: 500, p50_ms: 0.2, p99_ms: 3.5, p99_9_ms: 8, max_ms: 12.25 }] },
        { config: 'outrigger-2w', part: 'outrigger-2w', threads: null, note: 'GET /stats has no `event_loop_delay` (an older build)' },
      ],
    };
    const md = renderMarkdown(r);
    expect(md).toContain('Memory');
    expect(md).toContain('Event-loop delay');
    // The fixture predates the start-up reading: its column shows none.
    expect(
      memoryTable(r)
        .rows.find((row) => row[0] === 'outrigger-1w')
        ?.slice(1, 3),
    ).toEqual(['–', (81_980 / 1024).toFixed(1)]);
    const withStartup: BenchResults = { ...r, startupRssKb: { 'outrigger-1w': 92_160 } };
    expect(memoryTable(withStartup).head.slice(1, 3)).toEqual(['RSS at 1 s MiB', 'RSS idle MiB']);
    expect(
      memoryTable(withStartup)
        .rows.find((row) => row[0] === 'outrigger-1w')
        ?.slice(1, 3),
    ).toEqual(['90.0', (81_980 / 1024).toFixed(1)]);
    expect(memoryLines(withStartup).join('\n')).toContain(`outrigger-1w: RSS idle ${(81_980 / 1024).toFixed(1)} MiB (90.0 at start-up)`);
    expect(loopDelayTable(r.loopDelay!).rows[0]).toEqual(['outrigger-1w', 'worker-1', '500', '0.20', '3.50', '8.00', '12.25']);
    expect(memoryLines(r).join('\n')).toContain('outrigger-1w event-loop delay since start: worker-1 p99 3.5 ms, max 12.25 ms');
  });

  it('reads each config at the same age from its own start, not from the last config’s', async () => {
    const into = { startup: {} as Record<string, number>, idle: {} as Record<string, number>, cpu: {} as Record<string, number> };
    const at = { startupMs: 100, idleMs: 400, cpuUntilMs: 500 };
    const now = Date.now();
    // `early` started 1 s ago: both its ages have passed, so it is read at once; `late` only now.
    const done: Record<string, number> = {};
    const read = (name: string, startedAt: number): Promise<void> =>
      readIdleRss(name, [process.pid], startedAt, into, at).then(() => void (done[name] = Date.now()));
    await Promise.all([read('early', now - 1000), read('late', now)]);
    expect(Object.keys(into.idle).sort()).toEqual(['early', 'late']);
    for (const r of [into.startup, into.idle]) for (const kb of Object.values(r)) expect(kb).toBeGreaterThan(1000);
    expect(done['late']! - now).toBeGreaterThanOrEqual(at.cpuUntilMs - 1);
    expect(Object.keys(into.cpu).sort()).toEqual(['early', 'late']);
    expect(done['early']!).toBeLessThan(done['late']!);
    const skipped = { startup: {}, idle: {} };
    await readIdleRss('direct', [], now, skipped, at); // no process of its own (the `direct` config)
    expect(skipped).toEqual({ startup: {}, idle: {} });
  });

  it('idle CPU: ms of CPU per second of the tree between the idle reading and cpuUntilMs', async () => {
    const spinner = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const into = { startup: {} as Record<string, number>, idle: {} as Record<string, number>, cpu: {} as Record<string, number> };
      const at = { startupMs: 0, idleMs: 200, cpuUntilMs: 1200 };
      const now = Date.now();
      await Promise.all([readIdleRss('spin', [spinner.pid!], now, into, at), readIdleRss('sleep', [sleeper.pid!], now, into, at)]);
      expect(into.cpu['sleep']).toBeLessThan(20); // sleep(1) uses no CPU once started
      expect(into.cpu['spin']).toBeGreaterThan(into.cpu['sleep']! + 100); // a busy loop: up to 1000 ms/s
    } finally {
      spinner.kill('SIGKILL');
      sleeper.kill('SIGKILL');
    }
  });
});
