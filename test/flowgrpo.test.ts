// FlowGRPO: its SDE (the Euler ODE at a = 0, the ODE's marginals, steps and log-probabilities against float64
// formulas), grpoLoss against a float64 re-computation and finite differences, and the trainer (on-policy first step,
// toy2d reward, guidance interval, resume).
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  FlowGRPO,
  type FlowGRPOOptions,
  grpoLoss,
  type Prompt,
  sample,
  sampleSde,
  sdeLogProb,
  sdeStep,
  Tensor,
  tasks,
  timeGrid,
} from '../lib/index.js';
import {
  CPU,
  netWithParameters,
  onDevices,
  type Placement,
  RED,
  relativeError,
  tempFolder,
  toy2dBaseParameters,
} from './helpers.js';
import { resumesOnDevice } from './trainer-device.js';

const { toy2d } = tasks;
const dir = tempFolder('grpo');

// The base model: the 8-Gaussian mixture with condition dropout, so the null prompt samples the whole mixture.
let base: Float32Array;
beforeAll(async () => {
  base = await toy2dBaseParameters();
});

const baseNet = (at: Placement = CPU) => netWithParameters(toy2d.config, base, at);

const nullCond = (n: number) => Tensor.fromInt32(new Int32Array(n), [n, 1]);
const OPTIONS: FlowGRPOOptions = {
  prompts: [toy2d.prompts[0]] as Prompt[],
  rewards: RED,
  groups: 8,
  groupSize: 16,
  seed: 3,
  ...toy2d.flowGrpoDefaults,
};

// Algorithms.md 3.2: σ_t, the step mean, and the Gaussian log-density, in float64 written from the formulas.
function referenceStep(t: number, tNext: number, a: number, tFirst: number) {
  const dt = tNext - t;
  const sigma = a * Math.sqrt(t / (1 - (t === 1 ? tFirst : t)));
  return {
    sigma,
    std: sigma * Math.sqrt(-dt),
    mean: (x: number, v: number) => x + (v + ((sigma * sigma) / (2 * t)) * (x + (1 - t) * v)) * dt,
  };
}

function referenceLogp(
  xNext: ArrayLike<number>,
  mean: ArrayLike<number>,
  std: number,
  from: number,
  D: number,
): number {
  let sum = 0;
  for (let d = 0; d < D; d++) {
    const z = ((xNext[from + d] as number) - (mean[from + d] as number)) / std;
    sum += -0.5 * z * z - Math.log(std) - 0.5 * Math.log(2 * Math.PI);
  }
  return sum / D;
}

