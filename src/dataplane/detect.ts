// Protocol detection on a `protocol: auto` listener with `tcp_fallback` (issue 15), as Linkerd's
// inbound proxy does on one port: HTTP (HTTP/1 or HTTP/2) goes to the listener's HTTP server,
// anything else to the fallback cluster as opaque TCP (tcp_proxy.ts).
//
// Plaintext listeners: a front socket reads each connection's first bytes once, with
// `detect_timeout_ms`: the HTTP/2 preface or the start of an HTTP/1 request line (a method token,
// SP, then `/`, `*` or `http(s)://`) is HTTP; any other byte is opaque TCP; so is silence until the timeout (server-speaks-first
// protocols: MySQL, SMTP... the client waits for the server's greeting, which then arrives after
// the timeout, not never). The bytes read are put back (`unshift`) for whichever side takes over.
// A TLS ClientHello on a plaintext listener is the app's own TLS: opaque, passed through.
// A connection being read counts in flight for a drain (`started`/`ended`): a client may have
// sent half a request line when the drain begins; if it is still undecided when the grace period
// ends, `closeAll` closes it.
//
// TLS listeners read nothing in plaintext: the handshake is theirs, and ALPN decides —
// `outrigger-tcp/<port>` (what a client sidecar's tcp hop offers) is opaque TCP to the fallback
// cluster, after the same identity check and authorization as on a tcp listener; `h2` and
// `http/1.1` (or no ALPN) are HTTP, and so is a client sidecar's pipelined HTTP/1.1
// (PIPELINE_ALPN, chosen first on a strict-engine mTLS listener). No timer, no extra read.

import net from 'node:net';
import type { ListenerSpec } from '../config/types.js';
import { PIPELINE_ALPN } from '../net/alpn.js';
import { FrontServer } from './front_server.js';
import { TCHAR } from './h1/parse.js';
import { prefaceMatch } from './h2/preface.js';
import type { RoutedSocket } from './original_dst.js';
import { ALPN_PORT } from './tcp_proxy.js';

/** What a connection was found to speak. */
export type Detected = 'http1' | 'http2' | 'opaque';

/** Connections by what they were found to speak, and detection timeouts, of one listener on one worker (/stats, /metrics). */
export class DetectCounters {
  readonly byProtocol = new Map<Detected, number>();
  /** Plaintext connections that sent no deciding byte within detect_timeout_ms (then opaque). */
  timeouts = 0;

  count(p: Detected): void {
    this.byProtocol.set(p, (this.byProtocol.get(p) ?? 0) + 1);
  }
}

/** The longest method token we wait for (the registered methods are at most 17 bytes long). */
const MAX_METHOD = 24;
/** Absolute-form request targets (a client that takes us for a forward proxy). */
const ABSOLUTE = [Buffer.from('http://', 'latin1'), Buffer.from('https://', 'latin1')];

/** What the first bytes `b` speak, or null while they could still be either. */
export function classify(b: Buffer): Detected | null {
  const preface = prefaceMatch(b);
  if (preface === 2) return 'http2';
  if (preface === 1) return null;
  const n = Math.min(b.length, MAX_METHOD + 1);
  for (let i = 0; i < n; i++) {
    if (b[i] === 0x20) return i > 0 ? requestTarget(b.subarray(i + 1)) : 'opaque';
    if (TCHAR[b[i]!] === 0) return 'opaque';
  }
  return b.length > MAX_METHOD ? 'opaque' : null;
}

/**
 * After `METHOD SP`: an origin-form (`/`), asterisk-form (`*`) or absolute-form (`http://`,
 * `https://`) target makes it an HTTP/1 request line. A token and a space alone would take text
 * protocols for HTTP: redis inline commands (`GET key`), memcached (`get key`).
 */
function requestTarget(t: Buffer): Detected | null {
  if (t.length === 0) return null;
  if (t[0] === 0x2f || t[0] === 0x2a) return 'http1';
  let partial = false;
  for (const form of ABSOLUTE) {
    const n = Math.min(t.length, form.length);
    if (t.subarray(0, n).equals(form.subarray(0, n))) {
      if (n === form.length) return 'http1';
      partial = true;
    }
  }
  return partial ? null : 'opaque';
}

