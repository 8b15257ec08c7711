// The dashboard's charts (browser JavaScript served in /dashboard/app.js): the page's copy of
// the 15-minute series (the whole ring once, then only the newer samples at each refresh), and
// hand-drawn SVG line charts of it, x = time (the last 15 minutes up to the newest sample), y from
// 0 to a round maximum. A null value (no request in that second) breaks the line.

export const CHARTS_JS = String.raw`
var WINDOW_MS = 15 * 60 * 1000;
var SERIES_FIELDS = ['rate', 'success_rate', 'p50_ms', 'p90_ms', 'p99_ms', 'p99_9_ms'];
var KINDS = ['listeners', 'routes', 'clusters'];
/** times, and per kind + listener + name the columns, all as long as times. */
var held = { times: [], capacity: 900, names: {} };

function nulls(n) {
  return new Array(n).fill(null);
}

/** Appends the newer samples; a name the answer lacks gets nulls, a new one nulls before; the oldest beyond capacity go. */
function mergeSeries(fresh) {
  var before = held.times.length;
  var added = fresh.times.length;
  var seen = {};
  KINDS.forEach(function (kind) {
    fresh[kind].forEach(function (s) {
      var key = kind + '\u0000' + (s.listener || '') + '\u0000' + s.name;
      var mine = held.names[key];
      if (!mine) {
        mine = held.names[key] = { kind: kind, listener: s.listener, name: s.name };
        SERIES_FIELDS.forEach(function (f) { mine[f] = nulls(before); });
      }
      SERIES_FIELDS.forEach(function (f) { mine[f] = mine[f].concat(s[f]); });
      seen[key] = true;
    });
  });
  Object.keys(held.names).forEach(function (key) {
    if (seen[key]) return;
    var mine = held.names[key];
    SERIES_FIELDS.forEach(function (f) { mine[f] = mine[f].concat(nulls(added)); });
  });
  held.capacity = fresh.capacity;
  held.times = held.times.concat(fresh.times);
  var extra = held.times.length - held.capacity;
  if (extra > 0) {
    held.times = held.times.slice(extra);
    Object.keys(held.names).forEach(function (key) {
      var mine = held.names[key];
      SERIES_FIELDS.forEach(function (f) { mine[f] = mine[f].slice(extra); });
      if (mine.rate.every(function (v) { return v === null || v === 0; })) delete held.names[key];
    });
  }
}

var seriesLoading = null;
var seriesLimitReached = false;

/**
 * The series as GET /dashboard/series answers them, the page's whole copy: fetches the samples it
 * lacks first. Views built at once share one fetch (two would append the same samples twice).
 */
function loadSeries() {
  if (seriesLoading) return seriesLoading;
  var last = held.times.length > 0 ? held.times[held.times.length - 1] : 0;
  seriesLoading = api('GET', '/dashboard/series' + (last > 0 ? '?after=' + last : ''))
    .then(function (fresh) {
      mergeSeries(fresh);
      seriesLimitReached = fresh.names_limit_reached;
      var out = { times: held.times, listeners: [], routes: [], clusters: [] };
      Object.keys(held.names).forEach(function (key) { out[held.names[key].kind].push(held.names[key]); });
      return out;
    })
    .finally(function () { seriesLoading = null; });
  return seriesLoading;
}
var CHART = { w: 320, h: 110, left: 36, right: 4, top: 6, bottom: 14 };

/** 1, 2 or 5 times a power of ten, at least the largest value (1 when there is none). */
function roundMax(lines) {
  var max = 0;
  lines.forEach(function (line) {
    line.values.forEach(function (v) {
      if (v !== null && v > max) max = v;
    });
  });
  if (max <= 0) return 1;
  var step = Math.pow(10, Math.floor(Math.log10(max)));
  return [1, 2, 5, 10].map(function (m) { return m * step; }).find(function (m) { return m >= max; });
}

function formatNumber(v) {
  if (v >= 1000) return (v / 1000).toFixed(v >= 10000 ? 0 : 1) + 'k';
  return v >= 10 || v === Math.round(v) ? String(Math.round(v)) : v.toFixed(1);
}

/**
 * A figure with a line chart of 'lines' ([{label, values}], values aligned with 'times', unix ms).
 * data-samples (samples in the window) and data-points (values drawn) say what it shows.
 */
function lineChart(caption, times, lines, fixedMax) {
  var end = times.length > 0 ? times[times.length - 1] : Date.now();
  var start = end - WINDOW_MS;
  var max = fixedMax || roundMax(lines);
  var plotW = CHART.w - CHART.left - CHART.right;
  var plotH = CHART.h - CHART.top - CHART.bottom;
  function x(t) { return CHART.left + ((t - start) / WINDOW_MS) * plotW; }
  function y(v) { return CHART.top + plotH - (Math.min(v, max) / max) * plotH; }
  var points = 0;
  var paths = lines.map(function (line, i) {
    var d = '';
    var pen = false;
    line.values.forEach(function (v, k) {
      if (v === null || times[k] < start) {
        pen = false;
        return;
      }
      d += (pen ? 'L' : 'M') + x(times[k]).toFixed(1) + ' ' + y(v).toFixed(1);
      pen = true;
      points++;
    });
    return svgEl('path', { d: d, class: 's' + i }, svgEl('title', {}, line.label));
  });
  var bottom = CHART.top + plotH;
  var chart = svgEl(
    'svg',
    { class: 'chart', viewBox: '0 0 ' + CHART.w + ' ' + CHART.h, 'data-samples': times.length, 'data-points': points, role: 'img', 'aria-label': caption },
    svgEl('line', { class: 'axis', x1: CHART.left, y1: CHART.top, x2: CHART.w - CHART.right, y2: CHART.top }),
    svgEl('line', { class: 'axis', x1: CHART.left, y1: bottom, x2: CHART.w - CHART.right, y2: bottom }),
    svgEl('text', { x: CHART.left - 3, y: CHART.top + 8, 'text-anchor': 'end' }, formatNumber(max)),
    svgEl('text', { x: CHART.left - 3, y: bottom, 'text-anchor': 'end' }, '0'),
    svgEl('text', { x: CHART.left, y: CHART.h - 2 }, '-15 min'),
    svgEl('text', { x: CHART.w - CHART.right, y: CHART.h - 2, 'text-anchor': 'end' }, 'now'),
    paths,
  );
  var legend = lines.length < 2 ? null : el('div', { class: 'legend' }, lines.map(function (line, i) { return el('span', { class: 's' + i }, line.label); }));
  return el('figure', {}, el('figcaption', {}, caption), chart, legend);
}

/** Rate, success rate and latency percentiles of one series (GET /dashboard/series), or a note when it saw no request. */
function trafficCharts(times, s) {
  if (!s) return el('p', { class: 'muted' }, 'No samples: no request in the last 15 minutes' + (seriesLimitReached ? ', or beyond the names the sidecar samples.' : '.'));
  var percent = s.success_rate.map(function (v) { return v === null ? null : v * 100; });
  return el(
    'div',
    { class: 'charts' },
    lineChart('requests / s', times, [{ label: 'rate', values: s.rate }]),
    lineChart('success rate %', times, [{ label: 'success', values: percent }], 100),
    lineChart('latency ms', times, [
      { label: 'p50', values: s.p50_ms },
      { label: 'p90', values: s.p90_ms },
      { label: 'p99', values: s.p99_ms },
      { label: 'p99.9', values: s.p99_9_ms },
    ]),
  );
}
`;
