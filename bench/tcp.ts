// npm run bench:tcp [-- --rounds N] [--requests N] [--large-requests N] [--large-bytes B] [--no-install]
// Raw TCP through outrigger (one sidecar's tcp listener; two sidecars over mTLS) beside haproxy in
// mode tcp and redis alone, driven by redis-benchmark, in one run (bench/lib/tcp.ts).
// `npm run bench` runs the same section after its HTTP/1 configs.

import { parseSectionArgs } from './lib/section.js';
import { renderTcpMarkdown, runTcpBench } from './lib/tcp.js';

const { common, own } = parseSectionArgs({ requests: '100000', 'large-requests': '10000', 'large-bytes': '65536' });
const results = await runTcpBench({
  ...common,
  requests: Number(own.requests),
  largeRequests: Number(own['large-requests']),
  largeValueBytes: Number(own['large-bytes']),
});
process.stdout.write(renderTcpMarkdown(results));
