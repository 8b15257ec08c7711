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
  | 'draining';

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
});

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
  /** A copy whose message is prefixed with where it happened (`cluster api endpoint 127.0.0.1:80: ...`). */
  withContext(context: string): ProxyError {
    return new ProxyError(this.code, `${context}: ${this.message}`, this.statusOverride);
  }
}
