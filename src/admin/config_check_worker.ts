// The config check's worker thread (config_check_thread.ts starts it, and ends it once checks
// stop coming): answers each check request with its id, or with the error the check threw.
import { parentPort } from 'node:worker_threads';
import { checkConfig, type CheckRequest } from './config_check.js';

const port = parentPort!;
port.on('message', ({ id, request }: { id: number; request: CheckRequest }) => {
  checkConfig(request).then(
    (answer) => port.postMessage({ id, answer }),
    (e: unknown) => port.postMessage({ id, error: e instanceof Error ? e.message : String(e) }),
  );
});
