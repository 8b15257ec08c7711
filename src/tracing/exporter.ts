// Main-thread side of tracing: the span records workers post with their stats join one bounded
// queue (beyond `max_queued_spans` the oldest are dropped and counted), and batches leave it as
// OTLP/JSON POSTs to the collector, one at a time, each with a deadline. A collector that fails
// (network error, timeout, 429, 5xx) gets the batch back at the head of the queue and is left
// alone for a backoff that doubles up to 30 s; one that refuses a batch (other 4xx) drops it.
// Nothing here runs on a request's path: workers only hand records over.

import http from 'node:http';
import type { TracingSpec } from '../config/types.js';
import { spansOf, toOtlpJson } from './otlp_json.js';
import type { SpanRecord } from './span_buffer.js';

/** Records per POST. */
export const BATCH_RECORDS = 512;
const PUMP_INTERVAL_MS = 1000;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** One connection to the collector, kept open between batches. */
const KEEP_ONE = { keepAlive: true, maxSockets: 1 };

/** Why spans were dropped (the `reason` label of outrigger_tracing_spans_dropped_total). */
export type DropReason = 'queue_full' | 'worker_buffer' | 'rejected' | 'disabled';

export interface ExporterCounters {
  /** Spans the collector accepted. */
  exported(spans: number): void;
  dropped(reason: DropReason, spans: number): void;
}

export interface ExporterLog {
  warn(fields: Record<string, unknown>, msg: string): void;
}

/** The /stats `tracing` section. */
export interface TracingJson {
  readonly endpoint: string | null;
  readonly queued_spans: number;
  /** The most spans ever held at once (queued plus the batch in flight): never above max_queued_spans. */
  readonly queued_spans_max: number;
  readonly max_queued_spans: number;
  readonly exported_spans: number;
  readonly dropped_spans: number;
  readonly export_failures: number;
  readonly backoff_ms: number;
}

export class SpanExporter {
  private queue: SpanRecord[] = [];
  private queuedSpans = 0;
  private inflightSpans = 0;
  private highWater = 0;
  private exported = 0;
  private droppedTotal = 0;
  private failures = 0;
  private backoffMs = 0;
  private retryAt = 0;
  /** The pump's interval: it runs only while records wait, so a sidecar without tracing (or with nothing to send) does not wake for it. */
  private timer: NodeJS.Timeout | null = null;
  private readonly plain: Transport = { request: http.request, agent: new http.Agent(KEEP_ONE) };
  /** node:https and its agent, loaded at the first POST to an https collector: most sidecars never need them. */
  private secure: Promise<Transport> | null = null;

  constructor(
    /** The tracing settings in force (null: off); read at every step, so a reload applies at once. */
    private readonly spec: () => TracingSpec | null,
    private readonly counters: ExporterCounters,
    private readonly log: ExporterLog,
  ) {}

  /** The pump's interval runs (records wait to be sent). */
  get pumping(): boolean {
    return this.timer !== null;
  }

  private arm(): void {
    if (this.timer !== null || this.queue.length === 0) return;
    this.timer = setInterval(() => this.pump(), PUMP_INTERVAL_MS);
    this.timer.unref();
  }

