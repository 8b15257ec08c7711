// This sidecar's registration in etcd (`node.service`): `<p>/services/<name>/<sidecar-id>` put
// under a lease of ttl_s seconds that the etcd3 client keeps alive. A crashed sidecar stops the
// keepalives, so etcd deletes its key when the lease expires. When the lease is lost (etcd
// unreachable for longer than the client waits), a new lease is granted and the key put again,
// retried with jittered backoff so a fleet does not come back all at once. etcd being down never
// touches the data plane: this only changes what others discover. Main thread only.
import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from 'pino';
import type { ServiceRegistrationSpec } from '../config/etcd.js';
import { REVOKE_TIMEOUT_MS, settledWithin, type EtcdKeys } from './etcd_client.js';
import { Backoff } from './backoff.js';
import { isoTime } from '../time.js';

/** What /stats shows of the registration. */
export interface RegistrationState {
  readonly key: string;
  /** registering: granting a lease and putting the key; registered: the key is live; retrying: etcd failed, backing off; deregistered: drained. */
  readonly state: 'registering' | 'registered' | 'retrying' | 'deregistered';
  readonly lease_id: string | null;
  /** The last failure (null once registered again). */
  readonly error: string | null;
  /** Epoch ms of the last state change. */
  readonly since_ms: number;
  /** Epoch ms of the first failure since the key was last live (null while registered or before any failure). */
  readonly failing_since_ms: number | null;
  /** Leases granted since start (1 when etcd never lost ours). */
  readonly leases_granted: number;
}

export class Registration {
  private lease: Lease | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly backoff = new Backoff();
  private stopped = false;
  private status: RegistrationState;

  constructor(
    private readonly client: Etcd3,
    private readonly spec: ServiceRegistrationSpec,
    keys: EtcdKeys,
    sidecarId: string,
    private readonly log: Logger,
  ) {
    const key = keys.registration(spec.name, sidecarId);
    this.status = { key, state: 'registering', lease_id: null, error: null, since_ms: Date.now(), failing_since_ms: null, leases_granted: 0 };
  }

  /** The value others read: where to connect, with what weight. */
  private value(): string {
    const { address, port, weight, metadata } = this.spec;
    return JSON.stringify({ address, port, weight, metadata });
  }

  /** Registers now and keeps it registered until deregister(). */
  start(): void {
    void this.register();
  }

  json(): RegistrationState {
    return this.status;
  }

  /** For /ready's warnings: why this sidecar is not registered right now (it serves all the same). */
  warnings(): string[] {
    const { state, key, error, failing_since_ms } = this.status;
    // Attempts between retries (registering) still count: the key is not live until one succeeds.
    if (failing_since_ms === null || state === 'deregistered') return [];
    return [`etcd registration ${key}: not registered since ${isoTime(failing_since_ms)} (${error ?? ''}); serving, retrying`];
  }

  /** `outrigger_etcd_registered` (1 while the key is live) and the leases granted, in the Prometheus text format. */
  prometheus(): string {
    // node.service.name is a name field (letters, digits, "_", ".", "-"): nothing to escape.
    const labels = `service="${this.spec.name}"`;
    return [
      "# HELP outrigger_etcd_registered Whether this sidecar's node.service registration is live in etcd (1) or not (0: registering, retrying after an etcd failure, or deregistered).",
      '# TYPE outrigger_etcd_registered gauge',
      `outrigger_etcd_registered{${labels}} ${this.status.state === 'registered' ? 1 : 0}`,
      "# HELP outrigger_etcd_registration_leases_total Leases granted for this sidecar's registration (more than 1: etcd lost one and it was registered again).",
      '# TYPE outrigger_etcd_registration_leases_total counter',
      `outrigger_etcd_registration_leases_total{${labels}} ${this.status.leases_granted}`,
      '',
    ].join('\n');
  }

  /** One attempt: a fresh lease, the key under it; on failure, another attempt after a jittered delay. */
  private async register(): Promise<void> {
    if (this.stopped) return;
    this.setState({ state: 'registering' });
    const lease = this.client.lease(this.spec.ttlS);
    this.lease = lease;
    // Lost for good (expired while etcd was out of reach, or revoked by someone else): start over.
    lease.on('lost', (err: Error) => {
      if (this.lease === lease && !this.stopped) this.retry(`lease lost: ${err.message}`);
    });
    try {
      const id = await lease.grant();
      await lease.put(this.status.key).value(this.value()).exec();
      if (this.lease !== lease || this.stopped) return;
      this.backoff.reset();
      this.setState({ state: 'registered', lease_id: id, error: null, failing_since_ms: null, leases_granted: this.status.leases_granted + 1 });
      this.log.info({ key: this.status.key, lease_id: id, ttl_s: this.spec.ttlS }, 'etcd: registered');
    } catch (e) {
      if (this.lease === lease && !this.stopped) this.retry((e as Error).message);
    }
  }

  private retry(error: string): void {
    this.lease?.release();
    this.lease = null;
    const delayMs = this.backoff.next();
    this.setState({ state: 'retrying', lease_id: null, error, failing_since_ms: this.status.failing_since_ms ?? Date.now() });
    this.log.warn({ key: this.status.key, error, retry_in_ms: delayMs }, 'etcd: registration failed; the sidecar keeps serving, retrying');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.register();
    }, delayMs);
  }

  /**
   * Deregisters first thing in a drain: revokes the lease, which deletes the key, so the other
   * sidecars stop picking this one before it stops accepting. Bounded: when etcd does not answer
   * the drain goes on and the key disappears when the lease expires.
   */
  async deregister(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    const lease = this.lease;
    this.lease = null;
    if (lease === null) return this.setState({ state: 'deregistered' });
    const outcome = await settledWithin(lease.revoke(), REVOKE_TIMEOUT_MS);
    if (outcome === 'done') this.log.info({ key: this.status.key }, 'etcd: deregistered');
    else {
      lease.release();
      this.log.warn({ key: this.status.key, error: outcome, ttl_s: this.spec.ttlS }, 'etcd: could not revoke the lease; the key goes when it expires');
    }
    this.setState({ state: 'deregistered' });
  }

  private setState(change: Partial<RegistrationState>): void {
    const since_ms = change.state === undefined || change.state === this.status.state ? this.status.since_ms : Date.now();
    this.status = { ...this.status, ...change, since_ms };
  }
}
