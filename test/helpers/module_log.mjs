// Records every module a process resolves, for tests that check what a thread loads (plain JS:
// node preloads it before any TypeScript loader). Start the process with
//   NODE_OPTIONS="--import <this file>" MODULE_LOG=<file>
// and each resolution, in every thread, appends `<importer URL> <resolved URL>` to the file ("-"
// for a thread's entry point, which has no importer).
import { register } from 'node:module';

const log = process.env.MODULE_LOG;
if (log === undefined) throw new Error('module_log.mjs: MODULE_LOG is not set');

const hooks = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, (context.parentURL ?? '-') + ' ' + resolved.url + '\\n');
  return resolved;
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
