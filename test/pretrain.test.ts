// Flow-matching pre-training: the loss falls and the modes are learnt, resume is exact, micro-batches add up, steps
// serialise without blocking the event loop, bad options and diverging steps change nothing; the shapes pre-training
// job's EMA and cosine schedule; checkpoints round-trip and bad files are refused.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CheckpointError,
  FlowMatchingTrainer,
  loadCheckpoint,
  NumericError,
  sample,
  saveCheckpoint,
  Tensor,
  tasks,
  VelocityNet,
} from '../lib/index.js';
import { pretrainShapes } from '../lib/jobs/pretrain.js';
import { onDevices, relativeError, tempFolder, tolerance } from './helpers.js';

const dir = tempFolder('pretrain');

const OPTIONS = { lr: 2e-3, warmupSteps: 20, seed: 3, condDropout: 0.1 } as const;

async function trainSteps(trainer: FlowMatchingTrainer, from: number, to: number) {
  const losses: number[] = [];
  for (let i = from; i < to; i++) {
    const { x0, cond } = tasks.toy2d.batch(128, 11, i);
    losses.push((await trainer.step({ x0, cond })).loss);
  }
  return losses;
}

const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;

describe('flow-matching pre-training', () => {
  it('lowers the loss clearly on the conditional 8-Gaussian mixture and learns the modes', async () => {
    const net = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
    const trainer = new FlowMatchingTrainer(net, OPTIONS);
    const losses = await trainSteps(trainer, 0, 300);
    expect(net.step).toBe(300);
    expect(mean(losses.slice(-30))).toBeLessThan(0.6 * mean(losses.slice(0, 10)));
    const modes = Int32Array.from({ length: 256 }, (_, i) => i % tasks.toy2d.MODES);
    const { x } = await sample(net, { cond: tasks.toy2d.conditions(modes), solver: 'dpm2', steps: 10, seed: 5 });
    const score = tasks.toy2d.score(x.storage, modes);
    expect(score.modeAccuracy).toBeGreaterThan(0.8);
  });

  it('resumes from a checkpoint to exactly the parameters of an uninterrupted run', async () => {
    await onDevices(async (at) => {
      const straight = VelocityNet.create(tasks.toy2d.config, { seed: 2, ...at });
      await trainSteps(new FlowMatchingTrainer(straight, OPTIONS), 0, 12);

      const first = VelocityNet.create(tasks.toy2d.config, { seed: 2, ...at });
      await trainSteps(new FlowMatchingTrainer(first, OPTIONS), 0, 7);
      const path = join(dir, `resume-${at.device}-${at.precision}.safetensors`);
      await saveCheckpoint(path, first, { metadata: { note: 'halfway' } });
      first.dispose();

      const { net: resumed, step, metadata } = await loadCheckpoint(path, at);
      expect([resumed.device, resumed.precision]).toEqual([at.device, at.precision]);
      expect(step).toBe(7);
      expect(metadata).toEqual({ note: 'halfway' });
      expect(resumed.step).toBe(7);
      await trainSteps(new FlowMatchingTrainer(resumed, OPTIONS), 7, 12);
      expect(resumed.getParameters()).toEqual(straight.getParameters());
      return { parameters: straight.getParameters() };
    });
  });

  it('accumulates gradients over micro-batches like one large batch', async () => {
    await onDevices(async (at) => {
      const a = VelocityNet.create(tasks.toy2d.config, { seed: 4, ...at });
      const b = VelocityNet.create(tasks.toy2d.config, { seed: 4, ...at });
      await trainSteps(new FlowMatchingTrainer(a, OPTIONS), 0, 5);
      await trainSteps(new FlowMatchingTrainer(b, { ...OPTIONS, microBatch: 48 }), 0, 5);
      const pa = a.getParameters();
      const pb = b.getParameters();
      let diff = 0;
      for (let i = 0; i < pa.length; i++) diff = Math.max(diff, Math.abs((pa[i] as number) - (pb[i] as number)));
      expect(diff).toBeLessThan(tolerance(at, 1e-5));
      return { parameters: pb };
    });
  });

  it('serialises concurrent steps on one model in call order', async () => {
    const a = VelocityNet.create(tasks.toy2d.config, { seed: 6 });
    const b = VelocityNet.create(tasks.toy2d.config, { seed: 6 });
    const ta = new FlowMatchingTrainer(a, OPTIONS);
    const tb = new FlowMatchingTrainer(b, OPTIONS);
    const batches = [0, 1, 2, 3].map((i) => tasks.toy2d.batch(64, 1, i));
    const concurrent = await Promise.all(batches.map((batch) => ta.step(batch)));
    const sequential = [];
    for (const batch of batches) sequential.push(await tb.step(batch));
    expect(concurrent.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(concurrent).toEqual(sequential);
    expect(a.getParameters()).toEqual(b.getParameters());
  });

  it('keeps the event loop running during a long step', async () => {
    const net = VelocityNet.create({ preset: 'M' });
    const trainer = new FlowMatchingTrainer(net);
    const x0 = Tensor.randn([512, 768], { seed: 1 });
    const cond = Tensor.zeros([512, 8], 'int32');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    await trainer.step({ x0, cond });
    const elapsed = performance.now() - started;
    clearInterval(timer);
    expect(elapsed).toBeGreaterThan(50);
    expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 5 / 4));
  });

  it('rejects bad options and bad batches, leaving the model unchanged', async () => {
    const net = VelocityNet.create(tasks.toy2d.config, { seed: 7 });
    expect(() => new FlowMatchingTrainer(net, { learningRate: 1 } as never)).toThrow(/unknown option 'learningRate'/);
    expect(() => new FlowMatchingTrainer(net, { lr: -1 })).toThrow(RangeError);
    expect(() => new FlowMatchingTrainer(net, { schedule: 'step' as never })).toThrow(/schedule/);
    expect(() => new FlowMatchingTrainer(net, { condDropout: 2 })).toThrow(RangeError);
    const trainer = new FlowMatchingTrainer(net, OPTIONS);
    const before = net.getParameters();
    const { x0, cond } = tasks.toy2d.batch(16, 1, 0);
    x0.storage[5] = Number.POSITIVE_INFINITY;
    await expect(trainer.step({ x0, cond })).rejects.toThrow(NumericError);
    await expect(trainer.step({ x0: Tensor.zeros([16, 3]), cond })).rejects.toThrow(RangeError);
    await expect(trainer.step(undefined as never)).rejects.toThrow(TypeError);
    expect(net.getParameters()).toEqual(before);
    expect(net.step).toBe(0);
  });

  it('fails a diverging step with a NumericError and applies nothing', async () => {
    await onDevices(async (at) => {
      const net = VelocityNet.create(tasks.toy2d.config, { seed: 8, ...at });
      const trainer = new FlowMatchingTrainer(net, OPTIONS);
      // Finite parameters so large that the forward overflows.
      net.setParameters(new Float32Array(net.paramCount).fill(1e30));
      const before = net.getParameters();
      const { x0, cond } = tasks.toy2d.batch(16, 1, 0);
      await expect(trainer.step({ x0, cond })).rejects.toThrow(NumericError);
      expect(net.getParameters()).toEqual(before);
      expect(net.step).toBe(0);
      return {};
    });
  });
});

