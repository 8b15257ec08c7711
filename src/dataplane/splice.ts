// Two connected sockets made into one opaque byte stream (raw TCP through the sidecar, tcp_proxy.ts;
// a WebSocket tunnel after the upstream's 101, upgrade.ts):
// bytes are piped both ways unchanged with backpressure (a slow reader pauses the other side's
// reads), a FIN in one direction is passed on while the other keeps flowing (half-close: both
// sockets must be made with allowHalfOpen), a reset on one side becomes a reset on the other, and
// a stream with no byte either way for `idleTimeoutMs` is closed. Touches only the two sockets.
// The client side may be any SpliceSocket: a net.Socket, or the uws engine's WebSocket adapter
// (uws_websocket.ts), which speaks WebSocket frames to the tunnel and uWS messages to its client.

import net from 'node:net';
import tls from 'node:tls';
import type { Ticker, Timed, TimerEntry } from '../upstream/ticker.js';

/** How a spliced stream ended: both sides closed normally, one side reset, idle, or closed by the proxy. */
export type SpliceEnd = 'closed' | 'client_reset' | 'upstream_reset' | 'idle_timeout' | 'closed_by_proxy';

/** Where a splice adds the bytes it carries as they pass (a listener's counters, read by /stats while the stream is open). */
export interface SpliceBytes {
  bytesFromClient: number;
  bytesFromUpstream: number;
}

/**
 * The subset of net.Socket a splice (and the upgrade tunnel, upgrade.ts) uses on its client side.
 * 'close' carries whether the side ended abnormally (a reset), as net.Socket's does.
 */
export interface SpliceSocket {
  readonly writable: boolean;
  on(event: 'data', listener: (d: Buffer) => void): this;
  on(event: 'end' | 'drain', listener: () => void): this;
  on(event: 'close', listener: (hadError: boolean) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  off(event: 'data', listener: (d: Buffer) => void): this;
  off(event: 'end' | 'drain', listener: () => void): this;
  off(event: 'close', listener: (hadError: boolean) => void): this;
  pause(): this;
  resume(): this;
  write(data: Buffer): boolean;
  end(): this;
  end(data: string, encoding: BufferEncoding): this;
  /** Ends the writable side once what was written is out, then closes. */
  destroySoon(): void;
  destroy(): this;
  setTimeout(ms: number): this;
}

export class Splice implements Timed, SpliceBytes {
  deadline = 0;
  timerEntry: TimerEntry | null = null;
  /** This stream's own bytes (the access log's). */
  bytesFromClient = 0;
  bytesFromUpstream = 0;
  /** The first reason the stream started to end ('closed' until one side reset or the proxy closed it). */
  ending: SpliceEnd = 'closed';
  /** Time of the last byte either way (idle timeout), on the ticker's clock. */
  private lastActive: number;
  private clientClosed = false;
  private upstreamClosed = false;

  /**
   * Takes over both sockets (connected, no 'data' listener of their own) and resumes the client.
   * `ended` runs once, when both are closed.
   */
  constructor(
    private readonly client: SpliceSocket,
    private readonly upstream: net.Socket,
    private readonly ticker: Ticker,
    private readonly idleTimeoutMs: number,
    totals: SpliceBytes,
    private readonly ended: (s: Splice) => void,
  ) {
    this.lastActive = ticker.now;
    client.on('data', (d: Buffer) => {
      this.bytesFromClient += d.length;
      totals.bytesFromClient += d.length;
      this.lastActive = this.ticker.now;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on('data', (d: Buffer) => {
      this.bytesFromUpstream += d.length;
      totals.bytesFromUpstream += d.length;
      this.lastActive = this.ticker.now;
      if (!client.write(d)) upstream.pause();
    });
    upstream.on('drain', () => client.resume());
    client.on('drain', () => upstream.resume());
    // Half-close: the FIN goes on; the other direction keeps flowing until its own FIN.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    // 'close' follows every 'error' (a reset is ECONNRESET, then close with hadError).
    client.on('error', noop);
    upstream.on('error', noop);
    client.on('close', (hadError: boolean) => this.sideClosed(true, hadError));
    upstream.on('close', (hadError: boolean) => this.sideClosed(false, hadError));
    if (idleTimeoutMs > 0) {
      this.deadline = this.lastActive + idleTimeoutMs;
      ticker.add(this);
    }
    client.resume();
  }

  private sideClosed(isClient: boolean, hadError: boolean): void {
    if (isClient) this.clientClosed = true;
    else this.upstreamClosed = true;
    const other = isClient ? this.upstream : this.client;
    if (hadError) {
      if (this.ending === 'closed') this.ending = isClient ? 'client_reset' : 'upstream_reset';
      resetSocket(other);
    }
    if (!this.clientClosed || !this.upstreamClosed) return;
    this.ticker.delete(this);
    this.ended(this);
  }

  /** Closes both sides now (drain grace period over, worker closing). */
  destroy(why: SpliceEnd = 'closed_by_proxy'): void {
    if (this.ending === 'closed') this.ending = why;
    this.client.destroy();
    this.upstream.destroy();
  }

  onDeadline(now: number): void {
    const due = this.lastActive + this.idleTimeoutMs;
    if (now < due) {
      // Activity since it was armed: the timer moves (no timer work per byte).
      this.deadline = due;
      this.ticker.add(this);
      return;
    }
    this.deadline = 0;
    this.destroy('idle_timeout');
  }
}

/**
 * A reset on one side becomes a reset on the other: an RST on TCP. TLS has no reset of its own: a
 * TLS socket made over a net.Socket we hold (every accepted one; the tcp proxy's outgoing ones)
 * has the TCP connection under it reset, others are closed abruptly. A side that is not a socket
 * (the uws WebSocket adapter) is closed abruptly: its destroy() is its reset.
 */
export function resetSocket(s: SpliceSocket): void {
  if (!(s instanceof net.Socket)) {
    s.destroy();
    return;
  }
  if (s.destroyed) return;
  // `_parent`: the net.Socket a TLSSocket was made over (node's tls keeps it there; not in @types/node).
  const tcp = s instanceof tls.TLSSocket ? (s as tls.TLSSocket & { _parent?: net.Socket | null })._parent : s;
  if (tcp instanceof net.Socket && !tcp.destroyed) tcp.resetAndDestroy();
  s.destroy();
}

function noop(): void {}
