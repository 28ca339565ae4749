// Errors of the right kind, raised before anything changes (docs/reliability.md, "The error of each kind of bad input").
import { describe, expect, it } from 'vitest';
import {
  BusyError,
  DiffusionNFT,
  DisposedError,
  FlowGRPO,
  NumericError,
  sample,
  Tensor,
  VelocityNet,
} from '../lib/index.js';

const SMALL = { width: 16, depth: 1 };
const PROMPTS = [{ tokens: [1] }];
const zeros = (x: Tensor) => new Array(x.shape[0]).fill(0).map((_, i) => i % 2);
/** DiffusionNFT with two optimiser steps per epoch and this η schedule. */
const twoSteps = (net: VelocityNet, eta: (step: number) => number) =>
  new DiffusionNFT(net, { prompts: PROMPTS, rewards: zeros, groups: 2, groupSize: 4, optimizerSteps: 2, eta });

describe('reliability: errors', () => {
  it('an eta schedule outside [0, 1] fails the epoch before any optimiser step (item 6)', async () => {
    const net = VelocityNet.create(SMALL, { seed: 1 });
    const nft = twoSteps(net, () => 2);
    const before = Array.from(net.getParameters());
    await expect(nft.epoch()).rejects.toThrow(/eta schedule gave 2 at step 2/);
    expect(Array.from(net.getParameters())).toEqual(before);
    expect(net.step).toBe(0);
    expect(nft.epochCount).toBe(0);
    net.dispose();
  });

  it('a failing later optimiser step of an epoch undoes the earlier ones', async () => {
    const net = VelocityNet.create(SMALL, { seed: 1 });
    let calls = 0;
    const nft = twoSteps(net, (step) => {
      calls += 1;
      return step > 100 ? 0.5 : 0.1;
    });
    await nft.epoch();
    const before = Array.from(net.getParameters());
    const m = new Float32Array(net.paramCount);
    const v = new Float32Array(net.paramCount);
    net.model.getOptimizerState(m, v);
    const model = net.model;
    const real = model.nftStep.bind(model);
    let step = 0;
    // The second optimiser step of the epoch fails, as a diverged one would.
    Object.defineProperty(model, 'nftStep', {
      configurable: true,
      value: (...args: Parameters<typeof real>) => {
        step += 1;
        if (step === 2) return Promise.reject(new NumericError('the gradient is not finite'));
        return real(...args);
      },
    });
    await expect(nft.epoch()).rejects.toThrow(NumericError);
    delete (model as { nftStep?: unknown }).nftStep;
    expect(Array.from(net.getParameters())).toEqual(before);
    expect(net.step).toBe(2);
    const m2 = new Float32Array(net.paramCount);
    const v2 = new Float32Array(net.paramCount);
    net.model.getOptimizerState(m2, v2);
    expect(Array.from(m2)).toEqual(Array.from(m));
    expect(nft.epochCount).toBe(1);
    expect(calls).toBeGreaterThan(0);
    net.dispose();
  });

  it('huge but accepted sizes are refused with RangeError before allocating (item 7)', async () => {
    const net = VelocityNet.create(SMALL);
    const cond = Tensor.fromInt32(new Int32Array(65536), [65536, 1]);
    await expect(sample(net, { cond, steps: 10000, trajectory: true })).rejects.toThrow(/above the limit/);
    expect(() => new DiffusionNFT(net, { prompts: PROMPTS, rewards: zeros, groups: 65536, groupSize: 65536 })).toThrow(
      RangeError,
    );
    expect(() => new FlowGRPO(net, { prompts: PROMPTS, rewards: zeros, groups: 65536, groupSize: 512 })).toThrow(
      /samples per epoch is above the limit/,
    );
    net.dispose();
  });

  it('calls made before dispose() complete; later ones are DisposedErrors (item 10)', async () => {
    const net = VelocityNet.create(SMALL);
    const x = Tensor.randn([4, 2], { seed: 1 });
    const cond = Tensor.fromInt32(new Int32Array(4), [4, 1]);
    const pending = [net.velocity(x, 0.5, cond), net.velocity(x, 0.2, cond)];
    net.dispose();
    expect(net.disposed).toBe(true);
    await expect(Promise.all(pending)).resolves.toHaveLength(2);
    await expect(net.velocity(x, 0.5, cond)).rejects.toBeInstanceOf(DisposedError);
    expect(() => net.getParameters()).toThrow(DisposedError);
  });

  it('state access while calls are in flight is a BusyError (item 10)', async () => {
    const net = VelocityNet.create(SMALL);
    const x = Tensor.randn([4, 2], { seed: 1 });
    const pending = net.velocity(x, 0.5, Tensor.fromInt32(new Int32Array(4), [4, 1]));
    expect(() => net.getParameters()).toThrow(BusyError);
    expect(() => net.getParameters()).toThrow(/1 call\(s\) in flight/);
    await pending;
    net.dispose();
  });

  it('non-finite rewards are NumericErrors (item 10)', async () => {
    const net = VelocityNet.create(SMALL);
    const nft = new DiffusionNFT(net, {
      prompts: PROMPTS,
      rewards: { name: 'nan', fn: (x: Tensor) => new Array(x.shape[0]).fill(Number.POSITIVE_INFINITY) },
      groups: 2,
      groupSize: 2,
    });
    await expect(nft.epoch()).rejects.toBeInstanceOf(NumericError);
    net.dispose();
  });

  it('velocity of finite but huge inputs is a NumericError, not Inf or NaN (item 10)', async () => {
    const net = VelocityNet.create({ ...SMALL }, { seed: 1 });
    const flat = net.getParameters().map((_, i) => ((i % 7) - 3) * 0.5);
    net.setParameters(flat);
    const x = Tensor.from(new Float32Array([3e38, -3e38]), [1, 2]);
    await expect(net.velocity(x, 0.5, Tensor.fromInt32([1], [1, 1]))).rejects.toBeInstanceOf(NumericError);
    net.dispose();
  });
});
