// ALPN names outrigger's own sidecars use between themselves.

/**
 * HTTP/1.1 with pipelining between two outrigger sidecars over mTLS. A client sidecar offers it
 * before `http/1.1`; an inbound strict-engine mTLS listener that selects it promises to (1) serve
 * the requests of the connection concurrently and answer them in order, (2) process nothing after
 * a response that carries `Connection: close`, and (3) close the connection only after answering
 * every request it handed to its app — so the client may send again, whatever its method, every
 * request it wrote after a `Connection: close` response or left unanswered at a clean close between
 * responses. A crash is the exception (the kernel closes a dead sidecar's sockets cleanly too): a
 * request the app was working on may then be sent twice, the same risk as the single retry of a
 * stale keep-alive connection without pipelining. Plain apps never see it: they do not offer or
 * select it, and the connection stays one request at a time.
 */
export const PIPELINE_ALPN = 'outrigger-h1-pipeline';
