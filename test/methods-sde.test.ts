// The likelihood methods beyond FlowGRPO (docs/algorithms.md §9): CPS's step, log-probability and loss, and
// GRPO-Guard's loss against the float64 cases of the spec and a float64 PyTorch transcription of the official code
// (reference/sde_methods.py); the SDE window and MixGRPO-Flash's tail in the sampler; and each trainer on toy2d:
// on-policy first step, resume bit for bit, LoRA, its own statistics.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  FlowGRPO,
  FlowGRPOFast,
  fastWindowStart,
  flashGrid,
  GRPOGuard,
  grpoLoss,
  guardLoss,
  type LikelihoodOptions,
  loadCheckpoint,
  MixGRPO,
  mixWindow,
  type Prompt,
  sample,
  sampleSde,
  sdeLogProb,
  sdeStep,
  Tensor,
  tasks,
  timeGrid,
} from '../lib/index.js';
import { writeCheckpoint } from '../lib/model/checkpoint.js';
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
import { epochsOutcome } from './trainer-device.js';

const { toy2d } = tasks;
const dir = tempFolder('methods-sde');

let base: Float32Array;
beforeAll(async () => {
  base = await toy2dBaseParameters();
});
const baseNet = (at: Placement = CPU) => netWithParameters(toy2d.config, base, at);
const row = (values: number[]) => Tensor.from(values, [1, values.length]);
const one = (value: number) => Tensor.from([value], [1]);

describe('CPS', () => {
  // ../shared/spec/methods.md §6.5: t = 0.8 → 0.6, a = 0.8.
  const x = row([0.3, -0.2]);
  const v = row([1.0, 0.5]);
  const z = row([1, -1]);
  const step = () => sdeStep(x, v, z, { t: 0.8, tNext: 0.6, a: 0.8, sde: 'cps' });

  it('steps and scores a transition as the spec case: std, mean, x′, log p = −std²', () => {
    const s = step();
    expect(s.std).toBeCloseTo(0.570633909777092, 6);
    expect(relativeError(s.mean.storage, [-0.1072949017, -0.2585410197])).toBeLessThan(1e-6);
    expect(relativeError(s.xNext.storage, [0.4633390081, -0.8291749294])).toBeLessThan(1e-6);
    const logp = sdeLogProb(s.xNext, s.mean, s.std, { sde: 'cps' });
    expect(logp[0]).toBeCloseTo(-0.32562305898749044, 6);
  });

  it('is the Euler step at a = 0', () => {
    const s = sdeStep(x, v, z, { t: 0.8, tNext: 0.6, a: 0, sde: 'cps' });
    expect(s.std).toBe(0);
    expect(relativeError(s.xNext.storage, [0.1, -0.3])).toBeLessThan(1e-6);
  });

  it('gives the code ratio of the perturbed policy (not the normalised one)', () => {
    const s = step();
    const logpOld = sdeLogProb(s.xNext, s.mean, s.std, { sde: 'cps' });
    const r = grpoLoss(
      {
        vTheta: row([1.1, 0.4]),
        x,
        xNext: s.xNext,
        t: one(0.8),
        tNext: one(0.6),
        advantages: one(1),
        logpOld: Tensor.from(logpOld, [1]),
      },
      { a: 0.8, sde: 'cps', clipRange: 1e6 },
    );
    expect(r.ratioMean).toBeCloseTo(0.9674525085, 6);
    expect(r.loss).toBeCloseTo(-0.9674525085, 6);
  });
});

