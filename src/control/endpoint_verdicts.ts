// Health and outlier wiring on the main thread: active health checks run once per sidecar, the
// workers' try outcomes meet in one outlier detector, and every verdict (healthy or not, ejected
// or not) is published to all workers. Follows each applied config's clusters.

import type { Logger } from 'pino';
import type { ClusterSpec } from '../config/types.js';
import { HealthChecker, type HealthCheckState } from '../health/health_checker.js';
import { OutlierDetector, type OutlierState } from '../health/outlier.js';
import type { TlsMaterial } from '../tls/material.js';
import type { OutcomeEvent } from '../workers/messages.js';

/** Where verdicts go (the supervisor, which broadcasts them to every worker). */
export type PublishVerdict = (cluster: string, address: string, change: { healthy?: boolean; ejected?: boolean }) => void;

export class EndpointVerdicts {
  private readonly health: HealthChecker;
  private readonly outlier: OutlierDetector;

  /** `material`: this sidecar's current certificate, for the health checks of `tls` clusters. */
  constructor(log: Logger, publish: PublishVerdict, material: () => TlsMaterial | null) {
    this.health = new HealthChecker(
      (cluster, address, healthy) => {
        log.warn({ cluster, address, healthy }, healthy ? 'endpoint passes health checks again' : 'endpoint fails health checks');
        publish(cluster, address, { healthy });
      },
      { material },
    );
    this.outlier = new OutlierDetector((cluster, address, ejected) => {
      log.warn({ cluster, address, ejected }, ejected ? 'endpoint ejected (outlier detection)' : 'endpoint returns from ejection');
      publish(cluster, address, { ejected });
    });
  }

  /** Outcomes of upstream tries from a worker, in arrival order. */
  record(events: readonly OutcomeEvent[]): void {
    for (const [cluster, address, outcome] of events) this.outlier.record(cluster, address, outcome);
  }

  /** A config version is running: check and watch its clusters. */
  update(clusters: readonly ClusterSpec[]): void {
    this.health.update(clusters);
    this.outlier.update(clusters);
  }

  healthStates(): HealthCheckState[] {
    return this.health.states();
  }

  outlierStates(): OutlierState[] {
    return this.outlier.states();
  }

  close(): void {
    this.health.close();
    this.outlier.close();
  }
}
