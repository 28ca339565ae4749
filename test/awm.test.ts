// AWM (docs/algorithms.md §7): awmLoss against the float64 case of its design notes, finite differences and the
// official training step in PyTorch; the trainer raises the toy2d reward, soft-updates its EMA anchor, resumes bit
// for bit, trains LoRA adapters over a frozen base, and rejects bad options.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from '../lib/core/safetensors.js';
import {
  AWM,
  type AWMOptions,
  type AwmLossOptions,
  awmLoss,
  awmStrata,
  type Prompt,
  sample,
  Tensor,
  tasks,
  type VelocityNet,
} from '../lib/index.js';
import {
  CPU,
  netWithParameters,
  onDevices,
  type Placement,
  RED,
  relativeError,
  runReference,
  tempFolder,
  toy2dBaseParameters,
  trainedSet,
  UPPER,
} from './helpers.js';
import { epochsOutcome, resumesOnDevice } from './trainer-device.js';

const { toy2d } = tasks;
const dir = tempFolder('awm');

const f32 = (values: number[], shape: number[]) => Tensor.from(Float32Array.from(values), shape);

describe('awmLoss', () => {
  // The float64 case of the design notes: D = 2, one row at t = 0.5, A = 0.5, klCoef 1e-3, emaCoef 1 with v_ema = v_θ.
  const one = {
    vTheta: f32([0, 1], [1, 2]),
    vRef: f32([0.1, 0.9], [1, 2]),
    vEma: f32([0, 1], [1, 2]),
    x0: f32([1, -1], [1, 2]),
    eps: f32([0.5, 0.5], [1, 2]),
    t: f32([0.5], [1]),
    advantages: f32([0.5], [1]),
  };

  it('gives the float64 case: l, log q, the loss and the ghuber gradient', () => {
    const r = awmLoss(one);
    expect(r.fm).toBeCloseTo(0.25, 12);
    expect(r.logQ).toBeCloseTo(-1.4078890071941796, 9);
    expect(r.loss).toBeCloseTo(-0.49999, 9);
    expect(r.grad.storage[0]).toBeCloseTo(0.3534533905, 7);
    expect(r.grad.storage[1]).toBeCloseTo(-0.3534533905, 7);
    const uniform = awmLoss(one, { weighting: 'uniform', klCoef: 0, emaCoef: 0 });
    expect(Array.from(uniform.grad.storage)).toEqual([0.25, -0.25]);
  });

  it('has the gradient of −A·log q + klCoef·KL + emaCoef·KL_ema (central differences)', () => {
    const B = 3;
    const D = 4;
    const rand = (seed: number, shape: number[]) => Tensor.randn(shape, { seed, stream: 60 });
    const inputs = {
      vTheta: rand(1, [B, D]),
      vRef: rand(2, [B, D]),
      vEma: rand(3, [B, D]),
      x0: rand(4, [B, D]),
      eps: rand(5, [B, D]),
      t: f32([0.9, 0.5, 0.2], [B]),
      advantages: f32([0.7, -0.4, 0.1], [B]),
    };
    const options: AwmLossOptions = { klCoef: 0.3, emaCoef: 0.5 };
    // The surrogate whose gradient the loss has: −A·log q (its value is −A at ratio 1) plus the two KL terms.
    const surrogate = (v: Float64Array) => {
      let total = 0;
      for (let b = 0; b < B; b++) {
        let sq = 0;
        let kl = 0;
        let ema = 0;
        for (let d = 0; d < D; d++) {
          const i = b * D + d;
          const target = (inputs.eps.storage[i] as number) - (inputs.x0.storage[i] as number);
          sq += ((v[i] as number) - target) ** 2;
          kl += ((v[i] as number) - (inputs.vRef.storage[i] as number)) ** 2;
          ema += ((v[i] as number) - (inputs.vEma.storage[i] as number)) ** 2;
        }
        const t = inputs.t.storage[b] as number;
        const logQ = -(t / 0.25) * ((sq / D + 1e-10) ** 0.25 - 1e-10 ** 0.25);
        total += -(inputs.advantages.storage[b] as number) * logQ + (0.3 * kl) / D + (0.5 * ema) / D;
      }
      return total / B;
    };
    const { grad } = awmLoss(inputs, options);
    const v = Float64Array.from(inputs.vTheta.storage);
    const numeric = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const h = 1e-6;
      const up = Float64Array.from(v);
      const down = Float64Array.from(v);
      up[i] = (up[i] as number) + h;
      down[i] = (down[i] as number) - h;
      numeric[i] = (surrogate(up) - surrogate(down)) / (2 * h);
    }
    expect(relativeError(grad.storage, numeric)).toBeLessThan(1e-5);
  });

  it('matches the official training step written in PyTorch (float64 autograd), for every weighting', async () => {
    const B = 7;
    const D = 10;
    const tensors: Record<string, SafeTensor> = {};
    const cases: (AwmLossOptions & { name: string; clipRange: number })[] = [];
    const inputs: Record<string, Parameters<typeof awmLoss>[0]> = {};
    let seed = 10;
    for (const weighting of ['ghuber', 'uniform', 't', 't2', 'huber'] as const) {
      for (const [klCoef, emaCoef] of [
        [1e-3, 1],
        [0, 0],
      ] as const) {
        const name = `c${cases.length}`;
        const rand = (shape: number[]) => Tensor.randn(shape, { seed: seed++, stream: 61 });
        const t = Tensor.rand([B], { seed: seed++, stream: 62 }).storage.map((u) => 0.05 + 0.95 * u);
        const adv = Tensor.rand([B], { seed: seed++, stream: 63 }).storage.map((u) => 2 * u - 1);
        const c = {
          vTheta: rand([B, D]),
          vRef: rand([B, D]),
          vEma: rand([B, D]),
          x0: rand([B, D]),
          eps: rand([B, D]),
          t: Tensor.from(t, [B]),
          advantages: Tensor.from(adv, [B]),
        };
        inputs[name] = c;
        cases.push({ name, weighting, ghuberPower: 0.25, klCoef, emaCoef, clipRange: 1 });
        const st = (x: Tensor) => ({ dtype: 'F32', shape: x.shape, data: x.storage as Float32Array }) as SafeTensor;
        Object.assign(tensors, {
          [`${name}.vTheta`]: st(c.vTheta),
          [`${name}.vRef`]: st(c.vRef),
          [`${name}.vEma`]: st(c.vEma),
          [`${name}.x0`]: st(c.x0),
          [`${name}.eps`]: st(c.eps),
          [`${name}.t`]: st(c.t),
          [`${name}.adv`]: st(c.advantages),
        });
      }
    }
    await writeSafetensorsFile(join(dir, 'in.safetensors'), tensors, { cases: JSON.stringify(cases) });
    runReference('awm_loss.py', join(dir, 'in.safetensors'), join(dir, 'out.safetensors'));
    const out = (await readSafetensorsFile(join(dir, 'out.safetensors'))).tensors;
    for (const { name, clipRange: _, ...options } of cases) {
      const ours = awmLoss(inputs[name] as Parameters<typeof awmLoss>[0], options);
      const loss = Number((out[`${name}.loss`]?.data as Float64Array | undefined)?.[0]);
      // ε − x0 in float32 against float64: the errors agree to float32 rounding.
      expect(Math.abs(ours.loss - loss), name).toBeLessThan(1e-6 * Math.max(1, Math.abs(loss)));
      expect(relativeError(ours.grad.storage, out[`${name}.grad`]?.data as Float64Array), name).toBeLessThan(1e-5);
    }
  });

  it('rejects missing anchors and bad times with errors that name them', () => {
    const { vRef: _, ...noRef } = one;
    expect(() => awmLoss(noRef)).toThrow(/vRef is required/);
    expect(() => awmLoss({ ...one, t: f32([0], [1]) })).toThrow(/t must be in \(0, 1\]/);
    expect(() => awmLoss(one, { weighting: 'cubic' as 'ghuber' })).toThrow(/weighting/);
  });
});