describe('GRPO-Guard', () => {
  it('computes the spec case: the RatioNorm ratio, the 1/|dt| weight and the gradient', () => {
    // ../shared/spec/methods.md §7.7: t = 0.8 → 0.6, a = 0.7, A = 1, unclipped.
    const x = row([0.3, -0.2]);
    const s = sdeStep(x, row([1.0, 0.5]), row([1, -1]), { t: 0.8, tNext: 0.6, a: 0.7 });
    expect(relativeError(s.mean.storage, [-0.0225, -0.2755])).toBeLessThan(1e-6);
    const logpOld = sdeLogProb(s.xNext, s.mean, s.std);
    expect(logpOld[0]).toBeCloseTo(-0.9506918136, 5);
    const inputs = {
      vTheta: row([1.01, 0.49]),
      x,
      xNext: s.xNext,
      t: one(0.8),
      tNext: one(0.6),
      advantages: one(1),
      logpOld: Tensor.from(logpOld, [1]),
    };
    const guard = guardLoss({ ...inputs, meanOld: s.mean }, { a: 0.7, clipRange: 1e6 });
    expect(guard.ratioMean).toBeCloseTo(0.9975130975, 5);
    expect(guard.loss).toBeCloseTo(-5 * 0.9975130975, 4);
    expect(relativeError(guard.grad.storage, [0.6209519032, -0.6209519032])).toBeLessThan(1e-4);
    const plain = grpoLoss(inputs, { a: 0.7, clipRange: 1e6 });
    expect(plain.ratioMean).toBeCloseTo(0.9960230143, 5);
    expect(relativeError(plain.grad.storage, [0.1988471899, -0.1988471899])).toBeLessThan(1e-4);
  });
});

describe('the CPS loss and GRPO-Guard against the official code in float64 PyTorch', () => {
  it('agree in loss, gradient and ratios, clipped and unclipped, both signs of the advantage', () => {
    const R = 4;
    const D = 3;
    const draw = (seed: number, n: number) => Array.from(Tensor.randn([n], { seed }).storage);
    const t = [0.9, 0.7, 0.5, 0.3];
    const tNext = t.map((ti) => Math.fround(ti - 0.1));
    const cases: Record<string, unknown>[] = [];
    const ours: ReturnType<typeof grpoLoss>[] = [];
    for (const kind of ['grpo', 'guard'] as const) {
      for (const clipRange of [1e6, 0.01]) {
        const a = kind === 'grpo' ? 0.8 : 0.7;
        const sde = kind === 'grpo' ? ('cps' as const) : ('flow-grpo' as const);
        const x = Tensor.from(draw(1, R * D), [R, D]);
        const vOld = Tensor.from(draw(2, R * D), [R, D]);
        const noise = Tensor.from(draw(3, R * D), [R, D]);
        const meanOld: number[] = [];
        const xNext: number[] = [];
        const logpOld: number[] = [];
        for (let r = 0; r < R; r++) {
          const slice = (tensor: Tensor) => Tensor.from(tensor.storage.slice(r * D, (r + 1) * D), [1, D]);
          const step = sdeStep(slice(x), slice(vOld), slice(noise), {
            t: t[r] as number,
            tNext: tNext[r] as number,
            a,
            sde,
          });
          meanOld.push(...step.mean.storage);
          xNext.push(...step.xNext.storage);
          // Off-policy rows: log p_old moved away from the rollout's, so some ratios leave 1 ± ε.
          logpOld.push((sdeLogProb(step.xNext, step.mean, step.std, { sde })[0] as number) + (r % 2 ? 0.05 : -0.02));
        }
        const vTheta = Tensor.from(
          vOld.storage.map((value, i) => value + 0.2 * Math.sin(i + 1)),
          [R, D],
        );
        const advantages = [1.5, -0.7, 0.4, -1.2];
        const inputs = {
          vTheta,
          x,
          xNext: Tensor.from(xNext, [R, D]),
          t: Tensor.from(t, [R]),
          tNext: Tensor.from(tNext, [R]),
          advantages: Tensor.from(advantages, [R]),
          logpOld: Tensor.from(logpOld, [R]),
        };
        ours.push(
          kind === 'grpo'
            ? grpoLoss(inputs, { a, sde, clipRange })
            : guardLoss({ ...inputs, meanOld: Tensor.from(meanOld, [R, D]) }, { a, clipRange }),
        );
        const f64 = (tensor: Tensor) =>
          Array.from({ length: R }, (_, r) => Array.from(tensor.storage.slice(r * D, (r + 1) * D)));
        cases.push({
          kind,
          a,
          clipRange,
          x: f64(x),
          xNext: f64(inputs.xNext),
          vTheta: f64(vTheta),
          meanOld: f64(Tensor.from(meanOld, [R, D])),
          t: Array.from(inputs.t.storage),
          tNext: Array.from(inputs.tNext.storage),
          advantages,
          logpOld: Array.from(inputs.logpOld.storage),
        });
      }
    }
    const step = { kind: 'cps_step', t: 0.8, tNext: 0.6, a: 0.8, x: [0.3, -0.2], v: [1.0, 0.5], z: [1, -1] };
    writeFileSync(join(dir, 'in.json'), JSON.stringify([step, ...cases]));
    runReference('sde_methods.py', join(dir, 'in.json'), join(dir, 'out.json'));
    const [cps, ...reference] = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as {
      loss: number;
      grad: number[];
      ratios: number[];
      logp: number;
      dlogpDv: number[];
      xNext: number[];
    }[];
    // The spec's float64 values, from the transcription too.
    expect(cps?.logp).toBeCloseTo(-0.32562305898749044, 12);
    // ∂log p/∂v = (2/D)·(x′ − mean)·∂mean/∂v, with x′ − mean = std·z and ∂mean/∂v = −0.2829179607.
    const slope = 0.570633909777092 * -0.2829179607;
    expect(relativeError(cps?.dlogpDv ?? [], [slope, -slope])).toBeLessThan(1e-9);
    ours.forEach((r, k) => {
      const ref = reference[k] as { loss: number; grad: number[]; ratios: number[] };
      const label = `${(cases[k] as { kind: string }).kind} ε ${(cases[k] as { clipRange: number }).clipRange}`;
      expect(relativeError([r.loss], [ref.loss]), label).toBeLessThan(1e-5);
      expect(relativeError(r.grad.storage, ref.grad), label).toBeLessThan(1e-4);
      expect(r.ratioMean, label).toBeCloseTo(ref.ratios.reduce((s, v) => s + v, 0) / ref.ratios.length, 5);
    });
    expect(reference.some((ref) => ref.ratios.some((q) => Math.abs(q - 1) > 0.01))).toBe(true);
  });
});

