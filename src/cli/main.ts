#!/usr/bin/env node
// The `outrigger` entry point: the V8 heap settings first (heap.ts) and the compilers off for
// start-up (compilers.ts), then the command. The command is imported dynamically, after them:
// every module of a static import graph is read and compiled before the first one runs, and that
// alone grew the main thread's young generation to 8 MiB before heap.ts could hold it (measured:
// idle RSS of a 1-worker sidecar, see the commit).

import './heap.js';
import { compilersOff } from './compilers.js';

compilersOff();

await import('./command.js');
