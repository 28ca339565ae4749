// The entry of `require('diffusion-nft')`. The package is ES modules; Node >= 20.19 (and 22.12) can require() them,
// so this file hands over the ES module's exports there, and on an older Node says what to do instead.
if (!process.features.require_module) {
  throw new Error(
    `diffusion-nft is ESM only: use await import('diffusion-nft') (require() of it needs Node >= 20.19 or >= 22.12; this is ${process.version})`,
  );
}
import entry = require('./index.js');
export = entry;
