// The raw TCP bench's parts (bench/lib/tcp.ts): the sidecar configs compiled by outrigger's own
// loader, redis-benchmark's CSV parsed from a real captured run, the markdown section's ratios,
// and the probe and a redis-benchmark run against a real redis-server (Debian's redis-server and
// redis-tools; .ci/run installs them).

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../../bench/lib/peers.js';
import { freePort, startProcess, type Started } from '../../bench/lib/proc.js';
import { runToEnd } from '../../bench/lib/section.js';
import { parseRedisCsv, probeRedis, renderTcpMarkdown, TCP_SIDECAR, type RedisRun, type TcpRun } from '../../bench/lib/tcp.js';
import { configsNamed, describeParser, describeSidecars, itRendersWithoutPeer, overRounds } from './section_helpers.js';

describeSidecars('TCP', TCP_SIDECAR, "has a tcp listener whose connections go to the cluster 'up'", (c) => {
  expect(c.listeners[0]).toMatchObject({ protocol: 'tcp', tcp: { cluster: 'up' } });
});

// Captured from: redis-benchmark -h 127.0.0.1 -p <redis-server> --csv -t set,get -n 2000 -c 10 -P 1 -d 3
describeParser(
  'redis-benchmark --csv',
  parseRedisCsv,
  'redis-benchmark-csv.txt',
  {
    SET: { test: 'SET', rps: 54054.05, p50Ms: 0.095, p99Ms: 0.287 },
    GET: { test: 'GET', rps: 51282.05, p50Ms: 0.095, p99Ms: 1.151 },
  },
  'Could not connect to Redis at 127.0.0.1:1: Connection refused\n',
  /unexpected redis-benchmark output/,
);

function redisRun(rps: number, cpu: number): RedisRun {
  return { tests: { SET: { test: 'SET', rps, p50Ms: 0.5, p99Ms: 2 }, GET: { test: 'GET', rps: rps * 2, p50Ms: 0.25, p99Ms: 1 } }, cpuMicrosPerRequest: cpu };
}

function run(config: string, round: number, rps: number, cpu: number, largeRps: number, largeCpu: number): TcpRun {
  return { config, round, small: redisRun(rps, cpu), large: redisRun(largeRps, largeCpu) };
}

describe('the TCP section', () => {
  it('divides CPU by haproxy-tcp on medians over rounds, turns large-value requests/s into MB/s and lists failed runs', () => {
    const md = renderTcpMarkdown({
      configs: configsNamed('direct', 'outrigger-tcp-1w', 'outrigger-tcp-2w', 'haproxy-tcp'),
      skipped: [{ name: 'outrigger-tcp-mtls', reason: 'no CA' }],
      failed: [{ config: 'outrigger-tcp-2w', round: 1, reason: 'redis-benchmark exited 1: Error: Connection reset by peer' }],
      requests: 100_000,
      largeValueBytes: 65_536,
      runs: [
        run('direct', 1, 30_000, 0, 15_000, 0),
        ...overRounds(run, 'outrigger-tcp-1w', [15_000, 30, 3000, 250], [17_000, 36, 3200, 270], [16_000, 33, 3100, 260]),
        ...overRounds(run, 'haproxy-tcp', [25_000, 10, 12_000, 50], [26_000, 11, 12_000, 52], [27_000, 12, 12_000, 54]),
      ],
    });
    // outrigger medians: 16000 SET/s, 32000 GET/s, CPU 33 ÷ 11 = 3.00; 3100 × 65536 B = 203 MB/s SET, 406 GET; 260 ÷ 52 = 5.00
    expect(md).toContain('| outrigger-tcp-1w | 16000 | 32000 | 33.0 | 3.00 | 0.250 / 1.000 | 203 | 406 | 260.0 | 5.00 |');
    expect(md).toContain('| direct | 30000 | 60000 | 0.0 |  | 0.250 / 1.000 | 983 | 1966 | 0.0 |  |');
    expect(md).toContain('| haproxy-tcp | 26000 | 52000 | 11.0 | 1.00 |');
    expect(md).toContain('- skipped outrigger-tcp-mtls: no CA');
    // A config whose every run failed has no row, and its failures are listed.
    expect(md).not.toContain('| outrigger-tcp-2w |');
    expect(md).toContain('- failed outrigger-tcp-2w in round 1 (left out): redis-benchmark exited 1: Error: Connection reset by peer');
    expect(md).toContain('100000 SET + 100000 GET of 3 B values, then SET/GET of 64 KiB values; medians of 3 rounds');
  });

  itRendersWithoutPeer(
    { peer: 'haproxy-tcp', tool: 'haproxy', ours: 'outrigger-tcp-1w' },
    (base) =>
      renderTcpMarkdown({
        ...base,
        requests: 100_000,
        largeValueBytes: 65_536,
        runs: [run('direct', 1, 30_000, 0, 15_000, 0), run('outrigger-tcp-1w', 1, 15_000, 30, 3000, 250)],
      }),
    // 3000 × 65536 B = 197 MB/s SET, 6000 × 65536 B = 393 GET
    '| outrigger-tcp-1w | 15000 | 30000 | 30.0 |  | 0.250 / 1.000 | 197 | 393 | 250.0 |  |',
  );
});

describe('against a real redis-server', () => {
  const tools = ensureTools(['redis-server', 'redis-benchmark'], false, () => {});
  let redis: Started;
  let port: number;
  beforeAll(async () => {
    expect(tools.map((t) => t.reason)).toEqual([null, null]);
    port = await freePort();
    redis = await startProcess({
      name: 'redis-server',
      cmd: tools[0]!.path!,
      args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      readyPort: port,
    });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('the probe gets its PONG', async () => {
    expect(await probeRedis(port)).toBeNull();
  });

  it("a real redis-benchmark run of SET and GET parses, through the section's own runner", async () => {
    const out = await runToEnd(
      tools[1]!.path!,
      ['-h', '127.0.0.1', '-p', String(port), '--csv', '-t', 'set,get', '-n', '2000', '-c', '10', '-P', '1', '-d', '3'],
      60_000,
    );
    const tests = parseRedisCsv(out);
    expect(Object.keys(tests).sort()).toEqual(['GET', 'SET']);
    for (const t of Object.values(tests)) {
      expect(t.rps).toBeGreaterThan(0);
      expect(t.p99Ms).toBeGreaterThanOrEqual(t.p50Ms);
    }
  });
});

describe('the probe against what is not redis', () => {
  it('names an answer other than +PONG', async () => {
    const server = net.createServer((s) => s.end('-ERR unknown command\r\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      expect(await probeRedis((server.address() as net.AddressInfo).port)).toBe('probe: PING answered "-ERR unknown command\\r\\n"');
    } finally {
      server.close();
    }
  });

  it('names a refused connection', async () => {
    expect(await probeRedis(await freePort())).toMatch(/^probe failed: connect ECONNREFUSED/);
  });
});
