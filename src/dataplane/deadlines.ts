// An exchange's three deadlines (ms on the ticker's clock; 0 = none): the route timeout and the
// per-try timeout run until the response head arrives; max_stream_duration bounds the whole
// exchange, body included.

export const enum DeadlineKind {
  None = 0,
  Stream = 1,
  Route = 2,
  Try = 3,
}

export class Deadlines {
  route = 0;
  try = 0;
  stream = 0;

  constructor(nowMs: number, routeTimeoutMs: number, maxStreamMs: number) {
    if (routeTimeoutMs > 0) this.route = nowMs + routeTimeoutMs;
    if (maxStreamMs > 0) this.stream = nowMs + maxStreamMs;
  }

  /** The earliest pending deadline (0 = none). */
  get earliest(): number {
    let d = this.stream;
    if (this.route !== 0 && (d === 0 || this.route < d)) d = this.route;
    if (this.try !== 0 && (d === 0 || this.try < d)) d = this.try;
    return d;
  }

  /** Which deadline has passed at `now`, the whole-exchange one first. */
  expired(nowMs: number): DeadlineKind {
    if (this.stream !== 0 && nowMs >= this.stream) return DeadlineKind.Stream;
    if (this.route !== 0 && nowMs >= this.route) return DeadlineKind.Route;
    if (this.try !== 0 && nowMs >= this.try) return DeadlineKind.Try;
    return DeadlineKind.None;
  }

  /** The response head arrived: only the stream deadline still applies. */
  headArrived(): void {
    this.route = this.try = 0;
  }

  clear(): void {
    this.route = this.try = this.stream = 0;
  }
}