describe('SDE windows', () => {
  it("Flow-GRPO-Fast's start is drawn from lo … hi − w only", () => {
    const starts = new Set<number>();
    for (let group = 0; group < 60; group++) starts.add(fastWindowStart(3, group, 3, [0, 5]));
    expect([...starts].sort()).toEqual([0, 1, 2]);
  });

  it("Flow-GRPO-Fast's windows are per prompt group: an epoch is the same in any chunk size", async () => {
    // The 8 groups of the first epoch (seed 3) do not all draw one window, so some chunks hold several.
    expect(new Set(Array.from({ length: 8 }, (_, g) => fastWindowStart(3, g, 3, [0, 5]))).size).toBeGreaterThan(1);
    const epoch = async (chunk: number) => {
      const net = baseNet();
      const stats = await new FlowGRPOFast(net, { ...OPTIONS, chunk }).epoch();
      const theta = net.getParameters();
      net.dispose();
      return { stats, theta };
    };
    const whole = await epoch(128); // the epoch's 128 samples in one chunk
    const split = await epoch(24); // chunks that cut groups of 16
    for (const key of ['reward', 'loss', 'gradNorm', 'windowStart', 'ratioMean'] as const) {
      expect(split.stats[key], key).toBe(whole.stats[key]);
    }
    expect(split.theta).toEqual(whole.theta);
  });

  it("Flow-GRPO-Fast's checkpoint records the window draw: a run of another scheme is refused naming it", async () => {
    const net = baseNet();
    const path = join(dir, 'fast-draw.safetensors');
    await new FlowGRPOFast(net, OPTIONS).run({ epochs: 1, checkpoint: { path } });
    const saved = await loadCheckpoint(path);
    const state = JSON.parse(saved.trainer as string);
    const options = JSON.parse(state.options);
    expect(options.window).toEqual({ size: 3, range: [0, 5], draw: 'per prompt group' });
    // The state as a run that drew a window per rollout chunk recorded it (before commit 72889b7): no draw.
    delete options.window.draw;
    const older = join(dir, 'fast-draw-older.safetensors');
    const trainer = JSON.stringify({ ...state, options: JSON.stringify(options) });
    await writeCheckpoint(older, saved.net, true, { 'dnft.trainer': trainer });
    await expect(FlowGRPOFast.resume(older, OPTIONS)).rejects.toThrow(
      new RangeError(
        `${older} was saved with other options: window.draw is nothing in it, "per prompt group" in this run ` +
          `(its options: ${JSON.stringify(options)})`,
      ),
    );
    (await FlowGRPOFast.resume(path, OPTIONS)).net.dispose();
    for (const n of [net, saved.net]) n.dispose();
  });

  it('roll out the ODE outside the window: NaN log-probabilities there, the Euler trajectory before it', async () => {
    const net = baseNet();
    const cond = Tensor.fromInt32(new Int32Array(16), [16, 1]);
    const grid = timeGrid(10);
    const ode = await sample(net, { cond, solver: 'euler', grid, seed: 4, trajectory: true });
    for (const sde of ['flow-grpo', 'cps'] as const) {
      const r = await sampleSde(net, { cond, grid, a: 0.8, sde, seed: 4, window: [2, 5] });
      const logp = r.logp.storage;
      for (let n = 0; n < 10; n++) {
        const finite = Array.from(logp.slice(n * 16, (n + 1) * 16)).every(Number.isFinite);
        expect(finite, `step ${n}`).toBe(n >= 2 && n < 5);
      }
      const D = 2;
      const upTo = 3 * 16 * D; // the states at t_0 … t_2
      expect(Array.from(r.trajectory.storage.slice(0, upTo))).toEqual(
        Array.from((ode.trajectory as Tensor).storage.slice(0, upTo)),
      );
      expect(Array.from(r.trajectory.storage.slice(upTo + 16 * D, upTo + 32 * D))).not.toEqual(
        Array.from((ode.trajectory as Tensor).storage.slice(upTo + 16 * D, upTo + 32 * D)),
      );
    }
    net.dispose();
  });

  it("MixGRPO's window moves as the spec's table and rolls back; Flash's grid is the spec's", () => {
    const table: [number, [number, number]][] = [
      [0, [0, 4]],
      [24, [0, 4]],
      [25, [1, 5]],
      [50, [2, 6]],
      [299, [11, 15]],
    ];
    for (const [k, window] of table) expect(mixWindow(k, 25, 4, 25, 1)).toEqual(window);
    expect(mixWindow(8, 10, 4, 1, 1)).toEqual([0, 4]);
    expect(mixWindow(7, 10, 4, 1, 1)).toEqual([7, 8]);
    const grid = timeGrid(25, { shift: 3 });
    const round = (g: Float64Array) => Array.from(g, (t) => Math.round(t * 1e4) / 1e4);
    expect(round(flashGrid(grid, 4, 0.4, 3))).toEqual([
      1, 0.9863, 0.9718, 0.9565, 0.9403, 0.8852, 0.8182, 0.7347, 0.6279, 0.4865, 0.2903, 0,
    ]);
    expect(round(flashGrid(grid, 4, 0.2, 3))).toEqual([1, 0.9863, 0.9718, 0.9565, 0.9403, 0.7925, 0.5385, 0]);
  });

  it("MixGRPO-Flash's tail keeps the window's states and solves the rest with DPM-Solver++(2M)", async () => {
    const net = baseNet();
    const cond = Tensor.fromInt32(new Int32Array(8), [8, 1]);
    const grid = flashGrid(timeGrid(25, { shift: 3 }), 4, 0.4, 3);
    const euler = await sampleSde(net, { cond, grid, seed: 5, window: [0, 4] });
    const dpm = await sampleSde(net, { cond, grid, seed: 5, window: [0, 4], tail: 'dpm2' });
    const at = (r: typeof euler, k: number) => Array.from(r.trajectory.storage.slice(k * 16, (k + 1) * 16));
    // The window's states are the same; the tail's first step is first order (DDIM, Euler's step up to rounding),
    // its next ones second order.
    for (let k = 0; k <= 4; k++) expect(at(dpm, k), `state ${k}`).toEqual(at(euler, k));
    expect(relativeError(at(dpm, 5), at(euler, 5))).toBeLessThan(1e-5);
    expect(relativeError(at(dpm, 6), at(euler, 6))).toBeGreaterThan(1e-4);
    net.dispose();
  });
});

