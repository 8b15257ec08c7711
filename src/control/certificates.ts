// This sidecar's certificate on the main thread: opened (files, embedded CA or signer) before
// any worker starts, pushed to every worker now and on each rotation, and asked by /ready
// (expired → not ready, running down → a warning) and /certs. The certificate code (node-forge,
// the piscina signing pool) loads only when the config has a top-level tls block: a plaintext
// sidecar never pays for it.

import type { Logger } from 'pino';
import type { Snapshot } from '../config/types.js';
import type { CertificateSource, CertsInfo } from '../tls/rotation.js';
import type { TlsMaterial } from '../tls/material.js';

/** Where certificate material goes (the supervisor, which posts it to every worker). */
export interface MaterialSink {
  setMaterial(material: TlsMaterial): void;
}

export class CertificateManager {
  private constructor(private readonly source: CertificateSource | null) {}

  /** Opens the snapshot's certificate source (none without top-level tls); throws with the reason when it cannot. */
  static async open(snapshot: Snapshot, configDir: string, sink: MaterialSink, log: Logger): Promise<CertificateManager> {
    if (snapshot.tls === null) return new CertificateManager(null);
    const { CertificateSource, certificateSourceOptions } = await import('../tls/rotation.js');
    const source = await CertificateSource.open(certificateSourceOptions(snapshot.tls, snapshot.node.identity, configDir));
    sink.setMaterial(source.current());
    source.on('update', (m) => {
      sink.setMaterial(m);
      log.info({ identity: m.identity, serial: m.serial, not_after: m.notAfter.toISOString() }, 'certificate rotated');
    });
    source.on('error', (e) => log.error({ err: e.message }, 'certificate reload failed; the current one stays in force'));
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
