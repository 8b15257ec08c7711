// npm run bench:ws [-- --rounds N] [--seconds S] [--connections N] [--inflight K] [--sizes 64,16384] [--no-install]
// WebSocket echo through outrigger (one sidecar; two sidecars over mTLS) beside nginx as a
// WebSocket proxy and the upstream alone, in one run (bench/lib/websocket.ts). `npm run bench`
// runs the same section after its HTTP/1 configs.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderWsMarkdown, runWsBench, WS_SIZES } from './lib/websocket.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    inflight: { type: 'string', default: '8' },
    sizes: { type: 'string', default: WS_SIZES.join(',') },
    'no-install': { type: 'boolean', default: false },
  },
  strict: true,
});
const results = await runWsBench({
  repoRoot,
  rounds: Number(values.rounds),
  seconds: Number(values.seconds),
  connections: Number(values.connections),
  inflight: Number(values.inflight),
  sizes: values.sizes.split(',').map(Number),
  install: !values['no-install'],
  log: (s) => process.stderr.write(`${s}\n`),
});
process.stdout.write(renderWsMarkdown(results));
