// The DNS discovery source: a cluster's endpoints are what a name resolves to (A or AAAA on the
// configured port, or the SRV targets of the lowest priority that has any, resolved to A, then
// AAAA). Looks up again when the shortest record TTL runs out (never later than refresh_ms, never
// sooner than MIN_REFRESH_MS); a failed lookup keeps the last-known set, reports the source stale
// and retries with jittered backoff. Owns one node:dns Resolver and one timer; runs on the main thread.

import type { SrvRecord } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import type { DnsDiscoverySpec } from '../config/types.js';
import type { DiscoveredEndpoint, DiscoverySource, SourceHealth } from './source.js';

/** No lookups closer together than this, whatever the TTL (a TTL of 0 must not become a busy loop). */
export const MIN_REFRESH_MS = 1000;
/** One query's timeout and tries (node's defaults, about 5 s × 4, would leave a dead server unnoticed for long). */
const QUERY_TIMEOUT_MS = 1000;
const QUERY_TRIES = 2;

/** A target with these errors does not exist (NXDOMAIN, or no address of either family); any other error is a failed lookup. */
const ABSENT: ReadonlySet<string> = new Set(['ENOTFOUND', 'ENODATA']);

/** A lookup's answer: the endpoints and how long they may be kept (the shortest TTL), in seconds; null = no TTL known (SRV). */
interface Answer {
  readonly endpoints: DiscoveredEndpoint[];
  readonly ttlS: number | null;
}

export class DnsSource implements DiscoverySource {
  readonly describe: string;
  private readonly resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Lookups failed in a row (the backoff's exponent); 0 = fresh. */
  private failures = 0;

  constructor(
    private readonly spec: DnsDiscoverySpec,
    /** A number in [0, 1) for the backoff's jitter. */
    private readonly random: () => number = Math.random,
  ) {
    this.describe = `dns ${spec.type} ${spec.name}`;
    if (spec.resolvers.length > 0) this.resolver.setServers(spec.resolvers);
  }

  start(update: (endpoints: readonly DiscoveredEndpoint[]) => void, health: (h: SourceHealth) => void): void {
    const round = async (): Promise<void> => {
      let delayMs: number;
      try {
        const answer = await this.lookup();
        if (this.stopped) return;
        if (answer.endpoints.length === 0) throw new Error('no usable record');
        this.failures = 0;
        update(answer.endpoints);
        health({ ok: true });
        delayMs = refreshDelayMs(answer.ttlS, this.spec.refreshMs);
      } catch (e) {
        if (this.stopped) return;
        if (this.failures++ === 0) health({ ok: false, error: `${this.describe}: ${errorText(e)}`, sinceMs: Date.now() });
        delayMs = backoffDelayMs(this.failures, this.spec.refreshMs, this.random());
      }
      this.timer = setTimeout(() => void round(), delayMs);
      this.timer.unref();
    };
    void round();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.resolver.cancel();
    return Promise.resolve();
  }

  private lookup(): Promise<Answer> {
    const { type, name, port } = this.spec;
    if (type === 'SRV') return this.lookupSrv(name);
    return this.lookupAddresses(name, type, port!);
  }

  private async lookupAddresses(name: string, type: 'A' | 'AAAA', port: number): Promise<Answer> {
    const records = type === 'A' ? await this.resolver.resolve4(name, { ttl: true }) : await this.resolver.resolve6(name, { ttl: true });
    return {
      endpoints: records.map((r) => ({ address: hostPort(r.address, port) })),
      ttlS: Math.min(...records.map((r) => r.ttl)),
    };
  }

  /**
   * SRV (RFC 2782): the targets of the lowest priority that has any, each with its record's port
   * and weight; the other priorities are fallbacks. A target "exists" when it resolves to A
   * records, or AAAA when it has none. A priority whose every target is absent (NXDOMAIN, no
   * address, or RFC 2782's "." for "not here") gives way to the next; one whose targets failed
   * to resolve otherwise (timeout, SERVFAIL) fails the lookup, so the last-known set stays rather
   * than traffic moving to the fallbacks on a DNS hiccup. Fallback on endpoint health is not
   * done here: the cluster gets one priority's targets (docs/config.md). node:dns gives no TTL
   * for SRV records, so only the targets' TTLs shorten refresh_ms.
   */
  private async lookupSrv(name: string): Promise<Answer> {
    const records = await this.resolver.resolveSrv(name);
    const absent: string[] = [];
    for (const priority of [...new Set(records.map((r) => r.priority))].sort((a, b) => a - b)) {
      const group = await this.resolveGroup(records.filter((r) => r.priority === priority));
      if (group.endpoints.length > 0) return group;
      if (group.failed.length > 0) throw new Error(`no SRV target of priority ${priority} resolved (${group.failed.join('; ')})`);
      absent.push(...group.absent);
    }
    throw new Error(`no SRV target exists (${absent.join(', ')})`);
  }

  /** One priority's targets resolved: their endpoints, the targets that do not exist, and the lookups that failed. */
  private async resolveGroup(records: readonly SrvRecord[]): Promise<Answer & { absent: string[]; failed: string[] }> {
    const endpoints: DiscoveredEndpoint[] = [];
    let ttlS: number | null = null;
    const absent: string[] = [];
    const failed: string[] = [];
    for (const r of records) {
      let addresses: Array<{ address: string; ttl: number }>;
      try {
        addresses = r.name === '' || r.name === '.' ? [] : await this.resolveTarget(r.name);
      } catch (e) {
        if (ABSENT.has((e as NodeJS.ErrnoException).code ?? '')) absent.push(r.name);
        else failed.push(`${r.name}: ${errorText(e)}`);
        continue;
      }
      if (addresses.length === 0) absent.push(r.name === '' ? '.' : r.name);
      for (const a of addresses) {
        endpoints.push({ address: hostPort(a.address, r.port), weight: r.weight });
        ttlS = ttlS === null ? a.ttl : Math.min(ttlS, a.ttl);
      }
    }
    return { endpoints, ttlS, absent, failed };
  }

  private async resolveTarget(target: string): Promise<Array<{ address: string; ttl: number }>> {
    try {
      return await this.resolver.resolve4(target, { ttl: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENODATA') throw e;
      return this.resolver.resolve6(target, { ttl: true });
    }
  }
}

/** After a good lookup: when the shortest TTL runs out, at most refresh_ms, at least MIN_REFRESH_MS. */
export function refreshDelayMs(ttlS: number | null, refreshMs: number): number {
  const byTtl = ttlS === null ? refreshMs : ttlS * 1000;
  return Math.max(MIN_REFRESH_MS, Math.min(byTtl, refreshMs));
}

/**
 * After the n-th failure in a row: MIN_REFRESH_MS doubled per failure up to refresh_ms, the wait
 * drawn in [half, all] of that so that the sidecars of a mesh do not retry in step.
 */
export function backoffDelayMs(failures: number, refreshMs: number, random: number): number {
  const ceiling = Math.max(MIN_REFRESH_MS, Math.min(refreshMs, MIN_REFRESH_MS * 2 ** Math.min(failures - 1, 20)));
  return Math.round(ceiling / 2 + (ceiling / 2) * random);
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** node:dns errors carry a code (ENOTFOUND = NXDOMAIN, ESERVFAIL, ETIMEOUT, ECONNREFUSED, ENODATA). */
function errorText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const message = e instanceof Error ? e.message : String(e);
  return code !== undefined && !message.includes(code) ? `${code} ${message}` : message;
}
