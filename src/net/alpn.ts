// ALPN names outrigger's own sidecars use between themselves.

/**
 * HTTP/1.1 with pipelining between two outrigger sidecars over mTLS. A client sidecar offers it
 * before `http/1.1`; an inbound strict-engine mTLS listener that selects it promises to (1) serve
 * the requests of the connection concurrently and answer them in order, and (2) process nothing
 * after a response that carries `Connection: close` — so the client may send every request it
 * wrote after that response again, whatever its method. Plain apps never see it: they do not
 * offer or select it, and the connection stays one request at a time.
 */
export const PIPELINE_ALPN = 'outrigger-h1-pipeline';
