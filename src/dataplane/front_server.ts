// The plaintext front socket that a listener puts before its engines when it must look at a
// connection before choosing where it goes (the protocol detector, the original-destination
// front). It owns the net.Server, its connection limit across reloads, and the connections it
// holds until they are handed on; subclasses decide what happens to each connection.

import net from 'node:net';
import type { ListenerSpec } from '../config/types.js';
import { listenReusePort } from '../net/reuseport.js';

export abstract class FrontServer<Held extends { destroy(): void }> {
  readonly server: net.Server;
  protected spec: ListenerSpec;
  /** Connections this front still holds: nobody else closes them when the worker closes. */
  protected readonly held = new Set<Held>();

  constructor(spec: ListenerSpec, options: net.ServerOpts) {
    this.spec = spec;
    this.server = net.createServer(options, (s) => this.accept(s));
    this.server.maxConnections = spec.maxConnections ?? Infinity;
  }

  protected abstract accept(socket: net.Socket): void;

  /** A new config version on the same socket: new connections follow it. */
  configure(spec: ListenerSpec): void {
    this.spec = spec;
    this.server.maxConnections = spec.maxConnections ?? Infinity;
  }

  /** Binds host:port; `inherit`: the listening fd of the listener this one replaces (reuseport.ts). */
  listen(inherit: number | null = null): Promise<number> {
    return listenReusePort(this.server, this.spec, inherit);
  }

  stopAccepting(): void {
    this.server.close();
  }

  /** The worker is closing: the connections still held here are closed too. */
  closeAll(): void {
    this.server.close();
    for (const h of this.held) h.destroy();
  }
}
