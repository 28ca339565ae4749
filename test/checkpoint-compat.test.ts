// RL checkpoints saved before the option schema record only the optimiser options that were given: they resume.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DiffusionNFT, FlowGRPO, type Prompt, tasks, VelocityNet } from '../lib/index.js';
import { writeCheckpoint } from '../lib/model/checkpoint.js';
import { RED, tempFolder } from './helpers.js';

const { toy2d } = tasks;
const dir = tempFolder('compat');

const ANY = [toy2d.prompts[0]] as Prompt[];
const GRID = '[1,0.9,0.8,0.7,0.6,0.5,0.4,0.30000000000000004,0.19999999999999996,0.09999999999999998,0]';
const COMMON = `"microBatch":0,"std":"global","ema":0.9,"seed":3,"chunk":1024`;

// The dnft.trainer entries that commit 99ab044's save() wrote for these options (copied from its output).
const CASES = [
  {
    make: (net: VelocityNet, lr: number, beta1?: number) =>
      new DiffusionNFT(net, { prompts: ANY, rewards: RED, groups: 8, groupSize: 16, lr, beta1, seed: 3 }),
    resume: (path: string, lr: number, beta1?: number) =>
      DiffusionNFT.resume(path, { prompts: ANY, rewards: RED, groups: 8, groupSize: 16, lr, beta1, seed: 3 }),
    format: 'DiffusionNFT',
    options:
      `{"groups":8,"groupSize":16,"grid":${GRID},"optimizerSteps":1,${COMMON},` +
      `"optimizer":{"lr":0.001,"schedule":"constant"},"solver":"dpm2","eta":"default",` +
      `"native":{"lr":0.001,"schedule":"constant","beta":1,"advClipMax":5,"klCoef":0,"adaptive":true,` +
      `"positiveOnly":false,"seed":3,"timesPerSample":9,"microBatch":0}}`,
  },
  {
    make: (net: VelocityNet, lr: number, beta1?: number) =>
      new FlowGRPO(net, { prompts: ANY, rewards: RED, groups: 4, groupSize: 8, lr, beta1, seed: 3, warmupSteps: 2 }),
    resume: (path: string, lr: number, beta1?: number) =>
      FlowGRPO.resume(path, {
        prompts: ANY,
        rewards: RED,
        groups: 4,
        groupSize: 8,
        lr,
        beta1,
        seed: 3,
        warmupSteps: 2,
      }),
    format: 'FlowGRPO',
    options:
      `{"groups":4,"groupSize":8,"grid":${GRID},"optimizerSteps":2,${COMMON},` +
      `"optimizer":{"lr":0.001,"warmupSteps":2,"schedule":"constant"},"advClipMax":5,"filter":true,` +
      `"native":{"lr":0.001,"warmupSteps":2,"schedule":"constant","trainSteps":9,"sdeA":0.7,"cfgScale":1,` +
      `"microBatch":0,"clipRange":0.0001,"klCoef":0.04,"logpSum":false}}`,
  },
];

describe('checkpoints of the layout before the option schema', () => {
  for (const c of CASES) {
    it(`${c.format} resumes one, and still refuses other options`, async () => {
      const net = VelocityNet.create(toy2d.config, { seed: 1 });
      const path = join(dir, `${c.format}.safetensors`);
      const trainer = JSON.stringify({ format: c.format, epoch: 3, options: c.options });
      await writeCheckpoint(path, net, false, { 'dnft.trainer': trainer });
      net.dispose();

      const resumed = await c.resume(path, 1e-3);
      expect(resumed.epochCount).toBe(3);
      // The filled-in defaults are those the new code resolves: a fresh trainer records the same state.
      const fresh = c.make(VelocityNet.create(toy2d.config, { seed: 1 }), 1e-3);
      expect(fresh.resolvedOptions).toEqual(resumed.resolvedOptions);
      fresh.net.dispose();
      resumed.net.dispose();

      await expect(c.resume(path, 5e-4)).rejects.toThrow(/other options/);
      // A field the old layout left out took its default: another value is another run.
      await expect(c.resume(path, 1e-3, 0.8)).rejects.toThrow(/other options/);
    });
  }
});
