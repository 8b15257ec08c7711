// A collector that is down (a dead port) or never answers: requests are served as ever, the
// export queue holds at most max_queued_spans (the oldest dropped and counted in /stats and
// /metrics), failed exports back off. Asserted on the counters, never on timing.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { TracingJson } from '../../src/tracing/exporter.js';
import { adminCall, closeAll, deadPort, eventually, proxyConfig, sendMany, startSidecar, startUpstream, tally, track } from '../helpers/sidecar.js';

afterAll(closeAll);

const MAX_QUEUED = 100;
const REQUESTS = 1500;

/** A collector that accepts connections and never answers. */
async function silentCollector(): Promise<string> {
  const server = http.createServer(() => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  track({
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
}

describe.each([
  ['a dead port', async (): Promise<string> => `http://127.0.0.1:${await deadPort()}/v1/traces`],
  ['a collector that never answers', silentCollector],
])('collector down: %s', (_what, collector) => {
  it('every request succeeds, the queue stays within its bound, drops are counted', async () => {
    const app = await startUpstream('app');
    const cfg = proxyConfig([app.address], { workers: 2 });
    cfg['tracing'] = { otlp_endpoint: await collector(), sample_rate: 1, max_queued_spans: MAX_QUEUED, export_timeout_ms: 200 };
    const sc = await startSidecar(cfg);
    const replies = await sendMany((i) => sc.url(`/r${i}`), REQUESTS, 16);
    expect(tally(replies)).toEqual({ '200': REQUESTS });

    // Every sampled request (2 spans each) is accounted for: dropped, or still held; and an export
    // has failed (a silent collector fails only at export_timeout_ms, which may come after the count).
    const tracing = await eventually(async () => {
      const t = (await adminCall(sc, 'GET', '/stats')).json.tracing as TracingJson;
      return t.dropped_spans + t.queued_spans === 2 * REQUESTS && t.export_failures > 0 ? t : undefined;
    }, 'all spans dropped or queued, and a failed export');
    expect(tracing.exported_spans).toBe(0);
    expect(tracing.export_failures).toBeGreaterThan(0);
    expect(tracing.backoff_ms).toBeGreaterThan(0);
    expect(tracing.queued_spans).toBeLessThanOrEqual(MAX_QUEUED);
    expect(tracing.queued_spans_max).toBeLessThanOrEqual(MAX_QUEUED);
    expect(tracing.queued_spans_max).toBeGreaterThan(0);
    expect(tracing.dropped_spans).toBeGreaterThanOrEqual(2 * REQUESTS - MAX_QUEUED);

    // Dropped in the workers (each holds no more than the queue bound between posts) or from the queue.
    const metrics = (await adminCall(sc, 'GET', '/metrics')).text;
    const dropped = [...metrics.matchAll(/^outrigger_tracing_spans_dropped_total\{reason="(\w+)"\} (\d+)$/gm)];
    expect(dropped.map((m) => m[1])).toContain('worker_buffer');
    expect(dropped.every((m) => m[1] === 'worker_buffer' || m[1] === 'queue_full')).toBe(true);
    expect(dropped.reduce((n, m) => n + Number(m[2]), 0)).toBe(tracing.dropped_spans);
    expect(metrics).toMatch(/^outrigger_tracing_spans_exported_total 0$/m);
  });
});
