// Distributed tracing end to end: app A (OpenTelemetry Node SDK with HTTP instrumentation) calls
// through the client sidecar (web) → mTLS → the server sidecar (api) → app B (instrumented too).
// Everyone exports with OTLP/HTTP to one receiver that decodes with the official protos: all
// spans share one trace id and each names the right parent, A's client span → sidecar 1 server
// → sidecar 1 client → sidecar 2 server → sidecar 2 client → B's server span; the sidecars'
// spans carry the HTTP semantic-convention attributes, the route, the cluster and (server side)
// the caller's SPIFFE ID; the access log line carries the trace id. Both sidecars sample at
// rate 0: their spans exist because parent_based follows A's sampled flag.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ca } from '../../src/tls/ca.js';
import {
  caSource,
  clientSideConfig,
  closeAll,
  eventually,
  get,
  newCa,
  ROOT,
  serverSideConfig,
  startSidecar,
  track,
  WEB,
  type Sidecar,
} from '../helpers/sidecar.js';
import { startReceiver, type Receiver, type ReceivedSpan } from './receiver.js';

const SERVER = 2;
const CLIENT = 3;

/** Starts test/tracing/traced_app/main.js as `service`; resolves with its port. */
async function startTracedApp(service: string, otlpUrl: string): Promise<number> {
  const child: ChildProcess = spawn(process.execPath, [path.join(ROOT, 'test', 'tracing', 'traced_app', 'main.js')], {
    cwd: ROOT,
    env: { ...process.env, SERVICE: service, OTLP_URL: otlpUrl },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  track({ close: () => new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : (child.once('exit', () => resolve()), child.kill('SIGTERM')))) });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /port (\d+)/.exec(out);
      if (m !== null) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`${service} exited (${code}) before listening`)));
  });
}

let receiver: Receiver;
let ca: Ca;
let server: Sidecar;
let client: Sidecar;
let appA: number;
let logFile: string;
/** The trace of the first test. */
let traceId = '';

beforeAll(async () => {
  receiver = await startReceiver();
  ca = await newCa();
  const appB = await startTracedApp('app-b', receiver.url);
  const serverCfg = serverSideConfig({ tls: caSource(ca), app: `127.0.0.1:${appB}` });
  serverCfg['tracing'] = { otlp_endpoint: receiver.url, sample_rate: 0, service_name: 'sidecar-api' };
  server = await startSidecar(serverCfg);
  const clientCfg = clientSideConfig({ tls: caSource(ca), upstream: `127.0.0.1:${server.port('inbound')}`, workers: 1 });
  // sample_rate 0 on both sidecars: the spans below exist only because parent_based honours A's sampled flag.
  clientCfg['tracing'] = { otlp_endpoint: receiver.url.replace('/v1/traces', ''), sample_rate: 0, service_name: 'sidecar-web' };
  const outbound = (clientCfg['listeners'] as Array<Record<string, unknown>>)[0]!;
  logFile = path.join(server.dir, 'outbound-access.log');
  outbound['access_log'] = { path: logFile, format: 'json' };
  client = await startSidecar(clientCfg);
  appA = await startTracedApp('app-a', receiver.url);
}, 60_000);
afterAll(closeAll);

function one(spans: readonly ReceivedSpan[], service: string, kind: number): ReceivedSpan {
  const found = spans.filter((s) => s.service === service && s.kind === kind);
  expect(found, `${service} kind ${kind}`).toHaveLength(1);
  return found[0]!;
}

describe('a trace through two sidecars', () => {
  it('shares one trace id with the right parent links and attributes', async () => {
    const to = `http://127.0.0.1:${client.port('outbound')}/orders/42?x=1`;
    const r = await get(appA, `/call?to=${encodeURIComponent(to)}`);
    expect(r.status).toBe(200);
    expect(r.body).toBe('200');

    // A's server span is the root: its trace is the one to follow.
    const root = await eventually(() => receiver.spans.find((s) => s.service === 'app-a' && s.kind === SERVER), "app A's server span");
    const trace = await eventually(() => {
      const t = receiver.spans.filter((s) => s.traceId === root.traceId);
      return t.length >= 7 ? t : undefined;
    }, 'seven spans of the trace');
    expect(receiver.errors).toEqual([]);
    expect(receiver.spans.filter((s) => s.traceId !== root.traceId)).toEqual([]);
    expect(trace).toHaveLength(7);

    const aClient = one(trace, 'app-a', CLIENT);
    const s1Server = one(trace, 'sidecar-web', SERVER);
    const s1Client = one(trace, 'sidecar-web', CLIENT);
    const s2Server = one(trace, 'sidecar-api', SERVER);
    const s2Client = one(trace, 'sidecar-api', CLIENT);
    const bServer = one(trace, 'app-b', SERVER);
    expect(root.parentSpanId).toBe('');
    expect(aClient.parentSpanId).toBe(root.spanId);
    expect(s1Server.parentSpanId).toBe(aClient.spanId);
    expect(s1Client.parentSpanId).toBe(s1Server.spanId);
    expect(s2Server.parentSpanId).toBe(s1Client.spanId);
    expect(s2Client.parentSpanId).toBe(s2Server.spanId);
    expect(bServer.parentSpanId).toBe(s2Client.spanId);

    // HTTP semantic conventions, route, cluster; the server sidecar names its mTLS caller.
    expect(s1Server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/orders/42',
      'url.query': 'x=1',
      'server.address': '127.0.0.1',
      'http.response.status_code': 200,
      'outrigger.cluster': 'api',
      'network.protocol.version': '1.1',
    });
    expect(s1Server.attributes['outrigger.route']).toEqual(expect.any(String));
    expect(s1Server.attributes['outrigger.peer_identity']).toBeUndefined();
    expect(s1Client.attributes).toMatchObject({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': server.port('inbound'),
      'http.response.status_code': 200,
      'outrigger.cluster': 'api',
    });
    expect(s2Server.attributes).toMatchObject({ 'outrigger.peer_identity': WEB, 'outrigger.cluster': 'local-app', 'http.response.status_code': 200 });
    expect(s2Server.attributes['network.peer.address']).toBe('127.0.0.1');
    for (const s of [s1Server, s1Client, s2Server, s2Client]) {
      expect(s.statusCode).toBe(0);
      expect(s.endNs).toBeGreaterThanOrEqual(s.startNs);
    }
    // Each sidecar's spans nest inside its caller's.
    expect(s1Server.startNs).toBeGreaterThanOrEqual(aClient.startNs);
    expect(s2Server.startNs).toBeGreaterThanOrEqual(s1Client.startNs);
    traceId = root.traceId;
  });

  it("the client sidecar's access log line carries the trace id", async () => {
    // The log is buffered: stopping the sidecar writes it out.
    expect(await client.stop()).toBe(0);
    const line = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('/orders/42'));
    expect(line).toBeDefined();
    expect((JSON.parse(line!) as { trace_id: string }).trace_id).toBe(traceId);
  });
});
