// Typed errors with stable codes (DESIGN.md §6). Every layer throws or reports these; one place
// (dataplane/local_reply.ts) turns them into responses carrying `x-outrigger-error: <code>`.
// Messages gain context as they rise; codes never change once published.

export type ErrorCode =
  | 'bad_request'
  | 'headers_too_large'
  | 'request_timeout'
  | 'no_route'
  | 'unauthorized'
  | 'rate_limited'
  | 'upstream_connect_failed'
  | 'upstream_reset'
  | 'upstream_protocol_error'
  | 'upstream_tls_failed'
  | 'upstream_identity_mismatch'
  | 'no_healthy_endpoint'
  | 'overflow'
  | 'timeout'
  | 'fault_injected'
  | 'draining'
  | 'internal_error'
  | 'expectation_failed'
  | 'upgrade_refused'
  | 'destination_not_allowed';

/** HTTP status for each code: the whole mapping in one table. */
export const STATUS_OF: Readonly<Record<ErrorCode, number>> = Object.freeze({
  bad_request: 400,
  headers_too_large: 431,
  request_timeout: 408,
  no_route: 404,
  unauthorized: 403,
  rate_limited: 429,
  upstream_connect_failed: 502,
  upstream_reset: 502,
  upstream_protocol_error: 502,
  upstream_tls_failed: 502,
  upstream_identity_mismatch: 502,
  no_healthy_endpoint: 503,
  overflow: 503,
  timeout: 504,
  fault_injected: 503,
  draining: 503,
  internal_error: 500,
  expectation_failed: 417,
  upgrade_refused: 403,
  // `outbound_policy: registry_only` refused the original destination: a policy decision about
  // this caller's request, not a failing upstream (there is none), so 403 as Envoy's RBAC and
  // Istio's REGISTRY_ONLY answer, not 502 (which would invite retries and page the wrong team).
  destination_not_allowed: 403,
});

/**
 * What a caller is told for each code with `node.error_detail: minimal` (the default): the code
 * and a request id, never endpoints, parser messages, listener names or peers (those go to the
 * access log's `detail`).
 */
export const PUBLIC_MESSAGE: Readonly<Record<ErrorCode, string>> = Object.freeze({
  bad_request: 'the request is malformed',
  headers_too_large: 'the request head is too large',
  request_timeout: 'the request did not arrive in time',
  no_route: 'no route matches the request',
  unauthorized: 'the caller is not allowed to make this request',
  rate_limited: 'too many requests',
  upstream_connect_failed: 'the upstream service could not be reached',
  upstream_reset: 'the upstream service closed the connection',
  upstream_protocol_error: 'the upstream service sent an invalid response',
  upstream_tls_failed: 'the TLS handshake with the upstream service failed',
  upstream_identity_mismatch: 'the upstream service did not prove the expected identity',
  no_healthy_endpoint: 'no healthy upstream endpoint',
  overflow: 'the upstream service is at its concurrency limit',
  timeout: 'the upstream service did not answer in time',
  fault_injected: 'fault injected',
  draining: 'the proxy is shutting down',
  internal_error: 'the proxy failed while handling the request',
  expectation_failed: 'only the expectation 100-continue is supported',
  upgrade_refused: 'this route does not allow the requested protocol upgrade',
  destination_not_allowed: 'the destination is not a service of the mesh and this listener allows only those (outbound_policy: registry_only)',
});

/** The JSON body of a local reply: the detailed message only when `detail` (node.error_detail: full). */
export function localReplyBody(err: ProxyError, requestId: string | null, detail: boolean): string {
  const message = detail ? err.message : PUBLIC_MESSAGE[err.code];
  return JSON.stringify(requestId === null ? { error: err.code, message } : { error: err.code, message, request_id: requestId });
}

export class ProxyError extends Error {
  readonly code: ErrorCode;
  /** A status other than the code's usual one (fault injection answers with the configured status). */
  private readonly statusOverride: number;
  constructor(code: ErrorCode, message: string, status = 0) {
    super(message);
    this.name = 'ProxyError';
    this.code = code;
    this.statusOverride = status;
  }
  get status(): number {
    return this.statusOverride !== 0 ? this.statusOverride : STATUS_OF[this.code];
  }
  /**
   * An exception that is not a ProxyError (a bug in the proxy, not the client's fault): a 500
   * `internal_error` whose message (access log, error_detail: full) carries what was thrown.
   */
  static internal(thrown: unknown): ProxyError {
    const e = thrown instanceof Error ? thrown : new Error(String(thrown));
    const err = new ProxyError('internal_error', `unexpected ${e.name}: ${e.message}`);
    err.cause = e;
    return err;
  }

  /** A copy whose message is prefixed with where it happened (`cluster api endpoint 127.0.0.1:80: ...`). */
  withContext(context: string): ProxyError {
    return new ProxyError(this.code, `${context}: ${this.message}`, this.statusOverride);
  }
}
