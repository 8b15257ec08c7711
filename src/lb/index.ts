// Entry point of the load-balancing layer: builds the balancer a cluster's `lb` policy names.
// One instance per cluster per worker, rebuilt by the worker when the endpoint set changes.

import type { LbPolicy } from '../config/types.js';
import { LeastRequestLoadBalancer } from './least_request.js';
import { RandomLoadBalancer } from './random.js';
import { RoundRobinLoadBalancer } from './round_robin.js';
import type { LbHost, LoadBalancer, Rng } from './types.js';

export type { LbHost, LoadBalancer, Rng } from './types.js';
export { defaultRng, seededRng } from './rng.js';

/** The host array is copied and fixed for the LB's life; `active` and `healthy` are read live at each pick. */
export function createLoadBalancer<H extends LbHost>(policy: LbPolicy, hosts: readonly H[], rng: Rng): LoadBalancer<H> {
  switch (policy) {
    case 'least_request':
      return new LeastRequestLoadBalancer(hosts, rng);
    case 'round_robin':
      return new RoundRobinLoadBalancer(hosts, rng);
    case 'random':
      return new RandomLoadBalancer(hosts, rng);
    default: {
      const unknown: never = policy;
      throw new Error(`unknown lb policy ${String(unknown)}`);
    }
  }
}