  private disarm(): void {
    if (this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** A worker's records of one interval, and the spans it dropped itself. */
  add(records: readonly SpanRecord[], droppedInWorker: number): void {
    if (droppedInWorker > 0) this.drop('worker_buffer', droppedInWorker);
    const spec = this.spec();
    if (spec === null) {
      let n = 0;
      for (const r of records) n += spansOf(r);
      if (n > 0) this.drop('disabled', n);
      this.clear();
      return;
    }
    for (const r of records) {
      this.queue.push(r);
      this.queuedSpans += spansOf(r);
    }
    this.bound(spec.maxQueuedSpans);
    this.arm();
    if (this.queue.length >= BATCH_RECORDS) this.pump();
  }

  /** Drops the oldest records until the queue and the batch in flight hold at most `max` spans. */
  private bound(max: number): void {
    let cut = 0;
    let spans = 0;
    while (cut < this.queue.length && this.queuedSpans - spans + this.inflightSpans > max) spans += spansOf(this.queue[cut++]!);
    if (cut > 0) {
      this.queue.splice(0, cut);
      this.queuedSpans -= spans;
      this.drop('queue_full', spans);
    }
    this.highWater = Math.max(this.highWater, this.queuedSpans + this.inflightSpans);
  }

  private drop(reason: DropReason, spans: number): void {
    this.droppedTotal += spans;
    this.counters.dropped(reason, spans);
  }

  private clear(): void {
    if (this.queuedSpans > 0) this.drop('disabled', this.queuedSpans);
    this.queue = [];
    this.queuedSpans = 0;
  }

  /** Sends the next batch unless one is in flight or the collector is being left alone. */
  private pump(): void {
    const spec = this.spec();
    if (spec === null) this.clear();
    if (spec === null || this.queue.length === 0) return this.disarm();
    if (this.inflightSpans > 0 || Date.now() < this.retryAt) return;
    const batch = this.queue.splice(0, BATCH_RECORDS);
    let spans = 0;
    for (const r of batch) spans += spansOf(r);
    this.queuedSpans -= spans;
    this.inflightSpans = spans;
    const body = JSON.stringify(toOtlpJson(batch, spec.serviceName));
    const url = new URL(spec.otlpEndpoint);
    void this.transport(url)
      .then((t) => post(t, url, body, spec.exportTimeoutMs))
      .then((result) => this.settled(batch, spans, result, spec));
  }

  private transport(url: URL): Promise<Transport> {
    if (url.protocol !== 'https:') return Promise.resolve(this.plain);
    return (this.secure ??= import('node:https').then((https) => ({ request: https.request, agent: new https.Agent(KEEP_ONE) })));
  }

  private settled(batch: SpanRecord[], spans: number, result: PostResult, spec: TracingSpec): void {
    this.inflightSpans = 0;
    if (result.ok) {
      this.exported += spans;
      this.counters.exported(spans);
      this.backoffMs = 0;
      this.retryAt = 0;
      if (this.queue.length >= BATCH_RECORDS) this.pump();
      return;
    }
    this.failures++;
    if (result.retry) {
      // Back at the head, in order; the bound then drops the oldest if newer spans filled the queue.
      this.queue = batch.concat(this.queue);
      this.queuedSpans += spans;
      this.bound(spec.maxQueuedSpans);
      this.backoffMs = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, this.backoffMs * 2));
      this.retryAt = Date.now() + this.backoffMs;
      this.arm();
    } else {
      this.drop('rejected', spans);
    }
    // A refused batch, or the start of a failure streak: not one line per retry.
    if (!result.retry || this.backoffMs === BACKOFF_MIN_MS) {
      this.log.warn({ endpoint: spec.otlpEndpoint, err: result.why, retry_in_ms: result.retry ? this.backoffMs : null }, 'trace export failed');
    }
  }

  json(): TracingJson {
    const spec = this.spec();
    return {
      endpoint: spec?.otlpEndpoint ?? null,
      queued_spans: this.queuedSpans + this.inflightSpans,
      queued_spans_max: this.highWater,
      max_queued_spans: spec?.maxQueuedSpans ?? 0,
      exported_spans: this.exported,
      dropped_spans: this.droppedTotal,
      export_failures: this.failures,
      backoff_ms: this.backoffMs,
    };
  }

  close(): void {
    this.disarm();
    this.plain.agent.destroy();
    void this.secure?.then((t) => t.agent.destroy());
  }
}

/** How POSTs reach the collector over its URL's scheme. */
interface Transport {
  readonly request: typeof http.request;
  readonly agent: http.Agent;
}

type PostResult = { readonly ok: true } | { readonly ok: false; readonly retry: boolean; readonly why: string };

/** One POST of an OTLP/JSON body; never rejects. */
function post(transport: Transport, url: URL, body: string, timeoutMs: number): Promise<PostResult> {
  return new Promise((resolve) => {
    const req = transport.request(
      url,
      {
        method: 'POST',
        agent: transport.agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        res.resume();
        res.on('error', () => {});
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve({ ok: true });
        else resolve({ ok: false, retry: status === 429 || status >= 500, why: `HTTP ${status}` });
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve({
        ok: false,
        retry: true,
        why: e.name === 'AbortError' || e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.code ?? e.message),
      }),
    );
    req.end(body);
  });
}
