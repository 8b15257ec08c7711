// The HTTP/2 side of a listener, built with its first HTTP/2 connection: node:http2 (with
// node:http under it) and our server and downstream cost ~1 MiB per worker thread, and with the
// default `protocol: auto` most listeners never see an HTTP/2 client. A `protocol: http2`
// listener loads the module while it is built (loadH2(), awaited by listener.ts's loadEngine); on
// `auto` the first HTTP/2 connection waits, paused, for the import (the bytes read so far stay
// in the socket: node:http2 takes them first, as after the preface check).

import type { Socket } from 'node:net';
import type { ListenerSpec } from '../../config/types.js';
import type { H2Handlers, H2Server } from './server.js';

type H2Module = typeof import('./server.js');

let loaded: H2Module | null = null;
let loading: Promise<H2Module> | null = null;

/** Loads the HTTP/2 server module (once per thread). */
export function loadH2(): Promise<H2Module> {
  return (loading ??= import('./server.js').then((m) => (loaded = m)));
}

export class LazyH2 {
  private server: H2Server | null = null;
  private stopping = false;

  constructor(
    private spec: ListenerSpec,
    private readonly handlers: H2Handlers,
  ) {}

  /** Serves HTTP/2 on `socket` (its first bytes read and put back, or a TLS socket that chose h2). */
  handoff(socket: Socket, peer: string | null): void {
    const now = this.get();
    if (now !== null) {
      now.handoff(socket, peer);
      return;
    }
    if (this.stopping) {
      socket.destroy();
      return;
    }
    // Until node:http2 takes the socket, nobody else listens to it: an error destroys it quietly.
    socket.pause();
    socket.on('error', noop);
    loadH2().then(
      () => {
        socket.off('error', noop);
        const later = this.get();
        if (later === null) socket.destroy();
        else if (!socket.destroyed) later.handoff(socket, peer);
      },
      () => socket.destroy(),
    );
  }

  /** The server, built now if the module is loaded; null before that, or once stopping. */
  private get(): H2Server | null {
    if (this.server === null && loaded !== null && !this.stopping) this.server = new loaded.H2Server(this.spec, this.handlers);
    return this.server;
  }

  /** A new config version for the same listener (h2/server.ts's configure). */
  configure(spec: ListenerSpec): void {
    this.spec = spec;
    this.server?.configure(spec);
  }

  /** Stops taking connections; open sessions get GOAWAY and close once their streams end. */
  stopAccepting(): void {
    this.stopping = true;
    this.server?.stopAccepting();
  }

  /** Closes every session now. */
  closeAll(): void {
    this.stopping = true;
    this.server?.closeAll();
  }

  /** Open HTTP/2 connections (0 before the first). */
  get connections(): number {
    return this.server?.connections ?? 0;
  }
}

function noop(): void {}