describe('shapes pre-training', () => {
  // Config D at a test's size: the shapes world's images and prompts, one narrow block.
  const SMALL = { arch: 'dit', depth: 1, width: 32, heads: 2, mlpRatio: 2 } as const;
  const RECIPE = { batch: 8, lr: 1e-3, condDropout: 0.1, seed: 4 };

  it('writes the moving average of the weights when asked', async () => {
    const plain = VelocityNet.create(SMALL, { seed: 1 });
    const w0 = plain.getParameters();
    await pretrainShapes(plain, { ...RECIPE, steps: 1 });
    const w1 = plain.getParameters();
    await pretrainShapes(plain, { ...RECIPE, steps: 1 });
    const w2 = plain.getParameters();

    const averaged = VelocityNet.create(SMALL, { seed: 1 });
    await pretrainShapes(averaged, { ...RECIPE, steps: 2, ema: 0.5 });
    // The decay ramps up as (1 + n)/(10 + n): 1/10, then 2/11.
    const expected = Array.from(w0, (v, i) => {
      const first = 0.1 * v + 0.9 * (w1[i] as number);
      return (2 / 11) * first + (9 / 11) * (w2[i] as number);
    });
    // Compared as moves away from w0, which are small in the warm-up.
    const moved = (w: ArrayLike<number>) => Array.from(w0, (v, i) => (w[i] as number) - v);
    expect(relativeError(moved(averaged.getParameters()), moved(expected))).toBeLessThan(1e-3);
    expect(relativeError(moved(w2), moved(expected))).toBeGreaterThan(0.05);
  });

  it('decays the learning rate to a hundredth on a cosine schedule, and rejects bad options', async () => {
    const net = VelocityNet.create(SMALL, { seed: 2 });
    const cosine = await pretrainShapes(net, { ...RECIPE, steps: 120, schedule: 'cosine' });
    expect(cosine.lr).toBeCloseTo(1e-5, 9);
    const constant = await pretrainShapes(net, { ...RECIPE, steps: 1 });
    expect(constant.lr).toBeCloseTo(1e-3, 9);
    const before = net.getParameters();
    await expect(pretrainShapes(net, { ...RECIPE, minutes: 1, schedule: 'cosine' })).rejects.toThrow(/needs steps/);
    await expect(pretrainShapes(net, { ...RECIPE, steps: 1, ema: 1 })).rejects.toThrow(
      /ema must be a number in \[0, 0.999999\]/,
    );
    expect(net.getParameters()).toEqual(before);
  });
});

