// The demo's DiffusionNFT for a few epochs from the shipped base on the GPU (docs/gpu.md, "The vitest suites on the
// simulated GPU"): the reward rises there as on the CPU (test/demo-rise.ts holds the run and the criterion; the CPU's
// run is test/shapes-base.test.ts's). FP32 only: the run is the longest of the device suites, and TF32's arithmetic
// is compared with the CPU's step by step in test/shapes-base-device.test.ts.
import { describe, it } from 'vitest';
import { demoFewEpochs, expectRise } from './demo-rise.js';
import { TEST_DEVICE } from './helpers.js';

describe('the shipped shapes base model on the GPU', () => {
  it.runIf(TEST_DEVICE !== 'cpu')(
    'a few epochs of the demo raise the shapes reward on the GPU',
    async () => {
      expectRise(await demoFewEpochs({ device: TEST_DEVICE, precision: 'fp32' }), `${TEST_DEVICE} (fp32)`);
    },
    3_600_000,
  );
});
