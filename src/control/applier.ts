// The one path a new config takes into the data plane (ConfigStore's Applier): every worker
// applies it (supervisor), with the discovered clusters' endpoints filled in, then the main-thread
// parts follow: health checks and outlier detection, the stats declared for its listeners, routes
// and clusters, the config version, and the discovery sources its clusters ask for.

import type { Logger } from 'pino';
import type { Applier } from '../admin/config_store.js';
import type { Snapshot } from '../config/types.js';
import type { DiscoveryManager } from '../discovery/manager.js';
import type { StatsAggregator } from '../stats/aggregate.js';
import type { Supervisor } from '../workers/supervisor.js';
import type { EndpointVerdicts } from './endpoint_verdicts.js';

export class DataPlaneApplier implements Applier {
  constructor(
    private readonly supervisor: Pick<Supervisor, 'update'>,
    private readonly verdicts: Pick<EndpointVerdicts, 'update'>,
    private readonly stats: Pick<StatsAggregator, 'declareSnapshot' | 'setConfigVersion'>,
    private readonly discovery: Pick<DiscoveryManager, 'overlay' | 'reconcile'>,
    private readonly log: Logger,
  ) {}

  async apply(next: Snapshot): Promise<Snapshot> {
    // The overlay is made at the apply's turn, with the newest discovered sets: the config file
    // has no endpoints for a discovered cluster, and its workers must keep the ones they have.
    const applied = await this.supervisor.update(() => this.discovery.overlay(next));
    this.running(applied);
    this.discovery.reconcile(applied);
    this.log.info({ version: applied.version }, 'config applied');
    return applied;
  }

  /** The main-thread parts follow a snapshot that every worker runs (also the first one, and each discovered endpoint set). */
  running(snapshot: Snapshot): void {
    this.verdicts.update(snapshot.clusters);
    this.stats.declareSnapshot(snapshot);
    this.stats.setConfigVersion(snapshot.version);
  }
}
