// Worker thread entry: owns one WorkerRuntime, applies config snapshots posted by the supervisor
// (acking each version), drains on request, and reports logs to the main thread. A worker never
// reads files or the environment; everything arrives in messages.

import { parentPort, workerData } from 'node:worker_threads';
import type { Exchange } from '../dataplane/exchange.js';
import type { ListenerRuntime } from '../dataplane/listener.js';
import type { ProxyError } from '../errors.js';
import type { FromWorker, ToWorker, WorkerInit } from './messages.js';
import { WorkerRuntime } from './runtime.js';

const port = parentPort;
if (port === null) throw new Error('worker_main must run in a worker thread');
const init = workerData as WorkerInit;

function post(msg: FromWorker): void {
  port!.postMessage(msg);
}

const runtime = new WorkerRuntime({
  onExchangeDone(_l: ListenerRuntime, _ex: Exchange): void {},
  onLocalReply(_l: ListenerRuntime, _routeIndex: number, _err: ProxyError): void {},
  onTestCrash(route: string): void {
    if (!init.enableTestHooks) return;
    // Crash after the handler returns, the way a real bug in async code would.
    setImmediate(() => {
      throw new Error(`test_crash route "${route}" hit: worker ${init.workerId} crashes on purpose`);
    });
  },
});

// Applies run one at a time, in order.
let queue: Promise<void> = Promise.resolve();

port.on('message', (msg: ToWorker) => {
  switch (msg.type) {
    case 'apply':
      queue = queue.then(async () => {
        try {
          const listeners = await runtime.apply(msg.snapshot);
          post({ type: 'applied', version: msg.snapshot.version, listeners });
        } catch (e) {
          post({ type: 'apply_failed', version: msg.snapshot.version, error: e instanceof Error ? e.message : String(e) });
        }
      });
      break;
    case 'drain':
      void drain(msg.timeoutMs);
      break;
    case 'stop':
      runtime.close();
      port!.close();
      break;
  }
});

async function drain(timeoutMs: number): Promise<void> {
  runtime.stopAccepting();
  const until = Date.now() + timeoutMs;
  while (runtime.inflight > 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
  }
  post({ type: 'drained', unfinished: runtime.inflight });
}
