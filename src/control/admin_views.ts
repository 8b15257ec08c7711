// What GET /clusters shows: the workers' summed view of every cluster (supervisor) with each
// endpoint's health-check and outlier state from the main thread (endpoint_verdicts.ts).

import type { Supervisor } from '../workers/supervisor.js';
import type { EndpointVerdicts } from './endpoint_verdicts.js';

export type ClustersView = Awaited<ReturnType<Supervisor['inspect']>>;

export async function inspectClusters(
  supervisor: Pick<Supervisor, 'inspect'>,
  verdicts: Pick<EndpointVerdicts, 'healthStates' | 'outlierStates'>,
): Promise<ClustersView> {
  const view = await supervisor.inspect();
  const key = (c: string, a: string): string => `${c}\u0000${a}`;
  const hc = new Map(verdicts.healthStates().map((h) => [key(h.cluster, h.address), h]));
  const od = new Map(verdicts.outlierStates().map((o) => [key(o.cluster, o.address), o]));
  return {
    ...view,
    clusters: view.clusters.map((c) => ({
      ...c,
      endpoints: c.endpoints.map((e) => {
        const h = hc.get(key(c.name, e.address));
        const o = od.get(key(c.name, e.address));
        return {
          ...e,
          health_check:
            h === undefined
              ? null
              : { healthy: h.healthy, consecutive_failures: h.consecutive_failures, last_checked: h.last_checked, last_error: h.last_error },
          outlier: o === undefined ? null : { ejected: o.ejected, ejections_total: o.ejections_total, ejected_until: o.ejected_until },
        };
      }),
    })),
  };
}
