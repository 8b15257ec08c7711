// The one path a new config takes into the data plane (ConfigStore's Applier): every worker
// applies it (supervisor), then the main-thread parts follow: health checks and outlier
// detection, the stats declared for its listeners, routes and clusters, and the config version.

import type { Logger } from 'pino';
import type { Applier } from '../admin/config_store.js';
import type { Snapshot } from '../config/types.js';
import type { StatsAggregator } from '../stats/aggregate.js';
import type { Supervisor } from '../workers/supervisor.js';
import type { EndpointVerdicts } from './endpoint_verdicts.js';

export class DataPlaneApplier implements Applier {
  constructor(
    private readonly supervisor: Pick<Supervisor, 'apply'>,
    private readonly verdicts: Pick<EndpointVerdicts, 'update'>,
    private readonly stats: Pick<StatsAggregator, 'declareSnapshot' | 'setConfigVersion'>,
    private readonly log: Logger,
  ) {}

  async apply(next: Snapshot): Promise<Snapshot> {
    const applied = await this.supervisor.apply(next);
    this.running(applied);
    this.log.info({ version: applied.version }, 'config applied');
    return applied;
  }

  /** The main-thread parts follow a snapshot that every worker runs (also the first one). */
  running(snapshot: Snapshot): void {
    this.verdicts.update(snapshot.clusters);
    this.stats.declareSnapshot(snapshot);
    this.stats.setConfigVersion(snapshot.version);
  }
}
