// Trace headers through one sidecar, on every HTTP/1 engine: what the app receives and which
// spans reach the collector (a receiver decoding with the official protos). A sampled caller's
// trace continues (server span child of the caller, the app's traceparent names the client span,
// tracestate kept, B3 written when listed, the caller's B3 headers replaced); an unsampled
// caller's headers pass unchanged and nothing is recorded; an invalid traceparent starts a new
// trace without the caller's tracestate; a retry is an event of the one client span; a local
// reply is an error server span; PUT /config turns tracing on and off.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adminCall,
  closeAll,
  eventually,
  get,
  headerValues,
  proxyConfig,
  startSidecar,
  startUpstream,
  type Sidecar,
  type Upstream,
} from '../helpers/sidecar.js';
import { startReceiver, type Receiver, type ReceivedSpan } from './receiver.js';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER = '00f067aa0ba902b7';
const SERVER = 2;
const CLIENT = 3;

afterAll(closeAll);

function tracedConfig(app: Upstream, engine: 'uws' | 'node' | 'strict', receiver: Receiver, tracing: Record<string, unknown> = {}): Record<string, unknown> {
  const cfg = proxyConfig([app.address], {
    routes: [
      { name: 'retried', match: { path_prefix: '/retry' }, cluster: 'app', retries: { attempts: 2, on: ['503'], backoff_base_ms: 1, backoff_max_ms: 2 } },
      { name: 'aborted', match: { path_prefix: '/nowhere' }, cluster: 'app', fault: { abort: { status: 503, percent: 100 } } },
    ],
  });
  (cfg['listeners'] as Array<Record<string, unknown>>)[0]!['engine'] = engine;
  cfg['tracing'] = { otlp_endpoint: receiver.url, propagation: ['w3c', 'b3'], service_name: `sc-${engine}`, ...tracing };
  return cfg;
}

/** What the app got for the request whose path is `path`. */
function received(app: Upstream, path: string): string[] {
  const r = app.requests.filter((q) => q.url === path);
  expect(r.length, `requests for ${path}`).toBeGreaterThan(0);
  return r[r.length - 1]!.rawHeaders.map((h, i) => (i % 2 === 0 ? h.toLowerCase() : h));
}

function spansOf(receiver: Receiver, service: string, traceId: string, n: number): Promise<ReceivedSpan[]> {
  return eventually(() => {
    const s = receiver.spans.filter((x) => x.service === service && x.traceId === traceId);
    return s.length >= n ? s : undefined;
  }, `${n} spans of ${traceId}`);
}

