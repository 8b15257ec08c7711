// An HTTP/2 request's header block (node:http2's raw [name, value, ...] list, names lower-case,
// values latin1) turned into the neutral inputs of the checks every engine runs
// (request_head.ts readStrictRequestHead): pseudo-headers give method, target and Host; what
// RFC 9113 §8.2.2 calls connection-specific is refused; cookies are joined (§8.2.3). The body's
// framing upstream comes from the stream: a Content-Length when the client sent one, chunked when
// DATA follows without one.

import { ProxyError } from '../../errors.js';
import { BodyFraming, readStrictRequestHead, type RequestHead, type UnderscorePolicy } from '../request_head.js';
import { hopByHop } from '../hop_by_hop.js';

/** What the listener needs besides the checked head. */
export interface H2Head {
  readonly head: RequestHead;
  /** `expect: 100-continue` was sent: answer the interim 100 at once (the expectation is not forwarded). */
  readonly expectContinue: boolean;
}

/**
 * Checks an HTTP/2 request head. `endStream`: the HEADERS frame ended the stream (no body).
 * Throws ProxyError (bad_request, headers_too_large, expectation_failed) for what must be refused.
 */
export function readH2RequestHead(raw: readonly string[], endStream: boolean, maxHeadBytes: number, underscores: UnderscorePolicy): H2Head {
  let method = '';
  let path = '';
  let authority: string | null = null;
  let scheme = '';
  let protocol = false;
  let cookie: string | null = null;
  let hostHeader: string | null = null;
  let expectContinue = false;
  // Host first (from :authority), where an HTTP/1.1 client puts it.
  const headers: string[] = ['host', ''];
  let bytes = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    bytes += name.length + value.length + 4;
    if (name.charCodeAt(0) === 0x3a /* : */) {
      switch (name) {
        case ':method':
          method = value;
          break;
        case ':path':
          path = value;
          break;
        case ':authority':
          authority = value;
          break;
        case ':scheme':
          scheme = value;
          break;
        case ':protocol':
          protocol = true;
          break;
        default:
          throw new ProxyError('bad_request', `unknown pseudo-header ${name.slice(0, 32)}`);
      }
      continue;
    }
    // RFC 9113 §8.2.2: connection-specific fields make a request malformed.
    if (hopByHop(name) || name === 'http2-settings') throw new ProxyError('bad_request', `connection-specific header "${name}" in an HTTP/2 request`);
    switch (name) {
      case 'te':
        if (value !== 'trailers') throw new ProxyError('bad_request', 'te other than "trailers" in an HTTP/2 request');
        break;
      case 'cookie':
        // §8.2.3: split cookie fields are joined with "; " before going to an HTTP/1.1 hop.
        cookie = cookie === null ? value : `${cookie}; ${value}`;
        continue;
      case 'host':
        if (hostHeader !== null) throw new ProxyError('bad_request', 'more than one Host header');
        hostHeader = value;
        continue;
      case 'expect':
        if (value.toLowerCase() !== '100-continue') throw new ProxyError('expectation_failed', 'unsupported expectation: only 100-continue');
        expectContinue = true;
        break;
    }
    headers.push(name, value);
  }
  if (method === 'CONNECT' || protocol) throw new ProxyError('bad_request', 'CONNECT is not offered');
  if (method === '' || path === '' || scheme === '') throw new ProxyError('bad_request', 'missing :method, :path or :scheme');
  // §8.3.1: Host and :authority must name the same thing; :authority wins when both are sent.
  if (authority !== null && hostHeader !== null && authority !== hostHeader) throw new ProxyError('bad_request', 'Host differs from :authority');
  const host = authority ?? hostHeader;
  if (host === null) headers.splice(0, 2);
  else headers[1] = host;
  if (cookie !== null) headers.push('cookie', cookie);
  const head = readStrictRequestHead(method, path, 1, headers, bytes, maxHeadBytes, underscores);
  // DATA follows without a Content-Length: the upstream hop gets it chunked (with the client's trailers).
  if (!endStream && head.contentLength < 0) head.framing = BodyFraming.Chunked;
  return { head, expectContinue };
}