describe('the FlowGRPO SDE', () => {
  it('with a = 0 is the Euler ODE sampler', async () => {
    await onDevices(async (at) => {
      const net = baseNet(at);
      const cond = nullCond(33);
      const ode = await sample(net, { cond, solver: 'euler', steps: 10, seed: 4 });
      const sde = await sampleSde(net, { cond, steps: 10, a: 0, seed: 4 });
      expect(Array.from(sde.x.storage)).toEqual(Array.from(ode.x.storage));
      const noisy = await sampleSde(net, { cond, steps: 10, a: 0.7, seed: 4 });
      net.dispose();
      return { ode: ode.x.storage, sde: noisy.x.storage, logp: noisy.logp.storage };
    });
  });

  it('keeps the marginals of the ODE at several t (2-D model, many samples)', async () => {
    const net = baseNet();
    const n = 4096;
    const cond = nullCond(n);
    const grid = timeGrid(40);
    const ode = await sample(net, { cond, solver: 'euler', grid, seed: 5, trajectory: true });
    const sde = await sampleSde(net, { cond, grid, a: 0.7, seed: 6 });
    const moments = (states: Float32Array, k: number) => {
      // E x, E y, E x², E y², E |x|
      const m = new Float64Array(5);
      for (let i = 0; i < n; i++) {
        const x = states[(k * n + i) * 2] as number;
        const y = states[(k * n + i) * 2 + 1] as number;
        const values = [x, y, x * x, y * y, Math.hypot(x, y)];
        for (let j = 0; j < 5; j++) m[j] = (m[j] as number) + (values[j] as number) / n;
      }
      return Array.from(m);
    };
    for (const k of [10, 20, 30, 40]) {
      const a = moments(ode.trajectory?.storage as Float32Array, k);
      const b = moments(sde.trajectory.storage, k);
      for (let j = 0; j < a.length; j++)
        expect(Math.abs((a[j] as number) - (b[j] as number)), `t = ${grid[k]}, moment ${j}`).toBeLessThan(0.12);
    }
    net.dispose();
  });

  it('steps and log-probabilities match float64 formulas, and are finite at t = 1 and at the last trained step', async () => {
    const x = Tensor.randn([5, 3], { seed: 1 });
    const v = Tensor.randn([5, 3], { seed: 2 });
    const z = Tensor.randn([5, 3], { seed: 3 });
    for (const [t, tNext, tFirst] of [
      [1, 0.9, 0.9],
      [0.5, 0.4, 0.9],
      [0.2, 0.1, 0.9],
    ] as const) {
      const ours = sdeStep(x, v, z, { t, tNext, a: 0.7, tFirst });
      const ref = referenceStep(t, tNext, 0.7, tFirst);
      expect(ours.std).toBeCloseTo(ref.std, 6);
      expect(ours.sigma).toBeCloseTo(ref.sigma, 6);
      const mean = Array.from(x.storage, (xi, i) => ref.mean(xi, v.storage[i] as number));
      expect(relativeError(ours.mean.storage, mean)).toBeLessThan(1e-6);
      const xNext = mean.map((m, i) => m + ref.std * (z.storage[i] as number));
      expect(relativeError(ours.xNext.storage, xNext)).toBeLessThan(1e-6);
      const logp = sdeLogProb(ours.xNext, ours.mean, ours.std);
      for (let b = 0; b < 5; b++) {
        expect(logp[b]).toBeCloseTo(referenceLogp(ours.xNext.storage, ours.mean.storage, ours.std, 3 * b, 3), 4);
      }
      const summed = sdeLogProb(ours.xNext, ours.mean, ours.std, { sum: true });
      expect(summed[0]).toBeCloseTo(3 * (logp[0] as number), 3);
    }
    const net = baseNet();
    const rollout = await sampleSde(net, { cond: nullCond(16), steps: 10, seed: 2 });
    expect(rollout.logp.shape).toEqual([10, 16]);
    const logp = rollout.logp.storage;
    for (const step of [0, 8]) {
      for (let b = 0; b < 16; b++) expect(Number.isFinite(logp[step * 16 + b])).toBe(true);
    }
    net.dispose();
  });
});

// The GRPO loss written from docs/algorithms.md §3.4 in float64: per row, log p from the step mean, the ratio, the PPO
// max, the code's KL; the mean over rows. x_next is data (no gradient).
function referenceGrpo(
  rows: {
    x: number[];
    xNext: number[];
    v: number[];
    vRef: number[];
    t: number;
    tNext: number;
    adv: number;
    logpOld: number;
  }[],
  vs: number[][],
  clip: number,
  kl: number,
): number {
  let total = 0;
  rows.forEach((row, r) => {
    const k = referenceStep(row.t, row.tNext, 0.7, row.tNext);
    const D = row.x.length;
    const mean = row.x.map((x, d) => k.mean(x, vs[r]?.[d] as number));
    const meanRef = row.x.map((x, d) => k.mean(x, row.vRef[d] as number));
    const logp = referenceLogp(row.xNext, mean, k.std, 0, D);
    const ratio = Math.exp(logp - row.logpOld);
    const ppo = Math.max(-row.adv * ratio, -row.adv * Math.min(Math.max(ratio, 1 - clip), 1 + clip));
    const klTerm =
      (mean.reduce((s, m, d) => s + (m - (meanRef[d] as number)) ** 2, 0) / D / (2 * k.sigma * k.sigma)) * kl;
    total += ppo + klTerm;
  });
  return total / rows.length;
}

