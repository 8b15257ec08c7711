// The exchange in-process (issue 12): a recording downstream, a real Cluster with real pools to a
// real upstream on 127.0.0.1, and a ticker on a manual clock. Each phase transition, retries with
// body replay, and the client going away in each phase; counts return to zero every time.

import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compileConfig } from '../../src/config/load.js';
import type { RouteSpec, Snapshot } from '../../src/config/types.js';
import type { Downstream, DownstreamEvents, ResponseHead } from '../../src/dataplane/downstream.js';
import { Exchange, Phase, TryOutcome, type ExchangeObserver } from '../../src/dataplane/exchange.js';
import { BodyFraming, buildUpstreamHead, type RequestHead } from '../../src/dataplane/request_head.js';
import type { ProxyError } from '../../src/errors.js';
import { seededRng } from '../../src/lb/rng.js';
import { Cluster, type Endpoint } from '../../src/upstream/cluster.js';
import { manualTicker } from './manual_clock.js';

/** A client as the exchange sees it: every call recorded. */
class RecordingDownstream implements Downstream {
  ex: DownstreamEvents | null = null;
  wantBody = false;
  status = 0;
  readonly body: Buffer[] = [];
  ended = false;
  replied: ProxyError | null = null;
  aborted = false;
  complete = false;
  private onHead: (() => void) | null = null;
  readonly headSeen = new Promise<void>((resolve) => (this.onHead = resolve));

  attach(ex: DownstreamEvents, wantBody: boolean): void {
    this.ex = ex;
    this.wantBody = wantBody;
  }
  cork(task: () => void): void {
    task();
  }
  writeHead(head: ResponseHead): void {
    this.status = head.status;
    this.onHead?.();
  }
  informational(): void {}
  writeBody(chunk: Buffer): boolean {
    this.body.push(Buffer.from(chunk));
    return true;
  }
  end(): void {
    this.ended = true;
    this.complete = true;
  }
  reply(err: ProxyError): void {
    this.replied = err;
    this.complete = true;
  }
  abort(): void {
    this.aborted = true;
  }
  pauseBody(): void {}
  resumeBody(): void {}
  text(): string {
    return Buffer.concat(this.body).toString();
  }
}

/** What the upstream saw of each request: method, path, body, and whether the client went away first. */
interface Seen {
  method: string;
  path: string;
  body: string;
  closedEarly: boolean;
}

let upstream: http.Server;
let upstreamPort = 0;
const seen: Seen[] = [];
/** Handlers that hold their response until the test releases it. */
const held: Array<() => void> = [];
let arrivals: Array<() => void> = [];
let flakyFailuresLeft = 0;

function nextArrival(): Promise<void> {
  return new Promise((resolve) => arrivals.push(resolve));
}

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    const s: Seen = { method: req.method ?? '', path: req.url ?? '', body: '', closedEarly: false };
    seen.push(s);
    res.on('close', () => {
      if (!res.writableFinished) s.closedEarly = true;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      s.body = Buffer.concat(chunks).toString();
      for (const a of arrivals.splice(0)) a();
      if (req.url === '/flaky' && flakyFailuresLeft > 0) {
        flakyFailuresLeft--;
        res.writeHead(503, { 'content-length': '4' }).end('nope');
      } else if (req.url === '/hold') {
        held.push(() => res.writeHead(200, { 'content-length': '4' }).end('late'));
      } else if (req.url === '/half') {
        res.writeHead(200, { 'content-length': '10' });
        res.write('12345');
        held.push(() => res.end('67890'));
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`echo:${s.body}`);
      }
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as AddressInfo).port;
});

afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
});

const clusters: Cluster[] = [];
afterEach(() => {
  for (const release of held.splice(0)) release();
  for (const c of clusters.splice(0)) c.close();
  seen.length = 0;
  arrivals = [];
  flakyFailuresLeft = 0;
});