const OPTIONS: LikelihoodOptions = {
  prompts: [toy2d.prompts[0]] as Prompt[],
  rewards: RED,
  groups: 8,
  groupSize: 16,
  seed: 3,
  clipRange: 0.2,
};

// Each method with a setting that exercises what is its own: Fast's random window, MixGRPO's moving window (with the
// Euler tail and with Flash's), Guard's stored means; FlowGRPO with CPS.
const METHODS = {
  'FlowGRPO with CPS': {
    make: (net: ReturnType<typeof baseNet>, o: LikelihoodOptions) => new FlowGRPO(net, { ...o, sde: 'cps' }),
    resume: (path: string, o: LikelihoodOptions) => FlowGRPO.resume(path, { ...o, sde: 'cps' }),
  },
  'Flow-GRPO-Fast': {
    make: (net: ReturnType<typeof baseNet>, o: LikelihoodOptions) => new FlowGRPOFast(net, o),
    resume: (path: string, o: LikelihoodOptions) => FlowGRPOFast.resume(path, o),
  },
  MixGRPO: {
    make: (net: ReturnType<typeof baseNet>, o: LikelihoodOptions) => new MixGRPO(net, { ...o, windowShiftEvery: 1 }),
    resume: (path: string, o: LikelihoodOptions) => MixGRPO.resume(path, { ...o, windowShiftEvery: 1 }),
  },
  'MixGRPO-Flash': {
    make: (net: ReturnType<typeof baseNet>, o: LikelihoodOptions) =>
      new MixGRPO(net, { ...o, windowShiftEvery: 1, flashCompression: 0.4 }),
    resume: (path: string, o: LikelihoodOptions) =>
      MixGRPO.resume(path, { ...o, windowShiftEvery: 1, flashCompression: 0.4 }),
  },
  'GRPO-Guard': {
    make: (net: ReturnType<typeof baseNet>, o: LikelihoodOptions) => new GRPOGuard(net, o),
    resume: (path: string, o: LikelihoodOptions) => GRPOGuard.resume(path, o),
  },
};

