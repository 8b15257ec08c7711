// The upstream connection's state machine (CONNECTING → IDLE ⇄ BUSY → CLOSED) against real
// 127.0.0.1 servers, with the ticker on an injected clock: every legal transition through the
// public API, and every illegal one throwing.

import { afterEach, describe, expect, it } from 'vitest';
import { checkTransition, ConnState, UpstreamConnection, type ConnectionOwner } from '../../src/upstream/connection.js';
import { closedPort, rawUpstream, RecordingRequest, respond, type RawUpstream, type ReceivedRequest } from './upstream_fixture.js';
import { manualTicker } from './manual_clock.js';

/** What the connection told its pool, in order. */
function recordingOwner(): ConnectionOwner & { readonly events: string[] } {
  const events: string[] = [];
  const record = (event: string) => (): void => {
    events.push(event);
  };
  return {
    events,
    onConnected: record('connected'),
    onReusable: record('reusable'),
    onClosed: record('closed'),
    onSlot: record('slot'),
    redispatch: record('redispatch'),
    onPeerClosing: record('peer closing'),
    onPipelineProven: record('pipeline proven'),
    onPipelineLost: record('pipeline lost'),
    onPipelineMoved: record('pipeline moved'),
    pipeliningProven: false,
  };
}

const ALL = [ConnState.Connecting, ConnState.Idle, ConnState.Busy, ConnState.Closed] as const;
const LEGAL = new Set(['CONNECTING→BUSY', 'CONNECTING→IDLE', 'CONNECTING→CLOSED', 'IDLE→BUSY', 'IDLE→CLOSED', 'BUSY→IDLE', 'BUSY→CLOSED']);

let upstream: RawUpstream | null = null;
const conns: UpstreamConnection[] = [];

afterEach(async () => {
  for (const c of conns.splice(0)) c.destroy();
  await upstream?.close();
  upstream = null;
});

function connect(port: number, owner: ConnectionOwner, connectTimeoutMs = 1_000, t = manualTicker()): UpstreamConnection {
  const c = new UpstreamConnection(owner, '127.0.0.1', port, t.ticker, connectTimeoutMs);
  conns.push(c);
  return c;
}

