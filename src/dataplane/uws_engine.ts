// The `uws` engine's run-time parts: uWebSockets.js's native addon and its adapters (the
// downstream, the WebSocket client). A worker loads them only once a listener of its uses the
// engine (loadEngine() in listener.ts, awaited before such a listener is built): with the default
// strict engine they are never loaded (nor on the main thread: cli/preflight.ts checks the native
// binary only for a config with a uws listener), which saves ~2 MiB of RSS (an empty worker thread
// beside a main thread that loads nothing: 52.0 MiB; one that requires uWS 54.1, 3 runs each).

import uWS from 'uWebSockets.js';
import { uwsNativeProblem } from './uws_check.js';

const problem = uwsNativeProblem(uWS);
if (problem !== null) throw new Error(problem);
// Once per thread, before any app exists: no `uWebSockets: 20` header on every response.
(uWS as unknown as { _cfg(flag: string): void })._cfg('silent');

export { uWS };
export { remoteAddressText } from './uws_address.js';
export { UwsDownstream, writeLocalReply } from './uws_downstream.js';
export { DEFAULT_WS_MAX_MESSAGE_BYTES, UwsWebSocketClient, webSocketBehavior, withoutExtensions } from './uws_websocket.js';
