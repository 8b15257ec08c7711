// Hop-by-hop header rules (RFC 9110 §7.6.1) shared by the request and response directions:
// the names a Connection header lists, and the response headers a downstream never forwards
// as received. (The request side's own list lives with the upstream head in request_head.ts.)

/**
 * Response headers never forwarded as received: hop-by-hop ones (RFC 9110 §7.6.1), the framing
 * (the downstream frames the body itself) and Date (the server side writes its own).
 */
export function skipResponseHeader(name: string): boolean {
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'transfer-encoding':
    case 'upgrade':
    case 'proxy-connection':
    case 'te':
    case 'trailer':
    case 'content-length':
    case 'date':
      return true;
  }
  return false;
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
