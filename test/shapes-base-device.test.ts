// The demo's DiffusionNFT (lib/jobs/demo-shapes.ts) from the shipped base on each device (docs/gpu.md, "The vitest
// suites on the simulated GPU"): the first epoch on the GPU, FP32 and TF32, against the CPU's. The base is config D,
// the largest network any device suite runs; that the reward then rises over epochs on the GPU is
// test/shapes-rise-device.test.ts's.
import { describe, expect, it } from 'vitest';
import { DiffusionNFT, loadCheckpoint, tasks } from '../lib/index.js';
import { SHAPES_BASE } from '../lib/jobs/demo-shapes.js';
import { findPrompt } from '../lib/jobs/shapes/prompts.js';
import { onDevices } from './helpers.js';

describe('the shipped shapes base model on each device', () => {
  // The settings of test/shapes-base.test.ts's run on the CPU (two prompts the base gets right about half the time,
  // lr 3e-4, timeFraction 0.3, 10 rollout steps), with groups of 2 instead of 16: an epoch of 4 samples takes
  // about a minute and a half on the simulator, in FP32 and TF32 together.
  it("the first epoch of the demo's DiffusionNFT equals the CPU's: rollout rewards, loss, gradient norm", async () => {
    await onDevices(async (at) => {
      const { net } = await loadCheckpoint(SHAPES_BASE, at);
      expect([net.device, net.config.arch]).toEqual([at.device, 'dit']);
      const nft = new DiffusionNFT(net, {
        prompts: [findPrompt('a red circle'), findPrompt('a yellow circle')],
        rewards: { name: 'shapes', fn: tasks.shapes.reward },
        groups: 2,
        groupSize: 2,
        timeFraction: 0.3,
        lr: 3e-4,
        seed: 1,
      });
      const stats = await nft.epoch();
      net.dispose();
      expect(stats.step).toBe(1);
      expect(Number.isFinite(stats.loss) && stats.gradNorm > 0).toBe(true);
      return { reward: stats.reward, loss: stats.loss, gradNorm: stats.gradNorm };
    });
  }, 900_000);
});