describe('checkpoints', () => {
  it('round-trips parameters and config without optimizer state', async () => {
    const net = VelocityNet.create({ width: 16, depth: 2, condSlots: 3 }, { seed: 9 });
    const path = join(dir, 'plain.safetensors');
    await saveCheckpoint(path, net);
    const { net: loaded, step } = await loadCheckpoint(path);
    expect(step).toBe(0);
    expect(loaded.config).toEqual(net.config);
    expect(loaded.getParameters()).toEqual(net.getParameters());
  });

  it('rejects missing, corrupt, truncated and mismatched files, leaving the target unchanged', async () => {
    const net = VelocityNet.create({ width: 16 }, { seed: 10 });
    const path = join(dir, 'good.safetensors');
    await saveCheckpoint(path, net);
    const bytes = readFileSync(path);
    const target = VelocityNet.create({ width: 16 }, { seed: 11 });
    const before = target.getParameters();

    await expect(loadCheckpoint(join(dir, 'missing.safetensors'))).rejects.toThrow(/missing\.safetensors/);
    const truncated = join(dir, 'truncated.safetensors');
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 10));
    await expect(loadCheckpoint(truncated, { into: target })).rejects.toThrow(CheckpointError);
    const garbage = join(dir, 'garbage.safetensors');
    writeFileSync(garbage, Buffer.from('this is not a checkpoint at all'));
    await expect(loadCheckpoint(garbage, { into: target })).rejects.toThrow(CheckpointError);
    const other = VelocityNet.create({ width: 8 }, { seed: 10 });
    const otherPath = join(dir, 'other.safetensors');
    await saveCheckpoint(otherPath, other);
    await expect(loadCheckpoint(otherPath, { into: target })).rejects.toThrow(/does not match/);
    expect(target.getParameters()).toEqual(before);
  });
});
