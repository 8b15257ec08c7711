// Command-line parsing shared by the CLI's commands: node's parseArgs, with a parse error cut to
// its first line and thrown as the command's own usage error. Pure; reads nothing but its input.

import { parseArgs } from 'node:util';

type ParseArgsConfig = NonNullable<Parameters<typeof parseArgs>[0]>;

/** parseArgs(config); a parse error is thrown as `new Usage(first line of its message)`. */
export function parseArgsOr<T extends ParseArgsConfig>(config: T, Usage: new (message: string) => Error): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    throw new Usage((e as Error).message.split('\n')[0] ?? 'bad arguments');
  }
}
