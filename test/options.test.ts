// The option tables at the API edge (lib/options/schema.ts) and the addon's type-only checks behind them.
import { describe, expect, it } from 'vitest';
import { native } from '../lib/core/native.js';
import { DiffusionNFT, FlowGRPO, FlowMatchingTrainer, sample, Tensor, tasks, VelocityNet } from '../lib/index.js';

const prompts = tasks.toy2d.prompts;
const rewards = tasks.toy2d.rewards.red;

describe('option tables', () => {
  const net = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
  const cond = Tensor.fromInt32(new Int32Array(2), [2, 1]);

  it('name the field of a non-finite number and say it must be finite', async () => {
    expect(() => new FlowMatchingTrainer(net, { lr: Number.NaN })).toThrow(
      /^options\.lr must be a finite number, got NaN$/,
    );
    expect(() => new DiffusionNFT(net, { prompts, rewards, beta: Number.POSITIVE_INFINITY })).toThrow(
      /options\.beta must be a finite number, got Infinity/,
    );
    await expect(sample(net, { cond, cfgScale: Number.NEGATIVE_INFINITY })).rejects.toThrow(
      /sample options\.cfgScale must be a finite number, got -Infinity/,
    );
  });

  it('check types, ranges and choices of every group, naming the field', async () => {
    expect(() => new FlowGRPO(net, { prompts, rewards, clipRange: '0.2' as never })).toThrow(
      /options\.clipRange must be a number, got string/,
    );
    expect(() => new FlowGRPO(net, { prompts, rewards, filterZeroAdvantage: 1 as never })).toThrow(
      /options\.filterZeroAdvantage must be a boolean, got number/,
    );
    expect(() => new DiffusionNFT(net, { prompts, rewards, solver: 'rk4' as never })).toThrow(
      /options\.solver must be 'euler', 'heun', 'dpm2', 'sde' or 'sa-solver', got rk4/,
    );
    expect(() => new DiffusionNFT(net, { prompts, rewards, groups: 2.5 })).toThrow(
      /options\.groups must be an integer in \[1, 65536\], got 2\.5/,
    );
    await expect(sample(net, { cond, chunk: 0 })).rejects.toThrow(/sample options\.chunk must be an integer/);
    expect(() => VelocityNet.create({ width: 0 })).toThrow(/config\.width must be an integer in \[1, 65536\], got 0/);
  });

  it('give the trainers complete native options: defaults from the tables, every field present', () => {
    const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
    expect(trainer.options).toMatchObject({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4 });
    expect(trainer.options).toMatchObject({ maxGradNorm: 1, warmupSteps: 0, schedule: 'constant', totalSteps: 0 });
    expect(trainer.options).toMatchObject({ minLr: 0, seed: 0, microBatch: 128, condDropout: 0 });
  });

  it('leave the addon to check types only: a missing or mistyped field is a TypeError naming it', async () => {
    const x0 = new Float32Array(4);
    const tokens = new Int32Array(2);
    const complete = { ...new FlowMatchingTrainer(net).options };
    const { lr: _, ...withoutLr } = complete;
    await expect(net.enqueue(() => net.model.flowMatchingStep(x0, tokens, 2, withoutLr as never))).rejects.toThrow(
      /lr is required/,
    );
    const mistyped = { ...complete, schedule: 3 as never };
    await expect(net.enqueue(() => net.model.flowMatchingStep(x0, tokens, 2, mistyped))).rejects.toThrow(
      /schedule must be a string/,
    );
    expect(() => new (native().Model as never as new (...a: unknown[]) => unknown)({ arch: 'mlp' }, 0)).toThrow(
      /dataDim is required/,
    );
    expect(net.step).toBe(0);
  });
});
