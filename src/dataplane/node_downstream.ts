// The node:http side of an exchange, for listeners that terminate TLS in node:tls (inbound
// mTLS: uWS here cannot require or read client certificates). Node frames the response itself
// (Content-Length when known, chunked otherwise) and, unlike uWS, can send trailers.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProxyError } from '../errors.js';
import type { Downstream, DownstreamEvents } from './downstream.js';
import { skipResponseHeader } from './hop_by_hop.js';

export class NodeDownstream implements Downstream {
  private ex: DownstreamEvents | null = null;
  private aborted = false;
  private chunked = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {}

  get complete(): boolean {
    return this.res.writableFinished;
  }

  attach(ex: DownstreamEvents, wantBody: boolean): void {
    this.ex = ex;
    this.res.on('close', () => {
      if (!this.res.writableFinished) {
        this.aborted = true;
        ex.onClientAborted();
      }
    });
    if (wantBody) {
      this.req.on('data', (chunk: Buffer) => ex.onClientData(chunk, false));
      this.req.on('end', () => ex.onClientData(null, true));
    } else {
      this.req.resume();
    }
  }

  cork(task: () => void): void {
    if (this.aborted) {
      task();
      return;
    }
    this.res.cork();
    try {
      task();
    } finally {
      this.res.uncork();
    }
  }

  writeHead(
    status: number,
    reason: string,
    headers: readonly string[],
    connectionNamed: readonly string[] | null,
    _nonAscii: boolean,
    contentLength: number,
    bodiless: boolean,
  ): void {
    if (this.aborted) return;
    const flat: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      if (skipResponseHeader(name) || (connectionNamed !== null && connectionNamed.includes(name))) continue;
      flat.push(name, headers[i + 1]!);
    }
    if (contentLength >= 0 && status !== 204) flat.push('content-length', String(contentLength));
    this.chunked = !bodiless && contentLength < 0;
    // Node writes header values as latin1, which restores the upstream's bytes exactly.
    this.res.writeHead(status, reason, flat);
  }

  writeBody(chunk: Buffer): boolean {
    if (this.aborted) return true;
    // The chunk is a view into a reused read buffer: node may keep it, so copy.
    if (this.res.write(Buffer.from(chunk))) return true;
    this.res.once('drain', () => this.ex?.onDownstreamWritable());
    return false;
  }

  end(trailers: readonly string[] | null): void {
    if (this.aborted) return;
    if (trailers !== null && this.chunked) {
      const t: Record<string, string> = {};
      for (let i = 0; i < trailers.length; i += 2) t[trailers[i]!] = trailers[i + 1]!;
      this.res.addTrailers(t);
    }
    this.res.end();
  }

  reply(err: ProxyError, requestId: string): void {
    if (this.aborted || this.res.headersSent) return;
    const body = JSON.stringify({ error: err.code, message: err.message, request_id: requestId });
    const headers: Record<string, string | number> = {
      'x-outrigger-error': err.code,
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-request-id': requestId,
    };
    if (err.status === 400 || err.status === 431) headers['connection'] = 'close';
    this.res.writeHead(err.status, headers);
    this.res.end(body);
  }

  abort(): void {
    if (!this.aborted) {
      this.aborted = true;
      this.res.destroy();
    }
  }

  pauseBody(): void {
    this.req.pause();
  }

  resumeBody(): void {
    this.req.resume();
  }
}
