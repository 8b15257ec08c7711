// Report rendering from real results.json files (captured from real bench runs on this
// machine): the markdown has a row for every config and lists skipped ones with the reason;
// the HTML is well-formed and carries inline SVG charts.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkBaseline, rebaseline, type Baseline } from '../../bench/lib/baseline.js';
import { fmtSummary, renderHtml, renderMarkdown } from '../../bench/lib/report.js';
import type { BenchResults } from '../../bench/lib/results.js';
import { summarizeRuns } from '../../bench/lib/summary.js';

function fixture(name: string): BenchResults {
  return JSON.parse(readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')) as BenchResults;
}

const VOID = new Set(['meta', 'br', 'hr', 'img', 'input', 'link']);

/** Checks that every element is closed in order; returns the problem or null. */
function tagProblems(html: string): string | null {
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w-]*)((?:[^>"']|"[^"]*"|'[^']*')*?)(\/?)>/g;
  for (let m = re.exec(html); m !== null; m = re.exec(html)) {
    const [, closing, rawName, , selfClosing] = m;
    const name = (rawName ?? '').toLowerCase();
    if (selfClosing === '/' || VOID.has(name)) continue;
    if (closing === '/') {
      const top = stack.pop();
      if (top !== name) return `</${name}> closes <${top ?? 'nothing'}> at ${m.index}`;
    } else {
      stack.push(name);
    }
  }
  return stack.length === 0 ? null : `unclosed: ${stack.join(' > ')}`;
}

for (const file of ['results-quick.json', 'results-ci.json', 'results-quick-mtls.json']) {
  describe(`report rendering of ${file}`, () => {
    const r = fixture(file);

    it('has a markdown table row for every config and every skipped config with its reason', () => {
      const md = renderMarkdown(r);
      expect(r.configs.length).toBeGreaterThan(0);
      for (const c of r.configs) expect(md).toMatch(new RegExp(`^\\| ${c.name} \\|`, 'm'));
      for (const s of r.skipped) expect(md).toContain(`\`${s.name}\`: ${s.reason.slice(0, 40)}`);
      expect(md).toContain('## Headline');
      for (const rate of r.summary[0]?.rates.map((q) => q.rate) ?? []) expect(md).toContain(`## Fixed rate ${rate} req/s`);
    });

    it('renders well-formed HTML with inline SVG charts', () => {
      const html = renderHtml(r);
      expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
      expect(tagProblems(html)).toBeNull();
      expect((html.match(/<svg /g) ?? []).length).toBe(1 + (r.summary[0]?.rates.length ?? 0));
      for (const c of r.configs) expect(html).toContain(`<td>${c.name}</td>`);
      expect(html).not.toMatch(/src="http|href="http/);
    });

    it('re-summarises its raw runs to the stored summary', () => {
      const again = summarizeRuns(
        r.configs.map((c) => c.name),
        r.runs,
        r.idleRssKb,
        { rates: r.summary[0]?.rates.map((q) => q.rate) ?? [], variants: r.summary[0]?.variants.map((v) => v.variant) ?? [] },
      );
      expect(JSON.parse(JSON.stringify(again))).toEqual(r.summary);
    });
  });
}

describe('tag checker', () => {
  it('catches a misnested document', () => {
    expect(tagProblems('<html><body><p></body></html>')).not.toBeNull();
    expect(tagProblems('<svg><rect x="1"/><text>a</text></svg>')).toBeNull();
  });
});

describe('formatting', () => {
  it('shows median with range, or a dash', () => {
    expect(fmtSummary({ median: 1234.5, min: 1000, max: 1500, n: 3 })).toBe('1,235 (1,000–1,500)');
    expect(fmtSummary({ median: 12.34, min: 12.34, max: 12.34, n: 1 }, 1)).toBe('12.3');
    expect(fmtSummary(null)).toBe('–');
  });
});

describe('CI gate (bench/baseline.json semantics) on a real run', () => {
  const r = fixture('results-ci.json');
  const base: Baseline = {
    config: 'outrigger-1w',
    cpu_ratio_to_nginx: { threshold: 1.5, margin_percent: 15, margin_abs: 0 },
    added_p99_us: { rate: 1000, threshold: 10_000, margin_percent: 25, margin_abs: 150 },
  };
  const measured = r.summary.find((s) => s.config === 'outrigger-1w')?.cpuRatioToNginx?.median ?? NaN;

  it('passes when both values are within threshold plus margin', () => {
    const v = checkBaseline(r, { ...base, cpu_ratio_to_nginx: { threshold: measured, margin_percent: 0, margin_abs: 0 } });
    expect(v.exitCode).toBe(0);
    expect(v.measured?.cpuRatio).toBe(measured);
  });

  it('fails when the CPU ratio exceeds threshold × (1 + margin)', () => {
    const v = checkBaseline(r, { ...base, cpu_ratio_to_nginx: { threshold: measured / 1.2, margin_percent: 15, margin_abs: 0 } });
    expect(v.exitCode).toBe(1);
    expect(v.text).toContain('FAIL');
  });

  it('gates more_configs on their CPU ratio to nginx, and cannot check (exit 2) when one was not measured', () => {
    // The fixture predates outrigger-node-1w: stand in a copy of outrigger-1w's summary under its name.
    const one = r.summary.find((s) => s.config === 'outrigger-1w');
    if (one === undefined) throw new Error('fixture without outrigger-1w');
    const withNode: BenchResults = { ...r, summary: [...r.summary, { ...one, config: 'outrigger-node-1w' }] };
    const gate = (threshold: number): Baseline => ({
      ...base,
      cpu_ratio_to_nginx: { threshold: measured, margin_percent: 0, margin_abs: 0 },
      more_configs: [{ config: 'outrigger-node-1w', cpu_ratio_to_nginx: { threshold, margin_percent: 15, margin_abs: 0 } }],
    });
    const pass = checkBaseline(withNode, gate(measured));
    expect(pass.exitCode).toBe(0);
    expect(pass.text).toMatch(/^\| outrigger-node-1w: CPU µs\/req ÷ nginx \| .* \| ok \|$/m);
    expect(pass.measured?.moreCpuRatios).toEqual({ 'outrigger-node-1w': measured });
    const fail = checkBaseline(withNode, gate(measured / 1.2));
    expect(fail.exitCode).toBe(1);
    expect(fail.text).toMatch(/^\| outrigger-node-1w: .* \| FAIL \|$/m);
    const missing = checkBaseline(r, gate(measured));
    expect(missing.exitCode).toBe(2);
    expect(missing.text).toContain('no paired measurements for outrigger-node-1w');
    const skipped = checkBaseline({ ...r, skipped: [{ name: 'outrigger-node-1w', reason: 'did not start' }] }, gate(measured));
    expect(skipped.exitCode).toBe(2);
    expect(skipped.text).toContain('outrigger-node-1w skipped (did not start)');
  });

  it('--write-baseline takes every gated median as its new threshold, keeping margins and notes', () => {
    const b: Baseline = {
      ...base,
      more_configs: [{ config: 'outrigger-node-1w', cpu_ratio_to_nginx: { threshold: 9, margin_percent: 15, margin_abs: 0 }, note: 'n' }],
    };
    const next = rebaseline(b, { cpuRatio: 1.23456, addedP99Us: 101.6, moreCpuRatios: { 'outrigger-node-1w': 2.0004 } }, 'at');
    expect(next.cpu_ratio_to_nginx).toEqual({ threshold: 1.235, margin_percent: 15, margin_abs: 0 });
    expect(next.added_p99_us).toEqual({ ...base.added_p99_us, threshold: 102 });
    expect(next.more_configs).toEqual([{ config: 'outrigger-node-1w', cpu_ratio_to_nginx: { threshold: 2, margin_percent: 15, margin_abs: 0 }, note: 'n' }]);
    expect(next).toMatchObject({ measured_at: 'at', provisional: false });
  });

  it('cannot check (exit 2) when a needed config was skipped', () => {
    const skipped: BenchResults = { ...r, skipped: [{ name: 'nginx', reason: 'nginx not installed' }] };
    const v = checkBaseline(skipped, base);
    expect(v.exitCode).toBe(2);
    expect(v.text).toContain('nginx not installed');
  });
});
