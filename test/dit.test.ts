// The DiT (arch 'dit', docs/dit.md) through the public API: config validation, pre-training, sampling with every
// solver, checkpoints, and the DiffusionNFT and FlowGRPO trainers on a tiny image-like task.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CONFIG_D,
  DiffusionNFT,
  FlowGRPO,
  FlowMatchingTrainer,
  loadCheckpoint,
  type Prompt,
  sample,
  saveCheckpoint,
  Tensor,
  VelocityNet,
} from '../lib/index.js';
import { TINY_DIT_RGB, tempFolder } from './helpers.js';

const dir = tempFolder('dit');

// 4×4×3 images in 4 patches, 2 heads of 8.
const TINY = { ...TINY_DIT_RGB, vocabSize: 3, condSlots: 1 } as const;

// The image-like task: token 1 asks for a red image, token 2 for a blue one (HWC, values ±1 plus noise).
function batch(n: number, step: number): { x0: Tensor; cond: Tensor<'int32'> } {
  const noise = Tensor.randn([n, 48], { seed: step, stream: 70 }).storage;
  const tokens = Int32Array.from({ length: n }, (_, i) => 1 + ((i + step) % 2));
  const x0 = new Float32Array(n * 48);
  for (let i = 0; i < x0.length; i++) {
    const channel = i % 3;
    const wanted = tokens[Math.floor(i / 48)] === 1 ? 0 : 2;
    x0[i] = (channel === wanted ? 1 : -1) + 0.1 * (noise[i] as number);
  }
  return { x0: Tensor.from(x0, [n, 48]), cond: Tensor.fromInt32(tokens, [n, 1]) };
}

// Mean of the red channel minus the blue one, per image.
function redness(samples: Tensor): number[] {
  const [n, d] = samples.shape as [number, number];
  return Array.from({ length: n }, (_, b) => {
    let sum = 0;
    for (let i = 0; i < d; i += 3)
      sum += (samples.storage[b * d + i] as number) - (samples.storage[b * d + i + 2] as number);
    return sum / (d / 3);
  });
}

async function pretrained(steps: number): Promise<{ net: VelocityNet; losses: number[] }> {
  const net = VelocityNet.create(TINY, { seed: 1 });
  const trainer = new FlowMatchingTrainer(net, { lr: 3e-3, seed: 2, condDropout: 0.1 });
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) losses.push((await trainer.step(batch(64, i))).loss);
  return { net, losses };
}

const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;

describe('DiT config', () => {
  it('resolves preset D and the DiT defaults', () => {
    const net = VelocityNet.create({ preset: 'D' });
    expect(net.config).toEqual(CONFIG_D);
    expect(net.paramCount).toBe(2843340);
    expect(net.params.map((p) => p.name).slice(5, 9)).toEqual([
      'patch_embed.weight',
      'patch_embed.bias',
      'blocks.0.ada.weight',
      'blocks.0.ada.bias',
    ]);
    expect(VelocityNet.create({ arch: 'dit', depth: 1 }).config).toEqual({ ...CONFIG_D, depth: 1 });
    expect(VelocityNet.create(TINY).config).toEqual(TINY);
  });

  it('rejects inconsistent configs with errors that name the field', () => {
    expect(() => VelocityNet.create({ ...TINY, dataDim: 47 })).toThrow(
      /config\.dataDim must equal imageSize² · channels = 48/,
    );
    expect(() => VelocityNet.create({ ...TINY, heads: 3 })).toThrow(
      /config\.width \(16\) must be divisible by heads \(3\)/,
    );
    expect(() => VelocityNet.create({ ...TINY, imageSize: 5, dataDim: 75 })).toThrow(
      /config\.imageSize \(5\) must be divisible by patch \(2\)/,
    );
    expect(() => VelocityNet.create({ ...TINY, width: 18, heads: 3 })).toThrow(/config\.width must be a multiple of 4/);
    expect(() => VelocityNet.create({ arch: 'cnn' } as never)).toThrow(/config\.arch must be 'mlp' or 'dit'/);
    expect(() => VelocityNet.create({ arch: 'dit', preset: 'M' })).toThrow(
      /config\.arch 'dit' does not match preset 'M'/,
    );
    expect(() => VelocityNet.create({ patch: 2 } as never)).toThrow(/config\.patch applies only to arch 'dit'/);
  });
});

describe('DiT training and sampling', () => {
  it('lowers the flow-matching loss, samples with every solver and round-trips a checkpoint', async () => {
    const { net, losses } = await pretrained(80);
    expect(mean(losses.slice(-10))).toBeLessThan(0.7 * mean(losses.slice(0, 5)));

    const cond = Tensor.fromInt32(
      Int32Array.from({ length: 32 }, (_, i) => 1 + (i % 2)),
      [32, 1],
    );
    for (const solver of ['euler', 'heun', 'dpm2'] as const) {
      const { x } = await sample(net, { cond, solver, steps: 10, seed: 5, cfgScale: 1.5 });
      expect(x.shape).toEqual([32, 48]);
      const r = redness(x);
      // Red prompts (even rows) come out redder than blue ones.
      expect(mean(r.filter((_, i) => i % 2 === 0))).toBeGreaterThan(mean(r.filter((_, i) => i % 2 === 1)) + 0.5);
    }

    const path = join(dir, 'dit.safetensors');
    await saveCheckpoint(path, net);
    const { net: loaded, step } = await loadCheckpoint(path);
    expect(loaded.config).toEqual(net.config);
    expect(step).toBe(80);
    expect(loaded.getParameters()).toEqual(net.getParameters());
    const x = Tensor.randn([3, 48], { seed: 1, stream: 71 });
    const c = Tensor.fromInt32(Int32Array.from([0, 1, 2]), [3, 1]);
    expect((await loaded.velocity(x, 0.5, c)).storage).toEqual((await net.velocity(x, 0.5, c)).storage);
    await expect(loadCheckpoint(path, { into: VelocityNet.create({ ...TINY, depth: 1 }) })).rejects.toThrow(
      /does not match/,
    );
    net.dispose();
    loaded.dispose();
  });

  it('runs DiffusionNFT and FlowGRPO epochs', async () => {
    const { net } = await pretrained(20);
    const prompts = [{ tokens: [1] }, { tokens: [2] }] as Prompt[];
    const rewards = { name: 'red', fn: redness };
    const nft = new DiffusionNFT(net, { prompts, rewards, groups: 2, groupSize: 4, lr: 1e-3, seed: 3, steps: 4 });
    const before = net.getParameters();
    const stats = await nft.epoch();
    expect(Number.isFinite(stats.loss) && stats.gradNorm > 0).toBe(true);
    expect(net.getParameters()).not.toEqual(before);

    const grpo = new FlowGRPO(net, { prompts, rewards, groups: 2, groupSize: 4, seed: 3, steps: 4, cfgScale: 1.5 });
    const grpoStats = await grpo.epoch();
    expect(Number.isFinite(grpoStats.loss)).toBe(true);
    net.dispose();
  });
});
