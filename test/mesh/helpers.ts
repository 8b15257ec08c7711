// The mesh helpers moved to test/helpers/ (import them from '../helpers/sidecar.js'). This module
// keeps the old names for the files that still import it: closeMesh, and the app and probe with
// their old counters (`count`, `seen`, `requestSerials`) read from the upstream's requests.
import { startApp as startUpstreamApp, startProbe as startUpstreamProbe, type ReceivedRequest, type Upstream } from '../helpers/sidecar.js';

export * from '../helpers/sidecar.js';
export { closeAll as closeMesh } from '../helpers/sidecar.js';
export type SeenRequest = ReceivedRequest;

export interface App extends Upstream {
  readonly count: number;
  readonly seen: readonly ReceivedRequest[];
}

export interface Probe extends Upstream {
  readonly requestSerials: ReadonlyArray<string | null>;
}

export async function startApp(_recordLimit?: number): Promise<App> {
  const up = await startUpstreamApp();
  return Object.defineProperties(up, { count: { get: () => up.requests.length }, seen: { get: () => up.requests } }) as App;
}

export async function startProbe(...args: Parameters<typeof startUpstreamProbe>): Promise<Probe> {
  const up = await startUpstreamProbe(...args);
  return Object.defineProperty(up, 'requestSerials', { get: () => up.requests.map((r) => r.peerSerial) }) as Probe;
}
