// VelocityNet: the layout of config M under the documented names, a seeded initialisation, the order of condition
// tokens, and the checks of configs and inputs (the model unchanged after a refusal, unusable after dispose).
import { describe, expect, it } from 'vitest';
import { CONFIG_M, DisposedError, NumericError, Tensor, VelocityNet } from '../lib/index.js';
import { randomBatch, randomizedNet } from './helpers.js';

describe('VelocityNet', () => {
  it('lays out config M with about 11.6 M parameters under the documented names', () => {
    const net = VelocityNet.create({ preset: 'M' });
    expect(net.config).toEqual(CONFIG_M);
    expect(net.paramCount).toBeGreaterThan(11.5e6);
    expect(net.paramCount).toBeLessThan(11.8e6);
    const names = net.params.map((p) => p.name);
    expect(names.slice(0, 7)).toEqual([
      'time_mlp.fc1.weight',
      'time_mlp.fc1.bias',
      'time_mlp.fc2.weight',
      'time_mlp.fc2.bias',
      'cond_embed.weight',
      'input_proj.weight',
      'input_proj.bias',
    ]);
    expect(names).toContain('blocks.3.fc2.weight');
    expect(names.at(-1)).toBe('output_proj.bias');
    const cond = net.params.find((p) => p.name === 'cond_embed.weight');
    expect(cond?.shape).toEqual([8, 32, 512]);
    expect(cond?.decay).toBe(false);
    expect(net.params.find((p) => p.name === 'blocks.0.fc1.weight')?.decay).toBe(true);
  });

  it('initialises deterministically from the seed, with adaLN and the output layer at zero', async () => {
    const a = VelocityNet.create({}, { seed: 5 }).getParameters();
    expect(VelocityNet.create({}, { seed: 5 }).getParameters()).toEqual(a);
    expect(VelocityNet.create({}, { seed: 6 }).getParameters()).not.toEqual(a);
    const net = VelocityNet.create({}, { seed: 5 });
    const params = net.parameters();
    expect(params['blocks.0.ada.weight']?.toArray().every((v) => v === 0)).toBe(true);
    const { x, t, cond } = randomBatch(net, 3, 1);
    const v = await net.velocity(x, t, cond);
    expect(v.shape).toEqual([3, 2]);
    expect(v.toArray().every((value) => value === 0)).toBe(true);
  });

  it('distinguishes the order of condition tokens', async () => {
    const net = randomizedNet({ condSlots: 2, vocabSize: 5 });
    const x = Tensor.zeros([1, 2]);
    const ab = await net.velocity(x, 0.5, Tensor.fromInt32([1, 2], [1, 2]));
    const ba = await net.velocity(x, 0.5, Tensor.fromInt32([2, 1], [1, 2]));
    expect(ab.toArray()).not.toEqual(ba.toArray());
  });

  it('rejects unknown config fields and out-of-range values', () => {
    expect(() => VelocityNet.create({ widht: 3 } as never)).toThrow(/unknown option 'widht'/);
    expect(() => VelocityNet.create({ width: 0 })).toThrow(RangeError);
    expect(() => VelocityNet.create({ timeFeatures: 7 })).toThrow(/even/);
    expect(() => VelocityNet.create({ depth: 1.5 })).toThrow(/integer/);
    expect(() => VelocityNet.create({}, { device: 'tpu' as never })).toThrow(RangeError);
    expect(() => VelocityNet.create({}, { seed: -1 })).toThrow(RangeError);
  });

  it('rejects bad inputs with clear errors and leaves the model unchanged', async () => {
    const net = randomizedNet({});
    const before = net.getParameters();
    const { x, t, cond } = randomBatch(net, 4, 2);
    await expect(net.velocity(Tensor.zeros([4, 3]), t, cond)).rejects.toThrow(/shape \[4, 2\]/);
    await expect(net.velocity(x, Tensor.zeros([3]), cond)).rejects.toThrow(/t must have shape/);
    await expect(net.velocity(x, t, Tensor.zeros([4, 1]) as never)).rejects.toThrow(/int32/);
    await expect(net.velocity(x, 1.5, cond)).rejects.toThrow(/\[0, 1\]/);
    await expect(net.velocity(x, t, Tensor.fromInt32([0, 1, 2, 99], [4, 1]))).rejects.toThrow(/\[0, 16\)/);
    const nan = x.clone();
    nan.storage[3] = Number.NaN;
    await expect(net.velocity(nan, t, cond)).rejects.toThrow(NumericError);
    const gone = x.clone();
    gone.dispose();
    await expect(net.velocity(gone, t, cond)).rejects.toThrow(DisposedError);
    await expect(net.velocity('x' as never, t, cond)).rejects.toThrow(TypeError);
    expect(() => net.setParameters(new Float32Array(3))).toThrow(RangeError);
    expect(net.getParameters()).toEqual(before);
    expect((await net.velocity(x, t, cond)).shape).toEqual([4, 2]);
  });

  it('is unusable after dispose', async () => {
    const net = VelocityNet.create({});
    net.dispose();
    expect(() => net.getParameters()).toThrow(DisposedError);
    const x = Tensor.zeros([1, 2]);
    await expect(net.velocity(x, 0.5, Tensor.fromInt32([1], [1, 1]))).rejects.toThrow(DisposedError);
  });
});
