// `outrigger bench`: argument handling and a real short run against a local server.
import http from 'node:http';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { benchOptions, runBench } from '../../src/cli/bench.js';

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let buf = '';
  stream.on('data', (d: Buffer) => (buf += d.toString()));
  return { stream, text: () => buf };
}

let server: http.Server;
let url = '';
let served = 0;
const methods = new Set<string>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    served++;
    methods.add(req.method ?? '');
    req.resume();
    res.end(req.url === '/fail' ? ((res.statusCode = 503), 'no') : 'ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  url = `http://127.0.0.1:${addr.port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('outrigger bench', () => {
  it('parses options with defaults', () => {
    const p = benchOptions(['http://x/', '-c', '5', '-d', '2', '-r', '100', '-m', 'post', '-b', 'hi', '-H', 'x-a: 1'])!;
    expect(p.opts).toMatchObject({ url: 'http://x/', connections: 5, duration: 2, overallRate: 100, method: 'POST', body: 'hi', headers: { 'x-a': '1' } });
    expect(benchOptions(['http://x/'])!.opts).toMatchObject({ connections: 50, duration: 10, method: 'GET' });
  });

  it.each([
    [['-c', '5'], 'missing URL'],
    [['ftp://x/'], 'only http'],
    [['not a url'], 'not a URL'],
    [['http://x/', '-c', '0'], '--connections must be a positive integer'],
    [['http://x/', '-H', 'nocolon'], 'NAME:VALUE'],
    [['http://x/', '--frobnicate'], 'Unknown option'],
  ])('refuses %j with one line and exit 2', async (argv, msg) => {
    const out = sink();
    const err = sink();
    expect(await runBench(argv, { stdout: out.stream, stderr: err.stream })).toBe(2);
    expect(err.text()).toContain(msg);
    expect(err.text().trim().split('\n')).toHaveLength(1);
  });

  it('runs a real load test and prints JSON with percentiles', async () => {
    const out = sink();
    const err = sink();
    const before = served;
    const code = await runBench([`${url}/`, '-c', '4', '-d', '1', '-m', 'PUT', '-b', 'x', '--json'], { stdout: out.stream, stderr: err.stream });
    expect(code).toBe(0);
    const r = JSON.parse(out.text()) as { requests: number; latency_ms: Record<string, number>; non_2xx: number };
    expect(r.requests).toBeGreaterThan(0);
    expect(served - before).toBeGreaterThanOrEqual(r.requests);
    expect(r.non_2xx).toBe(0);
    expect(Object.keys(r.latency_ms)).toEqual(['p50', 'p90', 'p99', 'p99_9', 'max']);
    expect(methods.has('PUT')).toBe(true);
  });

  it('exits 1 when responses are not 2xx, and prints a table', async () => {
    const out = sink();
    const err = sink();
    const code = await runBench([`${url}/fail`, '-c', '2', '-d', '1'], { stdout: out.stream, stderr: err.stream });
    expect(code).toBe(1);
    expect(out.text()).toMatch(/latency p99\s+\d+ ms/);
    expect(out.text()).toMatch(/non-2xx\s+[1-9]/);
  });
});
