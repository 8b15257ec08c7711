// Hop-by-hop header rules (RFC 9110 §7.6.1) shared by the request and response directions:
// the names a Connection header lists, and the response headers a downstream never forwards
// as received. (The request side's further rules live with the upstream head in request_head.ts.)

/** Hop-by-hop in both directions (RFC 9110 §7.6.1): never forwarded as received. */
export function hopByHop(name: string): boolean {
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'transfer-encoding':
    case 'upgrade':
    case 'proxy-connection':
      return true;
  }
  return false;
}

/**
 * Response headers never forwarded as received: hop-by-hop ones (RFC 9110 §7.6.1), the framing
 * (the downstream frames the body itself) and Date (the server side writes its own).
 */
export function skipResponseHeader(name: string): boolean {
  switch (name) {
    case 'te':
    case 'trailer':
    case 'content-length':
    case 'date':
      return true;
  }
  return hopByHop(name);
}

/**
 * Whether a downstream drops response header `name` from the head it writes: skipResponseHeader
 * names and those the response's Connection header lists. `keepDateAndTrailer`: engines that
 * write the head bytes themselves (node, strict) keep the app's Date (they add none) and its
 * Trailer announcement (they send the trailers).
 */
export function dropResponseHeader(name: string, connectionNamed: readonly string[] | null, keepDateAndTrailer: boolean): boolean {
  if (keepDateAndTrailer && (name === 'date' || name === 'trailer')) return false;
  return skipResponseHeader(name) || (connectionNamed !== null && connectionNamed.includes(name));
}

/**
 * Fields that never travel in a trailer section (RFC 9110 §6.5.1, §6.5.2), in either direction:
 * framing, routing, hop-by-hop, and what the proxy itself sets. A trailer may not change how a
 * message was framed or routed, and a recipient such as Node's llhttp fails a response whose
 * trailers carry a Content-Length or a Transfer-Encoding ("Content-Length can't be present with
 * Transfer-Encoding"), so a proxy that passed them on would break the message it forwards.
 */
const FORBIDDEN_TRAILERS = new Set([
  'content-length',
  'transfer-encoding',
  'host',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'expect',
  'x-forwarded-client-cert',
]);

/** The trailer fields a proxy passes on: flat [name, value, ...], names lower-cased, forbidden ones left out. */
export function forwardableTrailers(trailers: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < trailers.length; i += 2) {
    const name = trailers[i]!.toLowerCase();
    if (!FORBIDDEN_TRAILERS.has(name)) out.push(name, trailers[i + 1]!);
  }
  return out;
}

/** The bytes of an interim (1xx) response head, the app's Date kept, as latin1 text. */
export function informationalHead(status: number, reason: string, headers: readonly string[]): string {
  let h = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (skipResponseHeader(name) && name !== 'date') continue;
    h += `${name}: ${headers[i + 1]!}\r\n`;
  }
  return h + '\r\n';
}

/**
 * Header names listed in Connection header(s), other than close/keep-alive: they are hop-by-hop
 * too (RFC 9110 §7.6.1), in requests and responses alike. Null (no allocation) when there are none.
 */
export function connectionNamed(headers: readonly string[]): string[] | null {
  let named: string[] | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'connection') continue;
    for (const t of headers[i + 1]!.split(',')) {
      const tok = t.trim().toLowerCase();
      if (tok !== '' && tok !== 'close' && tok !== 'keep-alive') (named ??= []).push(tok);
    }
  }
  return named;
}