describe('awmStrata', () => {
  it("gives the code's strata: ⌊linspace(1, ⌊0.9·N⌋, K + 1)⌋ without t = 1", () => {
    expect(Array.from(awmStrata(14, 6, 0.9, false))).toEqual([1, 2, 4, 6, 8, 10, 12]);
    expect(Array.from(awmStrata(14, 6, 0.9, true))).toEqual([0, 2, 4, 6, 8, 10, 12]);
    expect(() => awmStrata(1, 6, 0.9, false)).toThrow(/more rollout steps/);
  });
});

describe('AWM', () => {
  let base: Float32Array;
  beforeAll(async () => {
    base = await toy2dBaseParameters();
  });
  const baseNet = (at: Placement = CPU) => netWithParameters(toy2d.config, base, at);
  const OPTIONS: AWMOptions = {
    prompts: [toy2d.prompts[0]] as Prompt[],
    rewards: RED,
    groups: 8,
    groupSize: 16,
    lr: 1e-3,
    seed: 3,
  };
  // The device tests' size: 16 samples an epoch, each rolled out in 10 steps and trained at 6 times.
  const SMALL: AWMOptions = { ...OPTIONS, rewards: UPPER, groups: 2, groupSize: 8 };

  async function meanRedReward(net: VelocityNet): Promise<number> {
    const cond = Tensor.fromInt32(new Int32Array(512), [512, 1]);
    const { x } = await sample(net, { cond, solver: 'euler', steps: 40, seed: 99 });
    const scores = toy2d.rewards.red(x);
    return scores.reduce((s, v) => s + v, 0) / scores.length;
  }

  it('raises the toy2d reward and reports its statistics, soft-updating the anchor with min(0.001·i, 0.3)', async () => {
    const net = baseNet();
    const before = await meanRedReward(net);
    const trainer = new AWM(net, OPTIONS);
    const history = await trainer.run({ epochs: 30 });
    const after = await meanRedReward(net);
    expect(after).toBeGreaterThan(before + 0.3);
    const last = history[history.length - 1] as (typeof history)[number];
    expect(last.emaDecay).toBeCloseTo(0.03, 12);
    expect(last.fm).toBeGreaterThan(0);
    expect(last.kl).toBeGreaterThan(0);
    expect(last.advantageHistogram.reduce((s, n) => s + n, 0)).toBe(128);
    net.dispose();
  }, 120_000);

  it('resumes from a checkpoint to exactly the state of an uninterrupted run, with or without LoRA', async () => {
    for (const lora of [undefined, { rank: 4, alpha: 8, targets: ['fc1', 'fc2'], seed: 2 }]) {
      const options = { ...OPTIONS, lora };
      const straight = baseNet();
      await new AWM(straight, options).run({ epochs: 4 });
      const first = baseNet();
      const path = join(dir, 'awm.safetensors');
      await new AWM(first, options).run({ epochs: 2, checkpoint: { path } });
      first.dispose();
      const resumed = await AWM.resume(path, options);
      await resumed.run({ epochs: 2 });
      for (const set of ['theta', 'old', 'ref', 'ema'] as const) {
        const x = trainedSet(straight, set);
        const y = trainedSet(resumed.net, set);
        expect(Buffer.from(y.buffer).equals(Buffer.from(x.buffer)), `${set} lora=${lora !== undefined}`).toBe(true);
      }
      if (lora !== undefined) expect(resumed.net.getParameters()).toEqual(base);
      await expect(AWM.resume(path, { ...options, emaCoef: 0.5 })).rejects.toThrow(/other options/);
      straight.dispose();
      resumed.net.dispose();
    }
  }, 120_000);

  it("rolls out θ with SA-Solver, the code's sampler, with solver 'sa-solver'", async () => {
    const net = baseNet();
    const stats = await new AWM(net, { ...OPTIONS, solver: 'sa-solver' }).epoch();
    const fresh = baseNet();
    const cond = Tensor.fromInt32(new Int32Array(128), [128, 1]);
    const { x } = await sample(fresh, { cond, steps: 10, seed: 3, solver: 'sa-solver' });
    const rewards = toy2d.rewards.red(x);
    expect(stats.reward).toBeCloseTo(rewards.reduce((s, v) => s + v, 0) / rewards.length, 12);
    expect(() => new AWM(fresh, { ...OPTIONS, saSolver: { tau: 0 } })).toThrow(/saSolver applies to solver/);
    net.dispose();
    fresh.dispose();
  });

  it('trains the same on the GPU as on the CPU: two epochs, their statistics and the EMA anchor', async () => {
    // The anchor at decay 0.3 after the first step: at the default 0.001·s it stays within 1e-3 of θ, and its KL
    // (about decay² times the KL to the base, 2e-7) is below what TF32's rounding of the two networks moves.
    const options = { ...SMALL, emaDecayRate: 0.3 };
    await onDevices((at) =>
      epochsOutcome(new AWM(baseNet(at), options), 2, ['fm', 'logQ', 'kl', 'emaKl'], ['theta', 'old']),
    );
  });

  it('resumes on the device it is given, bit for bit (a run trained on the GPU goes on there)', async () => {
    await onDevices((at) =>
      resumesOnDevice(
        at,
        join(dir, `awm-${at.device}-${at.precision}.safetensors`),
        (on) => new AWM(baseNet(on), SMALL),
        (path, on) => AWM.resume(path, SMALL, on),
      ),
    );
  });

  it('rejects bad options with errors that name them', () => {
    const net = baseNet();
    expect(() => new AWM(net, { ...OPTIONS, weighting: 'x' as 'ghuber' })).toThrow(/weighting/);
    expect(() => new AWM(net, { ...OPTIONS, steps: 1 })).toThrow(/more rollout steps/);
    expect(() => new AWM(net, { ...OPTIONS, ghuberPower: 2 })).toThrow(/ghuberPower/);
    net.dispose();
  });
});