describe.each(Object.entries(METHODS))('%s', (name, method) => {
  it('is exactly on-policy in the first optimiser step: ratio 1, nothing clipped', async () => {
    const net = baseNet();
    const stats = await method.make(net, { ...OPTIONS, optimizerSteps: 1, clipRange: 1e-6 }).epoch();
    expect(stats.ratioMean).toBe(1);
    expect(stats.clipFraction).toBe(0);
    expect(stats.approxKl).toBe(0);
    expect(Number.isFinite(stats.loss) && stats.gradNorm > 0).toBe(true);
    expect(net.getParameters()).not.toEqual(base);
    net.dispose();
  });

  it('resumes bit for bit and records its own statistics', async () => {
    const straight = baseNet();
    const history = await method.make(straight, OPTIONS).run({ epochs: 3 });
    if (name === 'Flow-GRPO-Fast') expect(history.every((h) => 'windowStart' in h)).toBe(true);
    if (name === 'MixGRPO-Flash') {
      expect(history.map((h) => (h as unknown as { windowStart: number }).windowStart)).toEqual([0, 1, 2]);
      expect((history[0] as unknown as { rolloutSteps: number }).rolloutSteps).toBe(4 + 1);
    }
    const first = baseNet();
    const path = join(dir, `${name}.safetensors`);
    await method.make(first, OPTIONS).run({ epochs: 1, checkpoint: { path } });
    const resumed = await method.resume(path, OPTIONS);
    await resumed.run({ epochs: 2 });
    expect(Buffer.from(resumed.net.getParameters().buffer).equals(Buffer.from(straight.getParameters().buffer))).toBe(
      true,
    );
    await expect(method.resume(path, { ...OPTIONS, seed: 4 })).rejects.toThrow(/other options/);
    for (const net of [straight, first, resumed.net]) net.dispose();
  });

  it('trains the same on the GPU as on the CPU: two epochs of 16 samples', async () => {
    // ε = 2e-3: the second optimiser step of each epoch clips a fifth to two thirds of its transitions.
    const small = { ...OPTIONS, rewards: UPPER, groups: 2, groupSize: 8, clipRange: 2e-3 };
    await onDevices(
      (at) =>
        epochsOutcome(method.make(baseNet(at), small), 2, ['ratioMean', 'approxKl', 'clipFraction', 'trainedSamples']),
      {
        // Each optimiser step holds one group, whose advantages sum to 0: the loss −mean A·ρ (ρ within 1e-2 of 1) is
        // about 1e-3 of its terms, and FP32's rounding of log p moves it by 1e-4 relative (on the CPU alone, the
        // generic and the AVX2 kernels' losses differ by 1.5e-4 for CPS, by 7e-5 for GRPO-Guard).
        loss: { fp32: 1e-3 },
        // In TF32 a ratio within the arithmetic's rounding of 1 ± ε may clip on one backend only: one of an epoch's
        // 144 transitions moves the fraction by 0.007, 2e-2 of these fractions (GRPO-Guard's on the simulator).
        clipFraction: { tf32: 5e-2 },
      },
    );
  });

  it('trains LoRA adapters of a frozen base', async () => {
    const net = baseNet();
    const trainer = method.make(net, { ...OPTIONS, lora: { rank: 4, alpha: 8, targets: ['fc1', 'fc2'], seed: 1 } });
    const adapter = () => trainedSet(net);
    const before = adapter();
    await trainer.run({ epochs: 2 });
    expect(net.getParameters()).toEqual(base);
    expect(adapter()).not.toEqual(before);
    net.dispose();
  });
});

describe('the methods reject what they cannot run', () => {
  it('names the option', () => {
    const net = baseNet();
    expect(() => new GRPOGuard(net, { ...OPTIONS, sde: 'cps' })).toThrow(/GRPO-Guard runs the FlowGRPO SDE/);
    expect(() => new FlowGRPOFast(net, { ...OPTIONS, sdeWindowRange: [0, 10] })).toThrow(/sdeWindowRange/);
    expect(() => new FlowGRPOFast(net, { ...OPTIONS, sdeWindowSize: 6 })).toThrow(/sdeWindowRange/);
    expect(() => new MixGRPO(net, { ...OPTIONS, flashCompression: 0.4, gridSchedule: 'sd3' })).toThrow(
      /flashCompression needs gridSchedule/,
    );
    expect(() => new MixGRPO(net, { ...OPTIONS, windowStride: -1 })).toThrow(/windowStride/);
    net.dispose();
  });
});
