// wrk output parsing (a real captured run of the paced script) and the generated Lua script.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseWrkOutput, totalWrkErrors, wrkLuaScript, WRK_JSON_MARK } from '../../bench/lib/wrk.js';

// Captured from: wrk -t1 -c8 -d1s --timeout 2s -s <wrkLuaScript({threads:1, rate:500})> against bench/upstream.
const CAPTURED = readFileSync(new URL('./fixtures/wrk-paced-500.txt', import.meta.url), 'utf8');

describe('wrk done() JSON', () => {
  it('parses a real paced run', () => {
    const r = parseWrkOutput(CAPTURED);
    expect(r.requests).toBe(500);
    expect(r.durationUs).toBe(1001338);
    expect(r.requestsPerSec).toBeCloseTo(499.33, 1);
    expect(r.latency).toEqual({ minUs: 21, maxUs: 3857, meanUs: 152.598, stdevUs: 404.977, p50Us: 65, p90Us: 214, p99Us: 3203, p999Us: 3857 });
    expect(r.targetRate).toBe(500);
    expect(r.late).toBe(0);
    expect(totalWrkErrors(r)).toBe(0);
  });

  it('reports an unpaced run with a null rate, and counts every error kind', () => {
    const line = `${WRK_JSON_MARK}{"requests":10,"duration_us":1000000,"bytes":1,"errors":{"connect":1,"read":2,"write":3,"status":4,"timeout":5},"latency_us":{"min":1,"max":2,"mean":1.5,"stdev":0.5,"p50":1,"p90":2,"p99":2,"p999":2},"target_rate":null,"late":0}`;
    const r = parseWrkOutput(`Running 1s test\n${line}\n`);
    expect(r.targetRate).toBeNull();
    expect(totalWrkErrors(r)).toBe(15);
  });

  it('fails clearly when the JSON line is missing', () => {
    expect(() => parseWrkOutput('Running 1s test @ http://x\nRequests/sec: 1\n')).toThrow(/no WRK_JSON line/);
  });
});

describe('wrk Lua script', () => {
  it('paces only when a rate is given, with the interval per thread', () => {
    expect(wrkLuaScript({ threads: 1 })).not.toContain('function delay()');
    const paced = wrkLuaScript({ threads: 2, rate: 1000 });
    expect(paced).toContain('function delay()');
    expect(paced).toContain('local interval_us = 2000\n');
    expect(paced).toContain('function done(summary, latency, requests)');
  });

  it('escapes method, body and headers into Lua strings', () => {
    const s = wrkLuaScript({ threads: 1, method: 'POST', body: 'a"b\\c\nd', headers: { 'x-y': 'z' } });
    expect(s).toContain('wrk.method = "POST"');
    expect(s).toContain('wrk.body = "a\\"b\\\\c\\nd"');
    expect(s).toContain('wrk.headers["x-y"] = "z"');
  });
});