describe.each(['uws', 'node', 'strict'] as const)('engine %s', (engine) => {
  let receiver: Receiver;
  let app: Upstream;
  let sc: Sidecar;
  const service = `sc-${engine}`;

  beforeAll(async () => {
    receiver = await startReceiver();
    let failedOnce = false;
    app = await startUpstream((req, res, rec) => {
      if (rec.url === '/retry' && !failedOnce) {
        failedOnce = true;
        res.writeHead(503).end();
        return;
      }
      res.end('ok');
    });
    sc = await startSidecar(tracedConfig(app, engine, receiver));
  });

  it("continues a sampled caller's trace: child spans, the client span named upstream, tracestate kept, B3 written and the caller's replaced", async () => {
    const r = await get(sc.port(), '/a?q=1', {
      headers: { traceparent: `00-${T}-${CALLER}-01`, tracestate: 'vendor=x', 'x-b3-traceid': 'b'.repeat(32), 'x-b3-spanid': CALLER, 'x-b3-sampled': '0' },
    });
    expect(r.status).toBe(200);
    const h = received(app, '/a?q=1');
    const tp = headerValues(h, 'traceparent');
    expect(tp).toHaveLength(1);
    const m = new RegExp(`^00-${T}-([0-9a-f]{16})-01$`).exec(tp[0]!);
    expect(m).not.toBeNull();
    const upstreamParent = m![1]!;
    expect(headerValues(h, 'tracestate')).toEqual(['vendor=x']);
    expect(headerValues(h, 'b3')).toEqual([`${T}-${upstreamParent}-1`]);
    // The caller's X-B3-* (another trace id, unsampled) are replaced by the sidecar's, in both B3 forms.
    expect(headerValues(h, 'x-b3-traceid')).toEqual([T]);
    expect(headerValues(h, 'x-b3-spanid')).toEqual([upstreamParent]);
    expect(headerValues(h, 'x-b3-sampled')).toEqual(['1']);

    const spans = await spansOf(receiver, service, T, 2);
    const server = spans.find((s) => s.kind === SERVER)!;
    const client = spans.find((s) => s.kind === CLIENT)!;
    expect(server.parentSpanId).toBe(CALLER);
    expect(client.parentSpanId).toBe(server.spanId);
    expect(client.spanId).toBe(upstreamParent);
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/a',
      'url.query': 'q=1',
      'outrigger.route': 'all',
      'outrigger.cluster': 'app',
    });
    expect(client.attributes).toMatchObject({ 'server.port': app.port, 'url.full': `http://${app.address}/a?q=1`, 'http.response.status_code': 200 });
  });

  it("forwards an unsampled caller's headers unchanged and records nothing", async () => {
    const tp = `00-${'c'.repeat(32)}-${CALLER}-00`;
    expect((await get(sc.port(), '/unsampled', { headers: { traceparent: tp, tracestate: 'k=v' } })).status).toBe(200);
    const h = received(app, '/unsampled');
    expect(headerValues(h, 'traceparent')).toEqual([tp]);
    expect(headerValues(h, 'tracestate')).toEqual(['k=v']);
    expect(headerValues(h, 'b3')).toEqual([]);
    // A later sampled request's spans arrive; none of the unsampled trace came before them.
    expect((await get(sc.port(), '/marker', { headers: { traceparent: `00-${'d'.repeat(32)}-${CALLER}-01` } })).status).toBe(200);
    await spansOf(receiver, service, 'd'.repeat(32), 2);
    expect(receiver.spans.filter((s) => s.traceId === 'c'.repeat(32))).toEqual([]);
  });

  it('an invalid traceparent starts a new trace at the sidecar, without the caller tracestate', async () => {
    expect((await get(sc.port(), '/invalid', { headers: { traceparent: `00-${T.toUpperCase()}-${CALLER}-01`, tracestate: 'k=v' } })).status).toBe(200);
    const h = received(app, '/invalid');
    const tp = headerValues(h, 'traceparent');
    expect(tp).toHaveLength(1);
    const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(tp[0]!);
    expect(m).not.toBeNull();
    expect(m![1]).not.toBe(T.toLowerCase());
    expect(headerValues(h, 'tracestate')).toEqual([]);
    const spans = await spansOf(receiver, service, m![1]!, 2);
    expect(spans.find((s) => s.kind === SERVER)!.parentSpanId).toBe('');
  });

  it('a retry is an event of the one client span, which reports the retried count', async () => {
    const traceId = 'e'.repeat(32);
    expect((await get(sc.port(), '/retry', { headers: { traceparent: `00-${traceId}-${CALLER}-01` } })).status).toBe(200);
    const tries = app.requests.filter((q) => q.url === '/retry');
    expect(tries).toHaveLength(2);
    // Both tries carry the same traceparent: the client span's.
    expect(
      new Set(
        tries.map(
          (q) =>
            headerValues(
              q.rawHeaders.map((x, i) => (i % 2 === 0 ? x.toLowerCase() : x)),
              'traceparent',
            )[0],
        ),
      ).size,
    ).toBe(1);
    const spans = await spansOf(receiver, service, traceId, 2);
    const client = spans.find((s) => s.kind === CLIENT)!;
    expect(client.events).toEqual([{ name: 'retry', attributes: { 'outrigger.attempt': 2, 'outrigger.endpoint': app.address } }]);
    expect(client.attributes['http.request.resend_count']).toBe(1);
    expect(client.attributes['outrigger.route']).toBe('retried');
  });

  it('a local reply is a server span with error status and no client span', async () => {
    const traceId = 'f'.repeat(32);
    expect((await get(sc.port(), '/nowhere', { headers: { traceparent: `00-${traceId}-${CALLER}-01` } })).status).toBe(503);
    const spans = await spansOf(receiver, service, traceId, 1);
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      kind: SERVER,
      statusCode: 2,
      attributes: expect.objectContaining({ 'http.response.status_code': 503, 'outrigger.route': 'aborted' }),
    });
    expect(receiver.errors).toEqual([]);
  });
});

describe('PUT /config turns tracing on and off', () => {
  it('no trace headers without tracing; a started trace with it; none again after', async () => {
    const receiver = await startReceiver();
    const app = await startUpstream('app');
    const on = tracedConfig(app, 'node', receiver, { sample_rate: 1 });
    const { tracing: _t, ...off } = on;
    const sc = await startSidecar(off);
    const traceparentFor = async (path: string): Promise<string[]> => {
      expect((await get(sc.port(), path)).status).toBe(200);
      return headerValues(received(app, path), 'traceparent');
    };
    expect(await traceparentFor('/off1')).toEqual([]);
    expect((await adminCall(sc, 'PUT', '/config', on)).status).toBe(200);
    expect(await traceparentFor('/on')).toEqual([expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)]);
    expect((await adminCall(sc, 'PUT', '/config', off)).status).toBe(200);
    expect(await traceparentFor('/off2')).toEqual([]);
  });
});
