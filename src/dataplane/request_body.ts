// The client's request body on its way upstream: framed for the upstream (chunked bodies are
// re-chunked for HTTP/1: the downstream engine has removed the client's chunking; HTTP/2 takes
// the bytes as they are and the trailers apart), kept for replay while a
// retry is still possible (up to the route's max_body_bytes), held while no upstream channel is
// ready, and flow-controlled: the client is paused when the upstream is slow or too much is held.

import type { Downstream } from './downstream.js';
import { forwardableTrailers } from './hop_by_hop.js';
import { BodyFraming } from './request_head.js';
import type { UpstreamChannel } from '../upstream/channel.js';

/** Client bytes held while no upstream channel is ready, before the client is paused. */
const MAX_PENDING_BODY = 256 * 1024;
const CRLF = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

type Part = string | Buffer;

export class RequestBody {
  /** The client sent its whole body (or there is none). */
  done: boolean;
  /** The client is paused (upstream backpressure, or too much held). */
  private paused = false;
  /** Every part sent so far, while a retry may still replay them; null = no replay. */
  private replay: Part[] | null;
  private replayBytes = 0;
  /** Parts waiting for the first channel when no replay copy is kept. */
  private pending: Part[] | null = null;
  private pendingBytes = 0;
  /** Bytes received from the client (accounting). */
  bytesIn = 0;
  /** Unframed bodies (HTTP/2): the client's trailers, forbidden fields removed, once they came; else null. */
  trailers: string[] | null = null;
  private readonly framing: BodyFraming;

  constructor(
    private readonly down: Downstream,
    framing: BodyFraming,
    /** Bytes kept for replay; -1 = none (no retry possible). */
    private readonly replayLimit: number,
    /** The channels take the body as it is (HTTP/2): no chunked framing; trailers kept apart. */
    unframed = false,
  ) {
    this.done = framing === BodyFraming.None;
    this.framing = unframed && framing === BodyFraming.Chunked ? BodyFraming.Length : framing;
    this.replay = replayLimit >= 0 && !this.done ? [] : null;
  }

  /** False once the body outgrew the replay limit: a retry could not resend it. */
  replayable = true;

  /**
   * A piece of the client's body (data null: none), and whether it was the last, with the
   * client's trailers. Sent on `ch` when a channel carries the current try, else held.
   * `headSent`: the response has started (a body arriving later has nowhere to go but `ch`).
   */
  receive(data: Buffer | null, isLast: boolean, trailers: readonly string[] | null, ch: UpstreamChannel | null, headSent: boolean): void {
    if (data !== null) {
      this.bytesIn += data.length;
      if (this.framing === BodyFraming.Chunked) {
        this.send(data.length.toString(16) + CRLF, ch, headSent);
        this.send(data, ch, headSent);
        this.send(CRLF, ch, headSent);
      } else {
        this.send(data, ch, headSent);
      }
    }
    if (isLast) {
      if (this.framing === BodyFraming.Chunked)
        this.send(trailers === null || trailers.length === 0 ? LAST_CHUNK : lastChunkWithTrailers(trailers), ch, headSent);
      else if (trailers !== null && trailers.length > 0) this.trailers = forwardableTrailers(trailers);
      this.done = true;
    }
  }

  private send(part: Part, ch: UpstreamChannel | null, headSent: boolean): void {
    if (this.replay !== null) {
      this.replay.push(part);
      this.replayBytes += part.length;
      if (this.replayBytes > this.replayLimit) {
        // Too large to replay: keep only what the current try still needs.
        this.replayable = false;
        if (ch === null && !headSent) {
          this.pending = this.replay;
          this.pendingBytes = this.replayBytes;
        }
        this.replay = null;
        if (ch === null) {
          if (this.pendingBytes > MAX_PENDING_BODY) this.pause();
          return;
        }
      } else if (ch === null) {
        if (this.replayBytes > MAX_PENDING_BODY) this.pause();
        return;
      }
    }
    if (ch !== null) {
      if (!ch.write(part)) this.pause();
      return;
    }
    if (headSent || this.replay !== null) return;
    (this.pending ??= []).push(part);
    this.pendingBytes += part.length;
    if (this.pendingBytes > MAX_PENDING_BODY) this.pause();
  }

  /** Whether all of the body so far can be sent again (nothing, or a whole replay copy): a refused try may be resent. */
  get resendable(): boolean {
    return this.replay !== null || (this.done && this.bytesIn === 0);
  }

  /** A new try got its channel: what must follow the head on it (the replay copy or the held parts). */
  takeForTry(): readonly Part[] | null {
    const parts = this.replay ?? this.pending;
    this.pending = null;
    this.pendingBytes = 0;
    return parts;
  }

  pause(): void {
    this.setPaused(true);
  }

  resume(): void {
    this.setPaused(false);
  }

  /** Tells the downstream only on a change: a pause or resume it already has is not repeated. */
  private setPaused(paused: boolean): void {
    if (this.paused === paused) return;
    this.paused = paused;
    if (paused) this.down.pauseBody();
    else this.down.resumeBody();
  }
}

/** The last chunk carrying the client's trailers (latin1 bytes, as received), minus forbidden fields. */
function lastChunkWithTrailers(trailers: readonly string[]): Buffer {
  const fields = forwardableTrailers(trailers);
  let out = '0\r\n';
  for (let i = 0; i < fields.length; i += 2) out += `${fields[i]!}: ${fields[i + 1]!}\r\n`;
  return Buffer.from(out + '\r\n', 'latin1');
}
