// Inline SVG charts for report.html (no library, viewable offline): grouped bars with a
// whisker for each bar's range across rounds.

import type { Summary } from './stats.js';

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#b07aa1', '#edc948', '#9c755f'];

export interface BarSeries {
  readonly name: string;
  /** One value per group; null = no data. */
  readonly values: readonly (Summary | null)[];
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** A grouped bar chart: groups along x, one bar per series in each group, median with range. */
export function barChart(opts: {
  readonly title: string;
  readonly unit: string;
  readonly groups: readonly string[];
  readonly series: readonly BarSeries[];
  readonly width?: number;
  readonly height?: number;
}): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 300;
  const left = 60;
  const right = 150;
  const top = 30;
  const bottom = 40;
  const plotW = W - left - right;
  const plotH = H - top - bottom;
  let maxV = 0;
  for (const s of opts.series) for (const v of s.values) if (v !== null) maxV = Math.max(maxV, v.max, v.median);
  const yMax = niceMax(maxV);
  const y = (v: number): number => top + plotH - (v / yMax) * plotH;
  const groupW = plotW / Math.max(1, opts.groups.length);
  const barW = (groupW * 0.8) / Math.max(1, opts.series.length);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(opts.title)}">`);
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${esc(opts.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    const yy = y(v).toFixed(1);
    parts.push(`<line x1="${left}" y1="${yy}" x2="${left + plotW}" y2="${yy}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" font-size="11">${fmt(v)}</text>`);
  }
  parts.push(`<text x="14" y="${top + plotH / 2}" font-size="11" transform="rotate(-90 14 ${top + plotH / 2})" text-anchor="middle">${esc(opts.unit)}</text>`);
  opts.groups.forEach((g, gi) => {
    const gx = left + gi * groupW + groupW * 0.1;
    opts.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === null || v === undefined) return;
      const x = gx + si * barW;
      const color = PALETTE[si % PALETTE.length] ?? '#888';
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y(v.median).toFixed(1)}" width="${(barW * 0.9).toFixed(1)}" height="${(top + plotH - y(v.median)).toFixed(1)}" fill="${color}"><title>${esc(`${s.name} ${g}: ${fmt(v.median)} ${opts.unit} (${fmt(v.min)}–${fmt(v.max)}, n=${v.n})`)}</title></rect>`,
      );
      if (v.n > 1 && v.max > v.min) {
        const cx = (x + barW * 0.45).toFixed(1);
        parts.push(`<line x1="${cx}" y1="${y(v.min).toFixed(1)}" x2="${cx}" y2="${y(v.max).toFixed(1)}" stroke="#222" stroke-width="1.2"/>`);
      }
    });
    parts.push(`<text x="${(left + gi * groupW + groupW / 2).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle" font-size="11">${esc(g)}</text>`);
  });
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#444"/>`);
  opts.series.forEach((s, si) => {
    const ly = top + 10 + si * 18;
    parts.push(`<rect x="${left + plotW + 12}" y="${ly - 9}" width="12" height="12" fill="${PALETTE[si % PALETTE.length] ?? '#888'}"/>`);
    parts.push(`<text x="${left + plotW + 30}" y="${ly}" dominant-baseline="middle" font-size="12">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