describe('grpoLoss', () => {
  it('matches a float64 re-computation and its finite-difference gradient, clipped and unclipped, both signs', () => {
    const R = 6;
    const D = 3;
    const draw = (seed: number, stream: number, n: number) =>
      Array.from(Tensor.randn([n], { seed, stream }).storage, (v) => Math.fround(v));
    const ts = [0.9, 0.7, 0.5, 0.3, 0.8, 0.6];
    const rows = ts.map((t, r) => {
      const x = draw(r, 1, D);
      const v = draw(r, 2, D);
      const k = referenceStep(t, t - 0.1, 0.7, t - 0.1);
      const mean = x.map((xi, d) => k.mean(xi, v[d] as number));
      const xNext = mean.map((m, d) => Math.fround(m + k.std * (draw(r, 3, D)[d] as number)));
      const vTheta = v.map((vi, d) => Math.fround(vi + 0.3 * (draw(r, 4, D)[d] as number)));
      // Half the rows with a ratio far outside 1 ± ε, half inside; positive and negative advantages.
      const logpOld = Math.fround(referenceLogp(xNext, mean, k.std, 0, D) + (r % 2 === 0 ? 0.5 : 0));
      return {
        x,
        xNext,
        v: vTheta,
        vRef: draw(r, 5, D),
        t: Math.fround(t),
        tNext: Math.fround(t - 0.1),
        adv: r < 3 ? 1.5 : -0.7,
        logpOld,
      };
    });
    const tensor = (key: 'x' | 'xNext' | 'v' | 'vRef') =>
      Tensor.from(
        rows.flatMap((row) => row[key]),
        [R, D],
      );
    const scalars = (key: 't' | 'tNext' | 'adv' | 'logpOld') =>
      Tensor.from(
        rows.map((row) => row[key]),
        [R],
      );
    for (const [clip, kl] of [
      [0.05, 0],
      [0.05, 0.3],
      [10, 0],
    ] as const) {
      const ours = grpoLoss(
        {
          vTheta: tensor('v'),
          vRef: tensor('vRef'),
          x: tensor('x'),
          xNext: tensor('xNext'),
          t: scalars('t'),
          tNext: scalars('tNext'),
          advantages: scalars('adv'),
          logpOld: scalars('logpOld'),
        },
        { clipRange: clip, klCoef: kl },
      );
      const vs = rows.map((row) => [...row.v]);
      expect(ours.loss).toBeCloseTo(referenceGrpo(rows, vs, clip, kl), 5);
      const grad: number[] = [];
      const h = 1e-6;
      for (let r = 0; r < R; r++) {
        for (let d = 0; d < D; d++) {
          const plus = vs.map((row) => [...row]);
          const minus = vs.map((row) => [...row]);
          (plus[r] as number[])[d] = (vs[r]?.[d] as number) + h;
          (minus[r] as number[])[d] = (vs[r]?.[d] as number) - h;
          grad.push((referenceGrpo(rows, plus, clip, kl) - referenceGrpo(rows, minus, clip, kl)) / (2 * h));
        }
      }
      expect(relativeError(ours.grad.storage, grad), `ε ${clip} kl ${kl}`).toBeLessThan(1e-4);
      const clipped = rows.filter((_, r) => {
        const one = [rows[r] as (typeof rows)[number]];
        // With an unbounded clip the loss of one row is −A·ratio.
        const ratio = -referenceGrpo(one, [vs[r] as number[]], 1e9, 0) / (one[0] as { adv: number }).adv;
        return Math.abs(ratio - 1) > clip;
      }).length;
      expect(ours.clipFraction).toBeCloseTo(clipped / R, 12);
    }
  });

  it('rejects bad inputs', () => {
    const one = Tensor.zeros([1, 2]);
    const scalar = (v: number) => Tensor.from([v], [1]);
    const base = {
      vTheta: one,
      x: one,
      xNext: one,
      t: scalar(0.5),
      tNext: scalar(0.4),
      advantages: scalar(1),
      logpOld: scalar(0),
    };
    expect(() => grpoLoss({ ...base, tNext: scalar(0) })).toThrow(/last step into t = 0/);
    expect(() => grpoLoss({ ...base, x: Tensor.zeros([2, 2]) })).toThrow(/x must have shape \[1, 2\]/);
    expect(() => grpoLoss(base, { klCoef: 1 })).toThrow(/vRef is required/);
    expect(() => grpoLoss({ ...base, logpOld: scalar(Number.NaN) })).toThrow(/logpOld contains a non-finite/);
    expect(() => grpoLoss(base, { clip: 1 } as object)).toThrow(/unknown option 'clip'/);
  });
});

