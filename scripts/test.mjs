// `npm test`: the whole suite in two lanes that run side by side, each one file at a time
// (vitest.config.ts names the lanes and says which files go where). Vitest 4 runs the files of
// projects that allow one worker each as a single queue, so each lane is its own vitest process.
//
// Arguments go to vitest. With a file filter (`npm test -- test/edge`) there is one plain vitest
// run. A JSON report (`--outputFile=F` or `--outputFile F`) is written per lane and merged into F,
// as one vitest run would have written it. The "main" lane prints as it goes; the "wait" lane's
// output is held until "main" ends (two interleaved reporters are unreadable), then follows live.

import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const LANES = ['main', 'wait'];
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
const args = process.argv.slice(2);

/** Where `--outputFile` points (either spelling), and the arguments without it. */
function splitOutputFile(list) {
  const rest = [];
  let file = null;
  for (let i = 0; i < list.length; i++) {
    if (list[i].startsWith('--outputFile=')) file = list[i].slice('--outputFile='.length);
    else if (list[i] === '--outputFile' && i + 1 < list.length) file = list[++i];
    else rest.push(list[i]);
  }
  return { file, rest };
}

function hasFileFilter(list) {
  for (let i = 0; i < list.length; i++) {
    if (list[i] === '--outputFile' || list[i] === '--project' || list[i] === '--reporter') i++;
    else if (!list[i].startsWith('-')) return true;
  }
  return false;
}

/** Vitest's JSON reports of the lanes as one: counts summed, results concatenated. */
function mergeReports(reports) {
  const merged = { ...reports[0], testResults: [] };
  for (const key of Object.keys(reports[0])) {
    if (key.startsWith('num')) merged[key] = reports.reduce((sum, r) => sum + (r[key] ?? 0), 0);
  }
  merged.startTime = Math.min(...reports.map((r) => r.startTime));
  merged.success = reports.every((r) => r.success);
  merged.testResults = reports.flatMap((r) => r.testResults ?? []);
  return merged;
}

/** Starts `vitest run` with `vitestArgs`; `live`: its output goes straight through, else it is held. */
function runVitest(lane, vitestArgs, live) {
  const started = Date.now();
  const child = spawn(process.execPath, [vitest, 'run', ...vitestArgs], {
    stdio: ['ignore', live ? 'inherit' : 'pipe', live ? 'inherit' : 'pipe'],
  });
  const held = [];
  const run = { child, held, live, done: null };
  if (!live) {
    const hold = (stream, to) => stream.on('data', (chunk) => (run.live ? to.write(chunk) : held.push([to, chunk])));
    hold(child.stdout, process.stdout);
    hold(child.stderr, process.stderr);
  }
  run.done = new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve({ lane, code: code ?? (signal ? 1 : 0), seconds: (Date.now() - started) / 1000 })),
  );
  return run;
}

function goLive(run) {
  for (const [to, chunk] of run.held) to.write(chunk);
  run.held.length = 0;
  run.live = true;
}

async function main() {
  if (hasFileFilter(args)) {
    return (await runVitest('all', args, true).done).code;
  }
  const { file, rest } = splitOutputFile(args);
  const laneFile = (lane) => `${file}.${lane}.json`;
  const lanes = LANES.map((lane, i) => runVitest(lane, ['--project', lane, ...rest, ...(file === null ? [] : [`--outputFile=${laneFile(lane)}`])], i === 0));
  const stop = () => lanes.forEach((l) => l.child.kill('SIGTERM'));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const results = [await lanes[0].done];
  goLive(lanes[1]);
  results.push(await lanes[1].done);

  if (file !== null) {
    const reports = [];
    for (const lane of LANES) {
      try {
        reports.push(JSON.parse(readFileSync(laneFile(lane), 'utf8')));
        rmSync(laneFile(lane));
      } catch (e) {
        console.error(`lane ${lane}: no JSON report (${e.message})`);
      }
    }
    if (reports.length > 0) writeFileSync(file, JSON.stringify(mergeReports(reports)));
    if (reports.length < LANES.length) return 1;
  }
  console.log(`lanes: ${results.map((r) => `${r.lane} ${r.seconds.toFixed(0)} s (exit ${r.code})`).join(', ')}`);
  return results.some((r) => r.code !== 0) ? 1 : 0;
}

process.exitCode = await main();