describe('UpstreamConnection state machine', () => {
  it('allows exactly the transitions in its table; every other one throws', () => {
    for (const from of ALL) {
      for (const to of ALL) {
        if (LEGAL.has(`${from}→${to}`)) expect(checkTransition(7, from, to)).toBe(to);
        else expect(() => checkTransition(7, from, to), `${from} → ${to}`).toThrow(`upstream connection 7: illegal transition ${from} → ${to}`);
      }
    }
  });

  it('CONNECTING → BUSY → IDLE → BUSY → IDLE: a request assigned while connecting, then reuse', async () => {
    const seen: ReceivedRequest[] = [];
    upstream = await rawUpstream((r) => {
      seen.push(r);
      respond(r.socket, r.line);
    });
    const owner = recordingOwner();
    const t = manualTicker();
    const conn = connect(upstream.port, owner, 1_000, t);
    expect(conn.state).toBe(ConnState.Connecting);
    const first = new RecordingRequest('/first');
    conn.assign(first);
    expect(conn.state).toBe(ConnState.Connecting); // told once connected
    await expect.poll(() => first.ended).toBe(true);
    expect(first.status).toBe(200);
    expect(first.body).toBe('GET /first HTTP/1.1');
    expect(conn.state).toBe(ConnState.Idle);
    expect(conn.lastUsed).toBe(t.ticker.now);
    expect(owner.events).toEqual(['connected', 'reusable']);
    expect(conn.reused).toBe(false);

    const second = new RecordingRequest('/second');
    conn.assign(second);
    expect(conn.state).toBe(ConnState.Busy); // synchronously: the connection is open
    expect(second.channels).toEqual([conn]);
    expect(conn.reused).toBe(true);
    await expect.poll(() => second.ended).toBe(true);
    expect(conn.state).toBe(ConnState.Idle);
    expect(seen.map((r) => r.nth)).toEqual([1, 2]); // one socket, two requests
    expect(owner.events).toEqual(['connected', 'reusable', 'reusable']);
  });

  it('CONNECTING → IDLE when it connects with no request; IDLE → CLOSED on destroy', async () => {
    upstream = await rawUpstream(() => {});
    const owner = recordingOwner();
    const conn = connect(upstream.port, owner);
    await expect.poll(() => conn.state).toBe(ConnState.Idle);
    expect(owner.events).toEqual(['connected', 'reusable']);
    conn.destroy();
    expect(conn.state).toBe(ConnState.Closed);
    conn.destroy(); // once closed, destroy is a no-op
    expect(owner.events).toEqual(['connected', 'reusable', 'closed']);
  });

  it('IDLE → CLOSED when the upstream closes an idle connection', async () => {
    upstream = await rawUpstream(() => {});
    const owner = recordingOwner();
    const conn = connect(upstream.port, owner);
    await expect.poll(() => upstream!.sockets.size).toBe(1);
    await expect.poll(() => conn.state).toBe(ConnState.Idle);
    for (const s of upstream.sockets) s.end();
    await expect.poll(() => conn.state).toBe(ConnState.Closed);
    expect(owner.events).toEqual(['connected', 'reusable', 'closed']);
  });

  it('CONNECTING → CLOSED on destroy: the request is not told', async () => {
    upstream = await rawUpstream(() => {});
    const owner = recordingOwner();
    const conn = connect(upstream.port, owner);
    const req = new RecordingRequest();
    conn.assign(req);
    conn.destroy();
    expect(conn.state).toBe(ConnState.Closed);
    expect(owner.events).toEqual(['closed']);
    expect(req.error).toBeNull();
  });

  it('CONNECTING → CLOSED when the connect is refused: upstream_connect_failed', async () => {
    const owner = recordingOwner();
    const conn = connect(await closedPort(), owner);
    const req = new RecordingRequest();
    conn.assign(req);
    await expect.poll(() => req.error?.code).toBe('upstream_connect_failed');
    expect(req.error?.message).toMatch(/ECONNREFUSED/);
    expect(conn.state).toBe(ConnState.Closed);
    expect(owner.events).toEqual(['closed']);
  });

  it('CONNECTING → CLOSED at the connect timeout, on the injected clock', async () => {
    upstream = await rawUpstream(() => {});
    const owner = recordingOwner();
    const t = manualTicker();
    const conn = connect(upstream.port, owner, 500, t);
    const req = new RecordingRequest();
    conn.assign(req);
    expect(conn.deadline).toBe(t.clock.now() + 500);
    t.advance(499);
    expect(conn.state).toBe(ConnState.Connecting);
    t.advance(1); // before the connect event can have run: this turn of the event loop
    expect(conn.state).toBe(ConnState.Closed);
    expect(req.error?.code).toBe('upstream_connect_failed');
    expect(req.error?.message).toBe('connect timeout to 127.0.0.1:' + upstream.port);
    expect(t.ticker.size).toBe(0);
  });

  it('a connection that connects in time leaves the ticker (no timeout fires later)', async () => {
    upstream = await rawUpstream((r) => respond(r.socket));
    const t = manualTicker();
    const conn = connect(upstream.port, recordingOwner(), 500, t);
    expect(t.ticker.has(conn)).toBe(true);
    await expect.poll(() => conn.state).toBe(ConnState.Idle);
    expect(t.ticker.has(conn)).toBe(false);
    t.advance(10_000);
    expect(conn.state).toBe(ConnState.Idle);
  });

  it('BUSY → CLOSED when the upstream closes mid-response: upstream_reset, with the channel', async () => {
    upstream = await rawUpstream((r) => r.socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial'));
    const owner = recordingOwner();
    const conn = connect(upstream.port, owner);
    const req = new RecordingRequest();
    conn.assign(req);
    await expect.poll(() => req.error?.code).toBe('upstream_reset');
    expect(req.errorChannel).toBe(conn);
    expect(req.status).toBe(200);
    expect(req.body).toBe('partial');
    expect(req.ended).toBe(false);
    expect(conn.state).toBe(ConnState.Closed);
    expect(owner.events).toEqual(['connected', 'closed']);
  });

  it('BUSY → CLOSED after a response with connection: close (never pooled)', async () => {
    upstream = await rawUpstream((r) => respond(r.socket, 'bye', true));
    const owner = recordingOwner();
    const conn = connect(upstream.port, owner);
    const req = new RecordingRequest();
    conn.assign(req);
    await expect.poll(() => req.ended).toBe(true);
    expect(req.body).toBe('bye');
    expect(conn.state).toBe(ConnState.Closed);
    expect(owner.events).toEqual(['connected', 'closed']);
  });

  it('BUSY → CLOSED on an invalid response: upstream_protocol_error', async () => {
    upstream = await rawUpstream((r) => r.socket.write('HTTP/1.1 2OO OK\r\n\r\n'));
    const conn = connect(upstream.port, recordingOwner());
    const req = new RecordingRequest();
    conn.assign(req);
    await expect.poll(() => req.error?.code).toBe('upstream_protocol_error');
    expect(conn.state).toBe(ConnState.Closed);
  });

  it('IDLE → CLOSED when bytes arrive on an idle connection (never reused)', async () => {
    upstream = await rawUpstream((r) => respond(r.socket));
    const owner = recordingOwner();
    const conn = connect(upstream.port, owner);
    const req = new RecordingRequest();
    conn.assign(req);
    await expect.poll(() => conn.state).toBe(ConnState.Idle);
    for (const s of upstream.sockets) s.write('HTTP/1.1 200 OK\r\n');
    await expect.poll(() => conn.state).toBe(ConnState.Closed);
    expect(owner.events).toEqual(['connected', 'reusable', 'closed']);
  });

  it('illegal transitions reachable through the API throw: BUSY → BUSY and CLOSED → BUSY', async () => {
    upstream = await rawUpstream(() => {}); // never answers: the connection stays busy
    const conn = connect(upstream.port, recordingOwner());
    conn.assign(new RecordingRequest());
    await expect.poll(() => conn.state).toBe(ConnState.Busy);
    expect(() => conn.assign(new RecordingRequest())).toThrow(/illegal transition BUSY → BUSY/);
    conn.destroy();
    expect(() => conn.assign(new RecordingRequest())).toThrow(/illegal transition CLOSED → BUSY/);
  });
});
