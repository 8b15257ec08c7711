// Worker side of passive outlier detection: how each upstream try went, batched once per
// event-loop turn and posted to the main thread (which counts consecutive failures across
// workers). Successes are only sent when they follow a failure on that endpoint: that is all the
// main thread's consecutive counters need.

import { TryOutcome } from '../dataplane/exchange.js';
import type { Cluster, Endpoint } from '../upstream/cluster.js';
import type { OutcomeEvent } from './messages.js';

export class OutcomeReporter {
  private batch: OutcomeEvent[] = [];

  constructor(private readonly post: (events: readonly OutcomeEvent[]) => void) {}

  record(c: Cluster, e: Endpoint, outcome: TryOutcome): void {
    if (c.spec.outlier === null) return;
    const failed = outcome !== TryOutcome.Success;
    if (!failed && !e.lastOutcomeFailed) return;
    e.lastOutcomeFailed = failed;
    if (this.batch.length === 0) setImmediate(() => this.flush());
    this.batch.push([c.spec.name, e.address, outcome]);
  }

  private flush(): void {
    const events = this.batch;
    this.batch = [];
    this.post(events);
  }
}
