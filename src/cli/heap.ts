// V8 heap settings for a sidecar, applied before anything else loads (main.ts imports this
// first). The main thread's young generation stays at its initial 1 MiB semi-spaces instead of
// growing to 16 MiB during startup's config parsing (it only merges stats and serves the admin
// API, a few allocations a second): --semi-space-growth-factor is read at each growth decision,
// so it works when set at run time, unlike --max-semi-space-size (measured: a main thread's new
// space 16 MiB → 1-8 MiB; what grew before this line ran stays). Worker threads are not held by
// it (their new space still grew to 16 MiB); they get resourceLimits (workers/supervisor.ts).

import v8 from 'node:v8';

v8.setFlagsFromString('--semi-space-growth-factor=1');