/**
 * The ALPN choice of a TLS listener with `tcp_fallback`: HTTP as before (`h2`, then `http/1.1`),
 * else a client sidecar's `outrigger-tcp/<port>`; nothing else (the handshake is refused).
 */
export function selectAlpn({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes('h2')) return 'h2';
  if (protocols.includes('http/1.1')) return 'http/1.1';
  return protocols.find((p) => ALPN_PORT.test(p));
}

/** selectAlpn on a strict-engine mTLS listener: a client sidecar's pipelined HTTP/1.1 comes first. */
export function selectAlpnPipelined(offer: { protocols: string[] }): string | undefined {
  return offer.protocols.includes(PIPELINE_ALPN) ? PIPELINE_ALPN : selectAlpn(offer);
}

/** What a TLS connection's ALPN choice makes it, and the original destination port of an opaque one. */
export function alpnDetected(alpn: string | false | null): { protocol: Detected; port: number } {
  const tcp = typeof alpn === 'string' ? ALPN_PORT.exec(alpn) : null;
  if (tcp !== null) return { protocol: 'opaque', port: Number(tcp[1]) };
  return { protocol: alpn === 'h2' ? 'http2' : 'http1', port: 0 };
}

/** Where a plaintext connection goes once it is classified (the socket comes paused, its bytes put back). */
export interface DetectTargets {
  /** The listener's HTTP server takes the connection (it tells HTTP/2 from HTTP/1 by the preface itself). */
  http(socket: net.Socket): void;
  /** The fallback cluster takes it as opaque TCP. */
  opaque(socket: net.Socket): void;
  /** A connection is being read: it counts in flight (a drain waits for it) until `ended`. */
  started(): void;
  /** Its reading is over: it was handed on (and now counts as its protocol counts), or closed undecided. */
  ended(): void;
}

/** The front socket of a plaintext listener with `tcp_fallback`: every connection is classified once, then handed on. */
export class Detector extends FrontServer<net.Socket> {
  // `held`: connections still being read; nobody else holds them yet.

  constructor(
    spec: ListenerSpec,
    readonly counters: DetectCounters,
    private readonly targets: DetectTargets,
  ) {
    // allowHalfOpen: an opaque stream's half-close is the TCP proxy's to pass on.
    super(spec, { allowHalfOpen: true, noDelay: true });
  }

  protected accept(socket: net.Socket): void {
    this.take(socket);
  }

  /**
   * Classifies a connection (accepted here, or handed on by original_dst.ts's front, paused), then
   * hands it on. One to an opaque port (`tcp_fallback.opaque_ports`: its original destination's
   * port, or this listener's own) is opaque at once: nothing is read or awaited.
   */
  take(socket: net.Socket): void {
    const port = (socket as RoutedSocket).destination?.port ?? socket.localPort;
    if (port !== undefined && this.spec.tcpFallback!.opaquePorts.includes(port)) {
      this.counters.count('opaque');
      this.targets.started();
      this.targets.opaque(socket);
      this.targets.ended();
      return;
    }
    let got: Buffer | null = null;
    this.held.add(socket);
    this.targets.started();
    const done = (p: Detected): void => {
      clearTimeout(timer);
      this.held.delete(socket);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', noop);
      socket.pause();
      if (got !== null) socket.unshift(got);
      this.counters.count(p);
      if (p === 'opaque') {
        // The tcp proxy counts it in flight from here.
        this.targets.opaque(socket);
        this.targets.ended();
      } else {
        // The HTTP server parses the bytes put back on the next turns: a request among them is
        // in flight by then (exchanges count), so a drain does not look again before.
        this.targets.http(socket);
        setImmediate(() => this.targets.ended());
      }
    };
    const onData = (chunk: Buffer): void => {
      got = got === null ? chunk : Buffer.concat([got, chunk]);
      const p = classify(got);
      if (p !== null) done(p);
    };
    // A FIN before anything could be decided: nothing to serve or forward.
    const onEnd = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const timer = setTimeout(() => {
      this.counters.timeouts++;
      done('opaque');
    }, this.spec.tcpFallback!.detectTimeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.resume();
    socket.on('error', noop); // 'close' follows; nobody else listens yet
    socket.once('close', () => {
      clearTimeout(timer);
      // Closed undecided (the client left, or the grace period of a drain ended): no longer in flight.
      if (this.held.delete(socket)) this.targets.ended();
    });
  }
}

function noop(): void {}
