// The training run of the crash-consistency test: DiffusionNFT on a tiny network with a checkpoint every epoch.
// `node crash-run.mjs train PATH` trains (resuming PATH when it exists) until killed;
// `node crash-run.mjs save PATH` overwrites PATH with a larger checkpoint and prints the error kind (run under
// `ulimit -f` or into a read-only folder by the test).
import { existsSync } from 'node:fs';
import { DiffusionNFT, saveCheckpoint, VelocityNet } from '../../dist/lib/index.js';

export const OPTIONS = {
  prompts: [{ tokens: [1] }, { tokens: [2] }, { tokens: [3] }],
  rewards: { name: 'right', fn: (x) => Array.from({ length: x.shape[0] }, (_, i) => x.storage[2 * i]) },
  groups: 3,
  groupSize: 4,
  steps: 4,
  seed: 7,
  lr: 1e-3,
};

/** A fresh trainer of the run, or the run resumed from `path` when that exists. */
export async function trainer(path) {
  if (path !== undefined && existsSync(path)) return DiffusionNFT.resume(path, OPTIONS);
  return new DiffusionNFT(VelocityNet.create({ width: 32, depth: 2 }, { seed: 5 }), OPTIONS);
}

const [mode, path] = process.argv.slice(2);
if (mode === 'train') {
  const run = await trainer(path);
  await run.run({ epochs: 100_000, checkpoint: { path } });
} else if (mode === 'save') {
  const net = VelocityNet.create({ width: 512, depth: 4 }, { seed: 1 });
  try {
    await saveCheckpoint(path, net);
    console.log('saved');
  } catch (error) {
    console.log(`${error.constructor.name}: ${error.message}`);
  }
}