describe('FlowGRPO', () => {
  it('is exactly on-policy in the first optimiser step: ratio 1, nothing clipped', async () => {
    await onDevices(async (at) => {
      const net = baseNet(at);
      const grpo = new FlowGRPO(net, { ...OPTIONS, optimizerSteps: 1, clipRange: 1e-6 });
      const stats = await grpo.epoch();
      expect(stats.ratioMean).toBe(1);
      expect(stats.clipFraction).toBe(0);
      expect(stats.approxKl).toBe(0);
      const theta = net.getParameters();
      net.dispose();
      return { theta, loss: stats.loss, gradNorm: stats.gradNorm, reward: stats.reward };
    });
  });

  it('raises the reward on toy2d', async () => {
    const net = baseNet();
    const grpo = new FlowGRPO(net, OPTIONS);
    const history = await grpo.run({ epochs: 40 });
    const first = history.slice(0, 3).reduce((s, h) => s + h.reward, 0) / 3;
    const last = history.slice(-5).reduce((s, h) => s + h.reward, 0) / 5;
    expect(last).toBeGreaterThan(first + 0.3);
    const evaluation = await grpo.evaluate({ samplesPerPrompt: 256, params: 'theta' });
    expect(evaluation.reward).toBeGreaterThan(first + 0.3);
    net.dispose();
  });

  it('guides only in its cfgInterval, in rollouts and training, however the rows are micro-batched', async () => {
    // The reward of toy2d is 0/1 per sample, so only the losses tell the mixed interval apart. The grid's velocities are taken at t = 1, 0.9, …, 0.1, the trained transitions start at 1 … 0.2.
    const epochOf = async (o: Partial<FlowGRPOOptions>) => {
      const net = baseNet();
      try {
        return await new FlowGRPO(net, { ...OPTIONS, optimizerSteps: 1, ...o }).epoch();
      } finally {
        net.dispose();
      }
    };
    const plain = await epochOf({});
    const full = await epochOf({ cfgScale: 3 });
    const covering = await epochOf({ cfgScale: 3, cfgInterval: [0.05, 1] });
    const outside = await epochOf({ cfgScale: 3, cfgInterval: [0, 0.05] });
    const mixed = await epochOf({ cfgScale: 3, cfgInterval: [0, 0.6] });
    const mixedMicro = await epochOf({ cfgScale: 3, cfgInterval: [0, 0.6], microBatch: 37 });
    expect(covering.loss).toBe(full.loss);
    expect(covering.reward).toBe(full.reward);
    expect(outside.loss).toBe(plain.loss);
    expect(outside.reward).toBe(plain.reward);
    // The first step's loss is −mean A·ratio with ratio 1 and advantages that sum to zero per group: ~1e-8, rounding
    // alone; the gradient norm tells the intervals apart (deterministically, though this base's guided and plain
    // velocities differ little) and compares the micro-batchings.
    expect(covering.gradNorm).toBe(full.gradNorm);
    expect(outside.gradNorm).toBe(plain.gradNorm);
    expect(mixed.gradNorm).not.toBe(full.gradNorm);
    expect(mixed.gradNorm).not.toBe(plain.gradNorm);
    expect(Math.abs(mixedMicro.loss - mixed.loss)).toBeLessThan(1e-6);
    expect(relativeError([mixedMicro.gradNorm], [mixed.gradNorm])).toBeLessThan(1e-5);
    const net = baseNet();
    expect(() => new FlowGRPO(net, { ...OPTIONS, cfgScale: 3, cfgInterval: [0.7, 0.2] })).toThrow(
      /options.cfgInterval must be \[lo, hi\]/,
    );
    net.dispose();
  });

  it('resumes on the device it is given, bit for bit (a run trained on the GPU goes on there)', async () => {
    const small: FlowGRPOOptions = { ...OPTIONS, groups: 2, groupSize: 8 };
    await onDevices((at) =>
      resumesOnDevice(
        at,
        join(dir, `grpo-${at.device}-${at.precision}.safetensors`),
        (on) => new FlowGRPO(baseNet(on), small),
        (path, on) => FlowGRPO.resume(path, small, on),
      ),
    );
  });

  it('resumes exactly and rejects bad options', async () => {
    const straight = baseNet();
    await new FlowGRPO(straight, OPTIONS).run({ epochs: 3 });
    const first = baseNet();
    const path = join(dir, 'grpo.safetensors');
    await new FlowGRPO(first, OPTIONS).run({ epochs: 1, checkpoint: { path } });
    const resumed = await FlowGRPO.resume(path, OPTIONS);
    await resumed.run({ epochs: 2 });
    expect(Buffer.from(resumed.net.getParameters().buffer).equals(Buffer.from(straight.getParameters().buffer))).toBe(
      true,
    );

    expect(() => new FlowGRPO(first, { ...OPTIONS, sdeA: 0 })).toThrow(/sdeA must be > 0/);
    expect(() => new FlowGRPO(first, { ...OPTIONS, groupSize: 1 })).toThrow(/groupSize/);
    expect(() => new FlowGRPO(first, { ...OPTIONS, clip: 1 } as FlowGRPOOptions)).toThrow(/unknown option 'clip'/);
    const nan = new FlowGRPO(first, { ...OPTIONS, rewards: () => new Array(128).fill(Number.NaN) });
    const before = first.getParameters();
    await expect(nan.epoch()).rejects.toThrow(/non-finite score/);
    expect(Array.from(first.getParameters())).toEqual(Array.from(before));
    for (const net of [straight, first, resumed.net]) net.dispose();
  });
});
