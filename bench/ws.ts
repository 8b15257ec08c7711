// npm run bench:ws [-- --rounds N] [--seconds S] [--connections N] [--inflight K] [--sizes 64,16384] [--no-install]
// WebSocket echo through outrigger (one sidecar; two sidecars over mTLS) beside nginx as a
// WebSocket proxy and the upstream alone, in one run (bench/lib/websocket.ts). `npm run bench`
// runs the same section after its HTTP/1 configs.

import { parseSectionArgs } from './lib/section.js';
import { renderWsMarkdown, runWsBench, WS_SIZES } from './lib/websocket.js';

const { common, own } = parseSectionArgs({ seconds: '10', connections: '16', inflight: '8', sizes: WS_SIZES.join(',') });
const results = await runWsBench({
  ...common,
  seconds: Number(own.seconds),
  connections: Number(own.connections),
  inflight: Number(own.inflight),
  sizes: own.sizes.split(',').map(Number),
});
process.stdout.write(renderWsMarkdown(results));
