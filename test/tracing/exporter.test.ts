// The main-thread exporter against a real collector on 127.0.0.1: a batch the collector fails
// with 503 comes back and is exported once it recovers (nothing lost, in order); one refused with
// 400 is dropped as `rejected`; the queue bound drops the oldest; with tracing off, what
// arrives is dropped; an https collector is spoken to over TLS (node:https is loaded for it at the
// first POST). The pump's timer runs only while records wait. The bodies are decoded with the
// official protos.

import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { TracingSpec } from '../../src/config/types.js';
import { SpanExporter, type DropReason } from '../../src/tracing/exporter.js';
import type { SpanRecord } from '../../src/tracing/span_buffer.js';
import { eventually } from '../helpers/live.js';
import { leaf, newCa, spiffe } from '../helpers/mtls.js';
import { closeAll } from '../helpers/sidecar.js';
import { decodeExport, flatten, type ReceivedSpan } from './receiver.js';

function record(i: number, withClient = true): SpanRecord {
  const n = (i + 1).toString(16).padStart(16, '0');
  return {
    traceId: n.padStart(32, 'a'),
    parentSpanId: '',
    spanId: n,
    clientSpanId: withClient ? n.replace(/^0/, 'c') : '',
    startMs: 1_700_000_000_000 + i,
    clientStartMs: 1_700_000_000_000.5 + i,
    endMs: 1_700_000_000_001 + i,
    listener: 'main',
    method: 'GET',
    target: `/r${i}`,
    host: 'svc:8080',
    protocol: 'HTTP/1.1',
    status: 200,
    client: '127.0.0.1',
    peerIdentity: null,
    route: 'all',
    cluster: 'app',
    upstream: '127.0.0.1:9',
    error: null,
    retries: null,
  };
}

afterAll(closeAll);

let exporter: SpanExporter | null = null;
let server: http.Server | null = null;
afterEach(async () => {
  exporter?.close();
  exporter = null;
  server?.closeAllConnections();
  await new Promise<void>((r) => (server === null ? r() : server.close(() => r())));
  server = null;
});

/** A collector answering each POST with the next status of `statuses` (then 200); decoded spans kept. */
async function collector(statuses: number[]): Promise<{ url: string; spans: ReceivedSpan[]; posts: number[] }> {
  const spans: ReceivedSpan[] = [];
  const posts: number[] = [];
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = statuses.shift() ?? 200;
      posts.push(status);
      if (status === 200) spans.push(...flatten(decodeExport(Buffer.concat(chunks), req.headers['content-type'] ?? '')));
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, posts };
}

function start(spec: TracingSpec | null): { exporter: SpanExporter; drops: Record<string, number>; exported: number[] } {
  const drops: Record<string, number> = {};
  const exported: number[] = [];
  const current = { spec };
  const e = new SpanExporter(
    () => current.spec,
    { exported: (n) => exported.push(n), dropped: (reason: DropReason, n) => void (drops[reason] = (drops[reason] ?? 0) + n) },
    { warn: () => {} },
  );
  exporter = e;
  return { exporter: e, drops, exported };
}

const spec = (url: string, maxQueuedSpans = 2048): TracingSpec => ({
  otlpEndpoint: url,
  sampleRate: 1,
  parentBased: true,
  w3c: true,
  b3: false,
  serviceName: 'unit',
  maxQueuedSpans,
  exportTimeoutMs: 1000,
});

describe('SpanExporter', () => {
  it('a batch failed with 503 is kept and exported once the collector answers, in order', async () => {
    const c = await collector([503]);
    const { exporter: e, drops } = start(spec(c.url));
    expect(e.pumping).toBe(false); // nothing queued: no timer wakes the main thread
    e.add([record(0), record(1), record(2, false)], 0);
    expect(e.pumping).toBe(true);
    await eventually(() => (c.spans.length === 5 ? true : undefined), 'the five spans after the retry', 15_000);
    expect(c.posts).toEqual([503, 200]);
    expect(drops).toEqual({});
    expect(c.spans.filter((s) => s.kind === 2).map((s) => s.attributes['url.path'])).toEqual(['/r0', '/r1', '/r2']);
    await eventually(() => (e.json().exported_spans === 5 ? true : undefined), 'the exported count');
    expect(e.json()).toMatchObject({ export_failures: 1, queued_spans: 0, dropped_spans: 0 });
    // Once the queue is empty the pump stops at its next turn; new records start it again.
    await eventually(() => (e.pumping ? undefined : true), 'the pump to stop', 5_000);
    e.add([record(3)], 0);
    expect(e.pumping).toBe(true);
    await eventually(() => (c.spans.length === 7 ? true : undefined), 'the next record');
  });

  it('a batch refused with 400 is dropped as rejected', async () => {
    const c = await collector([400]);
    const { exporter: e, drops } = start(spec(c.url));
    e.add([record(0)], 0);
    await eventually(() => (drops['rejected'] === 2 ? true : undefined), 'the rejected drop');
    expect(e.json()).toMatchObject({ exported_spans: 0, queued_spans: 0, dropped_spans: 2 });
  });

  it('beyond max_queued_spans the oldest go; worker drops are counted too', async () => {
    const c = await collector([]);
    const { exporter: e, drops } = start(spec(c.url, 5));
    e.add(
      [0, 1, 2, 3, 4].map((i) => record(i)),
      3,
    );
    // 10 spans offered, 5 may stay: the three oldest records (6 spans) go, leaving 4.
    expect(drops).toEqual({ worker_buffer: 3, queue_full: 6 });
    expect(e.json()).toMatchObject({ queued_spans: 4, queued_spans_max: 4 });
    await eventually(() => (c.spans.length === 4 ? true : undefined), 'the kept spans');
    expect(c.spans.filter((s) => s.kind === 2).map((s) => s.attributes['url.path'])).toEqual(['/r3', '/r4']);
  });

  it('with tracing off, what arrives is dropped as disabled', () => {
    const { exporter: e, drops } = start(null);
    e.add([record(0)], 0);
    expect(drops).toEqual({ disabled: 2 });
    expect(e.json()).toMatchObject({ endpoint: null, queued_spans: 0 });
    expect(e.pumping).toBe(false);
  });

  it('an https collector is reached over TLS: a certificate from a CA the process does not trust fails the batch, which is kept', async () => {
    const ca = await newCa();
    const cert = leaf(ca, spiffe('collector'));
    const s = https.createServer({ key: cert.keyPem, cert: cert.certPem }, (_req, res) => res.writeHead(200).end());
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const warnings: Array<Record<string, unknown>> = [];
      const e = new SpanExporter(
        () => spec(`https://127.0.0.1:${(s.address() as AddressInfo).port}/v1/traces`),
        { exported: () => {}, dropped: () => {} },
        { warn: (f) => void warnings.push(f) },
      );
      exporter = e;
      e.add([record(0)], 0);
      await eventually(() => (warnings.length === 1 ? true : undefined), 'the failed export');
      expect(warnings[0]).toMatchObject({ err: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', retry_in_ms: 1000 });
      expect(e.json()).toMatchObject({ export_failures: 1, exported_spans: 0, queued_spans: 2, dropped_spans: 0 });
    } finally {
      s.close();
    }
  });
});