/** A compiled config with one route (its retries/timeouts from `route`) to a cluster of `endpoints`. */
function setup(route: Record<string, unknown>, endpoints: string[], cluster: Record<string, unknown> = {}) {
  const r = compileConfig(
    {
      listeners: [{ name: 'l', address: '127.0.0.1:0', routes: [{ name: 'r', cluster: 'c', ...route }] }],
      clusters: [{ name: 'c', endpoints: endpoints.map((address) => ({ address })), ...cluster }],
    },
    { version: 1, availableParallelism: 1, enableTestHooks: false },
  );
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
  const snap: Snapshot = r.snapshot;
  const t = manualTicker();
  const rng = seededRng(7);
  const c = new Cluster(snap.clusters[0]!, t.ticker, rng, { tlsMaterial: () => null });
  clusters.push(c);
  const outcomes: TryOutcome[] = [];
  const done: Exchange[] = [];
  const waiting = new Map<Exchange, (ex: Exchange) => void>();
  const observer: ExchangeObserver = {
    onExchangeDone: (ex) => {
      done.push(ex);
      waiting.get(ex)?.(ex);
    },
    onTryOutcome: (_c, _e, o) => outcomes.push(o),
  };
  const routeSpec: RouteSpec = snap.listeners[0]!.routes[0]!;
  const start = (head: RequestHead, opts: { endpoint?: Endpoint; delayMs?: number } = {}) => {
    const down = new RecordingDownstream();
    const phases: Phase[] = [];
    if (!c.admit(t.clock.now())) throw new Error('not admitted');
    const ex = Exchange.start({
      down,
      head,
      upstreamHead: buildUpstreamHead(head, null, 'http'),
      cluster: c,
      endpoint: opts.endpoint ?? c.endpoints[0]!,
      route: routeSpec,
      routeIndex: 0,
      ctx: { ticker: t.ticker, rng },
      observer,
      delayMs: opts.delayMs ?? 0,
    });
    const whenDone = new Promise<Exchange>((resolve) => (ex.phase === Phase.Done ? resolve(ex) : waiting.set(ex, resolve)));
    // Record every later phase change.
    let phase = ex.phase;
    phases.push(phase);
    Object.defineProperty(ex, 'phase', {
      get: () => phase,
      set: (p: Phase) => {
        phase = p;
        phases.push(p);
      },
    });
    return { ex, down, phases, whenDone };
  };
  return { c, t, start, outcomes, done };
}

function head(method: string, path: string, body?: string): RequestHead {
  const headers = ['host', 'app'];
  if (body !== undefined) headers.push('content-length', String(Buffer.byteLength(body)));
  return {
    method,
    path,
    matchPath: path,
    target: path,
    host: 'app',
    framing: body === undefined ? BodyFraming.None : BodyFraming.Length,
    contentLength: body === undefined ? 0 : Buffer.byteLength(body),
    requestId: 'req-1',
    headers,
    peer: null,
    client: '127.0.0.1',
    hasConnection: false,
    protocol: 'HTTP/1.1',
  };
}

function sendBody(down: RecordingDownstream, body: string): void {
  down.ex!.onClientData(Buffer.from(body), true);
}

