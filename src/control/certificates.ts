// This sidecar's certificate on the main thread: opened (files, embedded CA or signer) before
// any worker starts, pushed to every worker now and on each rotation, and asked by /ready
// (expired → not ready, running down → a warning) and /certs. The certificate code (node-forge,
// the piscina signing pool) loads only when the config has a top-level tls block: a plaintext
// sidecar never pays for it.
//
// Failed renewals (signer, ca) and rejected hot swaps (files) are counted into the main thread's
// monotonic counter totals (stats/counters.ts), declared at 0 from the start so /metrics shows
// them before the first failure.

import type { Logger } from 'pino';
import type { Snapshot } from '../config/types.js';
import type { CounterTotals } from '../stats/counters.js';
import type { CertificateSource, CertsInfo } from '../tls/rotation.js';
import type { TlsMaterial } from '../tls/material.js';
import { isoTime } from '../time.js';

/** Where certificate material goes (the supervisor, which posts it to every worker). */
export interface MaterialSink {
  setMaterial(material: TlsMaterial): void;
}

/** Counter of failed renewals (signer, ca mode), labelled by source. */
export const CERT_RENEWAL_FAILURES = 'outrigger_certificate_renewal_failures_total';
/** Counter of rejected hot swaps (files mode: a changed file set refused, the current one kept). */
export const CERT_RELOAD_REJECTED = 'outrigger_certificate_reload_rejected_total';

export class CertificateManager {
  private constructor(private readonly source: CertificateSource | null) {}

  /**
   * Opens the snapshot's certificate source (none without top-level tls); throws with the reason
   * when it cannot. Each failed renewal / rejected reload adds 1 to `counters` (see the header).
   */
  static async open(snapshot: Snapshot, configDir: string, sink: MaterialSink, log: Logger, counters?: CounterTotals): Promise<CertificateManager> {
    if (snapshot.tls === null) return new CertificateManager(null);
    const { CertificateSource, certificateSourceOptions } = await import('../tls/rotation.js');
    const opts = certificateSourceOptions(snapshot.tls, snapshot.node.identity, configDir);
    const source = await CertificateSource.open(opts);
    const failures = { metric: opts.mode === 'files' ? CERT_RELOAD_REJECTED : CERT_RENEWAL_FAILURES, labels: { source: opts.mode } };
    counters?.declare(failures.metric, failures.labels);
    sink.setMaterial(source.current());
    source.on('update', (m) => {
      sink.setMaterial(m);
      log.info({ identity: m.identity, serial: m.serial, not_after: isoTime(m.notAfter.getTime()) }, 'certificate rotated');
    });
    source.on('error', (e) => {
      counters?.apply([{ ...failures, value: 1 }]);
      log.error({ err: e.message }, 'certificate reload failed; the current one stays in force');
    });
    return new CertificateManager(source);
  }

  /** False once the certificate has expired: every mTLS handshake would fail. */
  valid(): boolean {
    return this.source === null || this.source.info().expires_in_s > 0;
  }

  warnings(): string[] {
    const w = this.source?.warning() ?? null;
    return w === null ? [] : [w];
  }

  info(): CertsInfo[] {
    return this.source === null ? [] : [this.source.info()];
  }

  async close(): Promise<void> {
    await this.source?.close();
  }
}
