// The entry of `require('diffusion-nft')`. The package is ES modules; Node >= 20.19 (and 22.12) can require() them,
// so this file hands over the ES module's exports there, and on an older Node says what to do instead.
if (!process.features.require_module) {
  throw new Error(
    `diffusion-nft is ESM only: use await import('diffusion-nft'). This Node (${process.version}) cannot require() ES modules; Node >= 20.19 and >= 22.12 can, unless started with --no-experimental-require-module.`,
  );
}
import entry = require('./index.js');
export = entry;
