// What every discovery source (DNS, etcd) gives the main thread: the whole current set of a
// cluster's endpoints each time it changes, and whether it is fresh or serving its last-known set
// because the store is unreachable (static stability: a failed lookup never empties a cluster).

/** One endpoint a source found. */
export interface DiscoveredEndpoint {
  /** `host:port`: an IP literal (IPv6 in brackets) and a port. */
  readonly address: string;
  readonly weight?: number;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Fresh, or holding the last-known set since `sinceMs` (epoch ms) because of `error`. */
export type SourceHealth = { readonly ok: true } | { readonly ok: false; readonly error: string; readonly sinceMs: number };

export interface DiscoverySource {
  /** What it watches, for logs, /ready and /stats: e.g. `dns SRV _api._tcp.mesh.local` or `etcd service api`. */
  readonly describe: string;
  /**
   * Starts watching. `update` gets the whole current set each time it changes; a failure never
   * calls it (the last set stays) but reports through `health`, as does the recovery.
   */
  start(update: (endpoints: readonly DiscoveredEndpoint[]) => void, health: (h: SourceHealth) => void): void;
  /** Stops watching (timers, watches, connections it owns). */
  stop(): Promise<void>;
}
