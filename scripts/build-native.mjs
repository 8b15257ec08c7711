// Builds the native/reuseport Node-API addon (the package's `install` script, so `npm ci` runs it).
// node-gyp gets --nodedir pointing at the headers installed with this Node (<prefix>/include/node),
// so it never downloads headers from nodejs.org; when they are missing the build fails, it does not
// fall back to a download. Output: native/reuseport/build/Release/reuseport.node.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const addonDir = path.join(root, 'native', 'reuseport');

// /usr/bin/node -> /usr (Debian/NodeSource), ~/.nvm/versions/node/vX/bin/node -> ~/.nvm/versions/node/vX.
const prefixes = [path.resolve(path.dirname(process.execPath), '..'), process.config.variables.node_prefix];
const nodedir = prefixes.find((p) => typeof p === 'string' && existsSync(path.join(p, 'include', 'node', 'node_api.h')));
if (nodedir === undefined) {
  console.error(
    `build-native: Node headers not found (looked for include/node/node_api.h under ${prefixes.join(', ')}); ` +
      'install the Node.js development headers that match this Node.',
  );
  process.exit(1);
}

// npm sets npm_config_node_gyp for lifecycle scripts; otherwise use the node-gyp bundled with npm.
const nodeGyp = [
  process.env.npm_config_node_gyp,
  path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((p) => p !== undefined && p !== '' && existsSync(p));
if (nodeGyp === undefined) {
  console.error('build-native: node-gyp not found (it is bundled with npm; run this through `npm ci` or `npm run install`).');
  process.exit(1);
}

console.log(`build-native: compiling ${path.relative(root, addonDir)} against ${path.join(nodedir, 'include', 'node')}`);
const r = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodedir}`, `--directory=${addonDir}`], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