/** A port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function expectIdle(c: Cluster): void {
  expect(c.active).toBe(0);
  for (const e of c.endpoints) expect(e.active).toBe(0);
  expect(c.retryBudget.inFlight).toBe(0);
}

describe('exchange phases', () => {
  it('a GET goes Connecting → Sending → Responding → Done and relays the response', async () => {
    const { c, start, outcomes } = setup({}, [`127.0.0.1:${upstreamPort}`]);
    const { ex, down, phases, whenDone } = start(head('GET', '/plain'));
    expect(ex.phase).toBe(Phase.Connecting);
    await whenDone;
    expect(phases).toEqual([Phase.Connecting, Phase.Sending, Phase.Responding, Phase.Done]);
    expect(down.status).toBe(200);
    expect(down.ended).toBe(true);
    expect(down.text()).toBe('echo:');
    expect(ex.status).toBe(200);
    expect(ex.tries).toBe(1);
    expect(outcomes).toEqual([TryOutcome.Success]);
    expectIdle(c);
  });

  it('a rejected response is read to its end (Discarding) and the body replayed on the retry', async () => {
    const { c, start, outcomes } = setup({ retries: { attempts: 2, on: ['5xx'], backoff_base_ms: 1, backoff_max_ms: 1 } }, [`127.0.0.1:${upstreamPort}`]);
    flakyFailuresLeft = 1;
    const { ex, down, phases, whenDone } = start(head('PUT', '/flaky', 'payload'));
    sendBody(down, 'payload');
    await whenDone;
    expect(phases).toEqual([Phase.Connecting, Phase.Sending, Phase.Discarding, Phase.Delaying, Phase.Connecting, Phase.Sending, Phase.Responding, Phase.Done]);
    expect(down.text()).toBe('echo:payload');
    expect(seen.map((s) => s.body)).toEqual(['payload', 'payload']);
    expect(ex.tries).toBe(2);
    expect(outcomes).toEqual([TryOutcome.Gateway, TryOutcome.Success]);
    expect(c.retriesTotal).toBe(1);
    expectIdle(c);
  });

  it('a body larger than max_body_bytes is not kept, so the 503 goes to the client without a retry', async () => {
    const { c, start } = setup({ retries: { attempts: 2, on: ['5xx'], max_body_bytes: 4 } }, [`127.0.0.1:${upstreamPort}`]);
    flakyFailuresLeft = 1;
    const { ex, down, whenDone } = start(head('PUT', '/flaky', 'too long'));
    sendBody(down, 'too long');
    await whenDone;
    expect(down.status).toBe(503);
    expect(ex.tries).toBe(1);
    expect(seen).toHaveLength(1);
    expect(c.retriesTotal).toBe(0);
    expectIdle(c);
  });

  it('a connect failure is retried on the other endpoint', async () => {
    const dead = await closedPort();
    const { c, start } = setup({ retries: { attempts: 1, on: ['connect-failure'], backoff_base_ms: 1, backoff_max_ms: 1 } }, [
      `127.0.0.1:${dead}`,
      `127.0.0.1:${upstreamPort}`,
    ]);
    const { ex, down, phases, whenDone } = start(head('GET', '/plain'), { endpoint: c.endpoint(`127.0.0.1:${dead}`)! });
    await whenDone;
    expect(phases).toEqual([Phase.Connecting, Phase.Delaying, Phase.Connecting, Phase.Sending, Phase.Responding, Phase.Done]);
    expect(down.status).toBe(200);
    expect(ex.endpoint.address).toBe(`127.0.0.1:${upstreamPort}`);
    expectIdle(c);
  });

  it('without retries a connect failure is a 502 local reply', async () => {
    const dead = await closedPort();
    const { c, start } = setup({}, [`127.0.0.1:${dead}`]);
    const { ex, down, phases, whenDone } = start(head('GET', '/plain'));
    await whenDone;
    expect(phases).toEqual([Phase.Connecting, Phase.Done]);
    expect(down.replied?.code).toBe('upstream_connect_failed');
    expect(ex.status).toBe(502);
    expectIdle(c);
  });

  it('the route timeout answers 504 while Sending and the upstream sees the request abandoned', async () => {
    const { c, t, start } = setup({ timeout_ms: 1000 }, [`127.0.0.1:${upstreamPort}`]);
    const arrived = nextArrival();
    const { ex, down, whenDone } = start(head('GET', '/hold'));
    await arrived;
    expect(ex.phase).toBe(Phase.Sending);
    t.advance(999);
    expect(ex.phase).toBe(Phase.Sending); // not before the deadline
    t.advance(50);
    await whenDone;
    expect(down.replied?.code).toBe('timeout');
    await expect.poll(() => seen[0]?.closedEarly).toBe(true);
    expectIdle(c);
  });

  it('a per-try timeout is retried, and the second try answers', async () => {
    const { c, t, start } = setup({ retries: { attempts: 1, on: ['reset'], per_try_timeout_ms: 500, backoff_base_ms: 1, backoff_max_ms: 1 } }, [
      `127.0.0.1:${upstreamPort}`,
    ]);
    const arrived = nextArrival();
    const { ex, down, whenDone } = start(head('GET', '/hold'));
    await arrived;
    const again = nextArrival();
    t.advance(600);
    await again;
    expect(ex.tries).toBe(2);
    for (const release of held.splice(0)) release();
    await whenDone;
    expect(down.status).toBe(200);
    expect(down.text()).toBe('late');
    expect(seen[0]!.closedEarly).toBe(true);
    expectIdle(c);
  });
});

describe('the client goes away', () => {
  it('while Delaying: no request reaches the upstream', async () => {
    const { c, start } = setup({}, [`127.0.0.1:${upstreamPort}`]);
    const { ex, down, whenDone } = start(head('GET', '/plain'), { delayMs: 60_000 });
    expect(ex.phase).toBe(Phase.Delaying);
    down.ex!.onClientAborted();
    await whenDone;
    expect(ex.phase).toBe(Phase.Done);
    expect(ex.status).toBe(0);
    expect(seen).toHaveLength(0);
    expectIdle(c);
  });

  it('while Connecting (queued behind a busy connection): withdrawn from the queue', async () => {
    // Not pipelined: a GET would take a place behind the held one rather than wait (pool.ts).
    const { c, start, done } = setup({}, [`127.0.0.1:${upstreamPort}`], { pool: { connections_per_worker: 1, pipeline_plaintext: false } });
    const arrived = nextArrival();
    const first = start(head('GET', '/hold'));
    await arrived;
    const second = start(head('GET', '/plain'));
    expect(second.ex.phase).toBe(Phase.Connecting);
    second.down.ex!.onClientAborted();
    expect(second.ex.phase).toBe(Phase.Done);
    for (const release of held.splice(0)) release();
    await first.whenDone;
    expect(done.map((e) => e.status)).toEqual([0, 200]);
    expect(seen.map((s) => s.path)).toEqual(['/hold']);
    expectIdle(c);
  });

  it('while Sending: the upstream sees the request abandoned', async () => {
    const { c, start } = setup({}, [`127.0.0.1:${upstreamPort}`]);
    const arrived = nextArrival();
    const { ex, down, whenDone } = start(head('GET', '/hold'));
    await arrived;
    expect(ex.phase).toBe(Phase.Sending);
    down.ex!.onClientAborted();
    await whenDone;
    await expect.poll(() => seen[0]?.closedEarly).toBe(true);
    expectIdle(c);
  });

  it('while Responding: the upstream connection is closed mid-body', async () => {
    const { c, start } = setup({}, [`127.0.0.1:${upstreamPort}`]);
    const { ex, down, whenDone } = start(head('GET', '/half'));
    await down.headSeen;
    await expect.poll(() => down.text()).toBe('12345');
    expect(ex.phase).toBe(Phase.Responding);
    down.ex!.onClientAborted();
    await whenDone;
    expect(ex.status).toBe(0);
    await expect.poll(() => seen[0]?.closedEarly).toBe(true);
    expectIdle(c);
  });
});

describe('illegal transitions throw', () => {
  const cases: Array<[Phase, Phase, boolean]> = [
    [Phase.Delaying, Phase.Connecting, true],
    [Phase.Delaying, Phase.Responding, false],
    [Phase.Connecting, Phase.Discarding, false],
    [Phase.Sending, Phase.Connecting, true],
    [Phase.Discarding, Phase.Responding, false],
    [Phase.Responding, Phase.Sending, false],
    [Phase.Responding, Phase.Delaying, false],
    [Phase.Done, Phase.Delaying, false],
    [Phase.Done, Phase.Done, false],
  ];
  it.each(cases)('%s → %s legal: %s', (from, to, legal) => {
    const { start } = setup({}, [`127.0.0.1:${upstreamPort}`]);
    const { ex, down } = start(head('GET', '/plain'), { delayMs: 60_000 });
    const move = ex as unknown as { phase: Phase; to(p: Phase): void };
    move.phase = from;
    if (legal) expect(() => move.to(to)).not.toThrow();
    else expect(() => move.to(to)).toThrow(/illegal transition/);
    move.phase = Phase.Delaying;
    down.ex!.onClientAborted();
  });
});
