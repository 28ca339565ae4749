// timeGrid and sample: the grids of docs/algorithms.md §1.1, each solver's order and textbook arithmetic, the native
// and TypeScript paths agreeing, per-sample noise, guidance and its interval, custom solvers, and argument checks;
// SA-Solver (§2.8): its coefficients and steps against float64 formulas, its order, its marginals with noise.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  NumericError,
  type SaSolverOptions,
  SDE_STREAM,
  type Solver,
  sample,
  saSolver,
  solvers,
  Tensor,
  timeGrid,
  type VelocityFn,
  VelocityNet,
} from '../lib/index.js';
import { SA_PLAN_WIDTH, saSolverPlan } from '../lib/sampling/sa-solver.js';
import { onDevices, randomizedNet } from './helpers.js';

const SOLVERS = ['euler', 'heun', 'dpm2'] as const;

function maxAbsDiff(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs((a.storage[i] as number) - (b.storage[i] as number)));
  return m;
}

function tokens(batch: number, slots: number, vocab: number): Tensor<'int32'> {
  return Tensor.fromInt32(
    Int32Array.from({ length: batch * slots }, (_, i) => (i * 7 + 3) % vocab),
    [batch, slots],
  );
}

// Data x0 ~ N(μ, σ²) per dimension: its probability-flow ODE is known in closed form. With m(t) = (1 − t)μ and
// s(t) = √((1 − t)²σ² + t²), v(x, t) = m'(t) + s'(t)·(x − m(t))/s(t), and the exact map takes noise ε at t = 1 to
// μ + σ·ε at t = 0. An oracle for the solvers that nobody here wrote the answer of.
const MU = 1.5;
const SIGMA = 0.5;
const gaussianVelocity: VelocityFn = (x, t) => {
  const s = Math.sqrt((1 - t) ** 2 * SIGMA ** 2 + t ** 2);
  const ds = (-(1 - t) * SIGMA ** 2 + t) / s;
  return Tensor.from(x.storage.map((xi) => -MU + (ds * (xi - (1 - t) * MU)) / s) as Float32Array, x.shape);
};

async function gaussianRollout(solver: Solver | (typeof SOLVERS)[number], grid: Float64Array, noise: Tensor) {
  const cond = Tensor.fromInt32(new Int32Array(noise.shape[0] as number), [noise.shape[0] as number, 1]);
  return (await sample(gaussianVelocity, { cond, solver, grid, noise })).x;
}

async function gaussianError(solver: Solver | (typeof SOLVERS)[number], steps: number): Promise<number> {
  const noise = Tensor.randn([64, 3], { seed: 9 });
  const x = await gaussianRollout(solver, timeGrid(steps), noise);
  let err = 0;
  for (let i = 0; i < x.size; i++) {
    err = Math.max(err, Math.abs((x.storage[i] as number) - (MU + SIGMA * (noise.storage[i] as number))));
  }
  return err;
}

// The float64 textbook solvers of reference/solvers_reference.py on the same velocity, grid and noise.
function referenceRollout(solver: string, grid: Float64Array, noise: Tensor): number[] {
  const rows = Array.from({ length: noise.shape[0] as number }, (_, b) =>
    Array.from(noise.storage.subarray(b * 3, b * 3 + 3)),
  );
  const input = JSON.stringify({ mu: MU, sigma: SIGMA, grid: Array.from(grid), noise: rows, solver });
  const run = spawnSync('/usr/bin/python3', ['reference/solvers_reference.py'], { input, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`solvers_reference.py failed: ${run.stderr}`);
  return (JSON.parse(run.stdout) as { x: number[][] }).x.flat();
}

describe('timeGrid', () => {
  it('builds the uniform grid and the SD3 grid of docs/algorithms.md §1.1', () => {
    expect(Array.from(timeGrid(4))).toEqual([1, 0.75, 0.5, 0.25, 0]);
    const sd3 = [1.0, 0.9601, 0.9133, 0.8577, 0.7904, 0.7073, 0.6022, 0.4649, 0.278, 0.0089, 0];
    const grid = timeGrid(10, { schedule: 'sd3' });
    expect(grid.length).toBe(11);
    for (let i = 0; i < 11; i++) expect(grid[i]).toBeCloseTo(sd3[i] as number, 4);
    const shifted = timeGrid(2, { shift: 3 });
    expect(shifted[1]).toBeCloseTo(1.5 / 2, 12);
  });

  it('rejects bad steps and options', () => {
    expect(() => timeGrid(0)).toThrow(RangeError);
    expect(() => timeGrid(2.5)).toThrow(RangeError);
    expect(() => timeGrid(4, { schedule: 'karras' as 'uniform' })).toThrow(RangeError);
    expect(() => timeGrid(4, { shift: 0 })).toThrow(RangeError);
    expect(() => timeGrid(4, { sigma: 1 } as object)).toThrow(/unknown option 'sigma'/);
  });
});

describe('sample', () => {
  it('converges to the exact flow of Gaussian data at each solver’s order', async () => {
    // Error ratios when the step count doubles: about 2 for Euler and 4 for Heun. DPM-Solver++(2M) is second order
    // in the log-SNR step, whose size at the ends of a uniform t grid does not shrink with N: its ratios are
    // irregular, so only its overall gain is asserted (it is matched against the reference below).
    for (const [solver, ratio] of [
      ['euler', 1.8],
      ['heun', 3],
    ] as const) {
      const coarse = await gaussianError(solver, 8);
      const fine = await gaussianError(solver, 16);
      const finer = await gaussianError(solver, 32);
      expect(coarse / fine, `${solver} 8→16`).toBeGreaterThan(ratio);
      expect(fine / finer, `${solver} 16→32`).toBeGreaterThan(ratio);
    }
    expect(await gaussianError('dpm2', 128)).toBeLessThan((await gaussianError('dpm2', 8)) / 30);
    expect(await gaussianError('dpm2', 32)).toBeLessThan((await gaussianError('euler', 32)) / 5);
  });

  it('matches float64 textbook implementations of Euler, Heun and DPM-Solver++(2M)', async () => {
    const noise = Tensor.randn([17, 3], { seed: 21 });
    for (const grid of [timeGrid(10, { schedule: 'sd3' }), timeGrid(7), Float64Array.from([1, 0.5, 0.3, 0.1, 0])]) {
      for (const solver of SOLVERS) {
        const ours = await gaussianRollout(solver, grid, noise);
        const reference = referenceRollout(solver, grid, noise);
        let err = 0;
        for (let i = 0; i < ours.size; i++)
          err = Math.max(err, Math.abs((ours.storage[i] as number) - (reference[i] as number)));
        expect(err, `${solver} on [${Array.from(grid).join(', ')}]`).toBeLessThan(2e-5);
      }
    }
  });

  it('gives the same samples natively and driven from TypeScript, for every solver, with and without CFG', async () => {
    await onDevices(async (at) => {
      const net = randomizedNet({ dataDim: 5, width: 24, depth: 2, condSlots: 2, vocabSize: 7 }, 3, at);
      const cond = tokens(37, 2, 7);
      const guidance = [{ cfgScale: 1 }, { cfgScale: 3.5 }, { cfgScale: 3.5, cfgInterval: [0.2, 0.7] as const }];
      const samples: Record<string, Float32Array> = {};
      for (const solver of SOLVERS) {
        for (const cfg of guidance) {
          const grid = solver === 'heun' ? { steps: 5 } : { steps: 10, schedule: 'sd3' as const };
          const common = { cond, seed: 4, ...cfg, trajectory: true, ...grid };
          const native = await sample(net, { ...common, solver, chunk: 10 });
          const driven = await sample(net, { ...common, solver: solvers[solver] });
          const name = `${solver} ${JSON.stringify(cfg)}`;
          expect(maxAbsDiff(native.x, driven.x), name).toBeLessThanOrEqual(1e-6);
          expect(maxAbsDiff(native.trajectory as Tensor, driven.trajectory as Tensor)).toBeLessThanOrEqual(1e-6);
          expect(native.trajectory?.shape).toEqual([grid.steps + 1, 37, 5]);
          const last = native.trajectory?.storage.subarray(grid.steps * 37 * 5);
          expect(Array.from(last ?? [])).toEqual(Array.from(native.x.storage));
          samples[name] = native.trajectory?.storage as Float32Array;
        }
      }
      net.dispose();
      return samples;
    });
  });

  it('draws per-sample noise: the same seed reproduces, chunks and offsets do not change a sample', async () => {
    await onDevices(async (at) => {
      const net = randomizedNet({ dataDim: 3, width: 16, depth: 1 }, 5, at);
      const cond = tokens(10, 1, 16);
      const whole = await sample(net, { cond, solver: 'dpm2', seed: 7 });
      const again = await sample(net, { cond, solver: 'dpm2', seed: 7, chunk: 3 });
      expect(Array.from(again.x.storage)).toEqual(Array.from(whole.x.storage));
      const tail = await sample(net, {
        cond: Tensor.fromInt32(cond.storage.slice(4), [6, 1]),
        solver: 'dpm2',
        seed: 7,
        firstSample: 4,
      });
      expect(Array.from(tail.x.storage)).toEqual(Array.from(whole.x.storage.slice(12)));
      const other = await sample(net, { cond, solver: 'dpm2', seed: 8 });
      expect(maxAbsDiff(other.x, whole.x)).toBeGreaterThan(0.01);
      // The trajectory starts at the documented noise: Philox stream 5, sample i at offset i·D.
      const { trajectory } = await sample(net, { cond, seed: 7, steps: 2, trajectory: true });
      const noise = Tensor.randn([10, 3], { seed: 7, stream: 5 });
      expect(Array.from(trajectory?.storage.subarray(0, 30) ?? [])).toEqual(Array.from(noise.storage));
      net.dispose();
      return { x: whole.x.storage };
    });
  });

  it('applies classifier-free guidance as v_null + s·(v_cond − v_null) in one batched call', async () => {
    const calls: number[] = [];
    // v = the condition token, so guided Euler from x_1 gives x_0 = x_1 − s·token exactly.
    const constant: VelocityFn = (x, _t, cond) => {
      calls.push(x.shape[0] as number);
      const v = new Float32Array(x.size);
      for (let b = 0; b < (x.shape[0] as number); b++) v.fill(cond.storage[b] as number, 2 * b, 2 * b + 2);
      return Tensor.from(v, x.shape);
    };
    const noise = Tensor.zeros([3, 2]);
    const cond = Tensor.fromInt32([1, 2, 4], [3, 1]);
    const { x } = await sample(constant, { cond, noise, steps: 4, cfgScale: 2.5 });
    expect(Array.from(x.storage)).toEqual([-2.5, -2.5, -5, -5, -10, -10]);
    expect(calls).toEqual([6, 6, 6, 6]);
    // In a guidance interval: Euler evaluates at t = 1, 0.75, 0.5, 0.25, guided at the last two only, so
    // x_0 = −0.25·(1 + 1 + 2.5 + 2.5)·token, with one unguided call per step outside.
    calls.length = 0;
    const interval = await sample(constant, { cond, noise, steps: 4, cfgScale: 2.5, cfgInterval: [0, 0.6] });
    expect(Array.from(interval.x.storage)).toEqual([-1.75, -1.75, -3.5, -3.5, -7, -7]);
    expect(calls).toEqual([3, 3, 6, 6]);
  });

  it('limits guidance to its interval in the native sampler too: [0, 1] is plain CFG, an empty one none', async () => {
    await onDevices(async (at) => {
      const net = randomizedNet({ dataDim: 4, width: 16, depth: 1, condSlots: 1, vocabSize: 5 }, 6, at);
      const common = { cond: tokens(9, 1, 5), seed: 2, steps: 8, solver: 'dpm2' as const };
      const plain = await sample(net, common);
      const guided = await sample(net, { ...common, cfgScale: 4 });
      const everywhere = await sample(net, { ...common, cfgScale: 4, cfgInterval: [0, 1] });
      const between = await sample(net, { ...common, cfgScale: 4, cfgInterval: [0.99, 0.995] });
      const part = await sample(net, { ...common, cfgScale: 4, cfgInterval: [0, 0.5] });
      expect(Array.from(everywhere.x.storage)).toEqual(Array.from(guided.x.storage));
      expect(Array.from(between.x.storage)).toEqual(Array.from(plain.x.storage));
      expect(maxAbsDiff(part.x, plain.x)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(part.x, guided.x)).toBeGreaterThan(1e-3);
      net.dispose();
      return { plain: plain.x.storage, guided: guided.x.storage, part: part.x.storage };
    });
  });

  it('runs a solver written in TypeScript and records its trajectory', async () => {
    // Explicit midpoint (RK2), a solver the library does not ship.
    const midpoint: Solver = async ({ x, grid, velocity, record }) => {
      for (let i = 1; i < grid.length; i++) {
        const s = grid[i - 1] as number;
        const dt = (grid[i] as number) - s;
        const v1 = await velocity(x, s);
        const half = Tensor.from(
          x.storage.map((xi, j) => xi + (dt / 2) * (v1.storage[j] as number)) as Float32Array,
          x.shape,
        );
        const v2 = await velocity(half, s + dt / 2);
        for (let j = 0; j < x.size; j++) x.storage[j] = (x.storage[j] as number) + dt * (v2.storage[j] as number);
        record(x);
      }
      return x;
    };
    // Second order on the exact Gaussian flow, like Heun.
    expect((await gaussianError(midpoint, 16)) / (await gaussianError(midpoint, 32))).toBeGreaterThan(3);
    const net = randomizedNet({ dataDim: 2, width: 16, depth: 1 }, 6);
    const mid = await sample(net, {
      cond: tokens(9, 1, 16),
      solver: midpoint,
      steps: 6,
      seed: 2,
      trajectory: true,
      chunk: 4,
    });
    expect(mid.trajectory?.shape).toEqual([7, 9, 2]);
    expect(Array.from(mid.trajectory?.storage.subarray(6 * 18) ?? [])).toEqual(Array.from(mid.x.storage));
    net.dispose();
  });

  it('learns the 8-Gaussian modes well enough that every solver finds them', async () => {
    const { FlowMatchingTrainer, tasks } = await import('../lib/index.js');
    const net = VelocityNet.create(tasks.toy2d.config, { seed: 11 });
    const trainer = new FlowMatchingTrainer(net, { lr: 2e-3, seed: 11 });
    for (let i = 0; i < 200; i++) {
      const { x0, cond } = tasks.toy2d.batch(256, 11, i);
      await trainer.step({ x0, cond });
    }
    const modes = Int32Array.from({ length: 256 }, (_, i) => i % tasks.toy2d.MODES);
    for (const solver of SOLVERS) {
      const { x } = await sample(net, { cond: tasks.toy2d.conditions(modes), solver, steps: 10, seed: 1 });
      expect(tasks.toy2d.score(x.storage, modes).modeAccuracy, solver).toBeGreaterThan(0.9);
    }
    net.dispose();
  });

  it('rejects bad arguments with errors that name them', async () => {
    const net = randomizedNet({ dataDim: 2, width: 8, depth: 1 }, 1);
    const cond = tokens(4, 1, 16);
    await expect(sample(net, { cond, steps: 3, stepz: 1 } as object as { cond: Tensor<'int32'> })).rejects.toThrow(
      /unknown option 'stepz'/,
    );
    await expect(sample(net, { cond, solver: 'rk4' as 'euler' })).rejects.toThrow(RangeError);
    await expect(sample(net, { cond, grid: [1, 0.5, 0.6, 0] })).rejects.toThrow(/strictly decreasing/);
    await expect(sample(net, { cond, grid: [0.9, 0] })).rejects.toThrow(/start at 1/);
    await expect(sample(net, { cond: Tensor.fromInt32([1, 2], [2]) })).rejects.toThrow(TypeError);
    await expect(sample(net, { cond: tokens(4, 1, 99) })).rejects.toThrow(/cond tokens/);
    await expect(sample(net, { cond, noise: Tensor.zeros([3, 2]) })).rejects.toThrow(/noise must have shape/);
    await expect(sample(net, { cond, noise: Tensor.from([0, 0, 0, Number.NaN, 0, 0, 0, 0], [4, 2]) })).rejects.toThrow(
      NumericError,
    );
    await expect(sample(net, { cond, seed: -1 })).rejects.toThrow(RangeError);
    for (const cfgInterval of [[0.7, 0.2], [0, 2], [0.5], 'early'] as never[]) {
      await expect(sample(net, { cond, cfgScale: 2, cfgInterval })).rejects.toThrow(/cfgInterval must be \[lo, hi\]/);
    }
    await expect(sample((x) => x, { cond })).rejects.toThrow(/dataDim/);
    const wrongShape: VelocityFn = () => Tensor.zeros([1, 2]);
    await expect(sample(wrongShape, { cond, dataDim: 2 })).rejects.toThrow(/velocity at t = 1 must have shape/);
    const diverging: VelocityFn = (x) => Tensor.from(new Float32Array(x.size).fill(Number.NaN), x.shape);
    await expect(sample(diverging, { cond, dataDim: 2 })).rejects.toThrow(NumericError);
    net.dispose();
    await expect(sample(net, { cond })).rejects.toThrow(/disposed/);
  });
});

// SA-Solver from its definition, in float64 and by quadrature, written apart from lib/sampling/sa-solver.ts: the step
// s → t of noise scale τ is x_t = (t/s)e^{−τ²h}·x_s + Σ_j b_j·x̂0_j + t·√(1 − e^{−2τ²h})·ξ, h = λ_t − λ_s, with
// b_j = (1 − t)(1 + τ²)∫_{λ_s}^{λ_t} e^{(1+τ²)(λ − λ_t)} ℓ_j(λ) dλ, ℓ_j the Lagrange basis of the history's log-SNRs.
const lambda = (t: number) => Math.log((1 - t) / t);

function referenceWeights(nodes: number[], s: number, t: number, tau: number): number[] {
  const [ls, lt, k] = [lambda(s), lambda(t), 1 + tau * tau];
  const intervals = 4000;
  const width = (lt - ls) / intervals;
  return nodes.map((_, j) => {
    const integrand = (l: number) => {
      let basis = 1;
      for (const [m, lm] of nodes.entries()) if (m !== j) basis *= (l - lm) / ((nodes[j] as number) - lm);
      return Math.exp(k * (l - lt)) * basis;
    };
    let sum = integrand(ls) + integrand(lt);
    for (let i = 1; i < intervals; i++) sum += (i % 2 === 1 ? 4 : 2) * integrand(ls + i * width);
    return (1 - t) * k * ((sum * width) / 3);
  });
}

interface ReferenceStep {
  x: number;
  noise: number;
  predictor: number[];
  corrector: number[];
}

// The steps of a grid, newest data prediction first; the one at t = 1 (λ = −∞) enters first-order steps only, the
// first step has no corrector, and the step into t = 0 returns the last data prediction.
function referenceSteps(grid: number[], o: Required<SaSolverOptions>): ReferenceStep[] {
  return grid.slice(1).map((t, n) => {
    const i = n + 1;
    const s = grid[i - 1] as number;
    if (t === 0) return { x: 0, noise: 0, predictor: [1], corrector: [] };
    const tau = s >= o.tauInterval[0] && s <= o.tauInterval[1] ? o.tau : 0;
    const h = lambda(t) - lambda(s);
    const x = (t / s) * Math.exp(-tau * tau * h);
    const noise = t * Math.sqrt(1 - Math.exp(-2 * tau * tau * h));
    if (s === 1) return { x: tau > 0 ? 0 : t, noise: tau > 0 ? t : 0, predictor: [1 - t], corrector: [] };
    const history = grid.slice(1, i).reverse().map(lambda);
    const predictor = referenceWeights(history.slice(0, o.predictorOrder), s, t, tau);
    const corrector =
      o.correctorOrder > 0 ? referenceWeights([lambda(t), ...history.slice(0, o.correctorOrder - 1)], s, t, tau) : [];
    return { x, noise, predictor, corrector };
  });
}

// The rollout of those steps in float64 on the Gaussian flow: PEC, the corrector's evaluation at the predicted point
// being the next step's data prediction.
function referenceSaRollout(grid: number[], o: Required<SaSolverOptions>, noise: Tensor, seed: number): number[][] {
  const steps = referenceSteps(grid, o);
  const n = noise.size;
  // x̂0 = x − t·v with gaussianVelocity's formula in float64.
  const x0Of = (x: number[], t: number) => {
    const sd = Math.sqrt((1 - t) ** 2 * SIGMA ** 2 + t ** 2);
    const ds = (-(1 - t) * SIGMA ** 2 + t) / sd;
    return x.map((xi) => xi - t * (-MU + (ds * (xi - (1 - t) * MU)) / sd));
  };
  let x = Array.from(noise.storage);
  const states = [x];
  let history: number[][] = [];
  let evaluated = false;
  for (const [k, step] of steps.entries()) {
    const [s, t] = [grid[k] as number, grid[k + 1] as number];
    if (!evaluated) history = [x0Of(x, s), ...history];
    const xi = Array.from(
      Tensor.randn(noise.shape as number[], { seed, stream: SDE_STREAM, offset: k * 2 ** 40 }).storage,
    );
    const combine = (weights: number[], data: number[][]) =>
      Array.from({ length: n }, (_, e) => {
        let sum = step.x * (x[e] as number) + step.noise * (xi[e] as number);
        for (const [j, w] of weights.entries()) sum += w * ((data[j] as number[])[e] as number);
        return sum;
      });
    const predicted = combine(step.predictor, history);
    evaluated = step.corrector.length > 0;
    if (evaluated) {
      history = [x0Of(predicted, t), ...history];
      x = combine(step.corrector, history);
    } else {
      x = predicted;
    }
    states.push(x);
  }
  return states;
}

// Rectified flow's x_t = m(t) + s(t)·z on the Gaussian flow: the exact state at `to` through x at `from`.
function exactFlow(x: number, from: number, to: number): number {
  const sd = (t: number) => Math.sqrt((1 - t) ** 2 * SIGMA ** 2 + t ** 2);
  return (1 - to) * MU + (sd(to) * (x - (1 - from) * MU)) / sd(from);
}

// A grid 1 > t_1 … t_{N+1} > 0 with N steps uniform in log-SNR between t = 0.95 and 0.05: the error between them
// is what the step size controls (the steps from t = 1 and into t = 0 do not shrink on a uniform t grid).
function logSnrGrid(steps: number): Float64Array {
  const [a, b] = [lambda(0.95), lambda(0.05)];
  const inner = Array.from({ length: steps + 1 }, (_, k) => 1 / (1 + Math.exp(a + ((b - a) * k) / steps)));
  return Float64Array.from([1, ...inner, 0]);
}

async function saInnerError(options: SaSolverOptions, steps: number): Promise<number> {
  const noise = Tensor.randn([64, 3], { seed: 9 });
  const grid = logSnrGrid(steps);
  const cond = Tensor.fromInt32(new Int32Array(64), [64, 1]);
  const { trajectory } = await sample(gaussianVelocity, {
    cond,
    noise,
    grid,
    solver: 'sa-solver',
    saSolver: options,
    trajectory: true,
  });
  const states = (trajectory as Tensor).storage;
  const [from, to] = [grid[1] as number, grid[steps + 1] as number];
  let err = 0;
  for (let i = 0; i < noise.size; i++) {
    const start = states[noise.size + i] as number;
    err = Math.max(err, Math.abs((states[(steps + 1) * noise.size + i] as number) - exactFlow(start, from, to)));
  }
  return err;
}

describe('SA-Solver', () => {
  const options: Required<SaSolverOptions> = { predictorOrder: 2, correctorOrder: 2, tau: 0.7, tauInterval: [0, 0.9] };

  it('derives the coefficients of the predictor and the corrector as float64 quadrature of their integrals', () => {
    const grid = [1, 0.85, 0.7, 0.5, 0.35, 0.2, 0];
    for (const o of [options, { ...options, predictorOrder: 3, correctorOrder: 3, tau: 0.3 }, { ...options, tau: 0 }]) {
      const plan = saSolverPlan(grid, o);
      for (const [k, step] of referenceSteps(grid, o).entries()) {
        const row = Array.from(plan.subarray(k * SA_PLAN_WIDTH, (k + 1) * SA_PLAN_WIDTH));
        const want = [step.x, step.noise, ...[0, 1, 2].map((j) => step.predictor[j] ?? 0)];
        want.push(...[0, 1, 2].map((j) => step.corrector[j] ?? 0));
        for (const [c, value] of want.entries()) {
          expect(row[c] as number, `step ${k + 1} coefficient ${c} of ${JSON.stringify(o)}`).toBeCloseTo(value, 10);
        }
      }
      // The predictor and corrector weights sum to the first-order one, (1 − t)(1 − e^{−(1+τ²)h}).
      const [s, t] = [0.5, 0.35];
      const first = (1 - t) * (1 - Math.exp(-(1 + o.tau ** 2) * (lambda(t) - lambda(s))));
      const row = plan.subarray(3 * SA_PLAN_WIDTH, 4 * SA_PLAN_WIDTH);
      expect((row[2] as number) + (row[3] as number) + (row[4] as number)).toBeCloseTo(first, 12);
      expect((row[5] as number) + (row[6] as number) + (row[7] as number)).toBeCloseTo(first, 12);
    }
  });

  it('runs the predictor and corrector steps as float64 formulas do, noise included', async () => {
    const noise = Tensor.randn([17, 3], { seed: 21 });
    const cond = Tensor.fromInt32(new Int32Array(17), [17, 1]);
    const grid = [1, 0.85, 0.7, 0.5, 0.35, 0.2, 0];
    for (const o of [
      options,
      { ...options, predictorOrder: 3, correctorOrder: 3 },
      { ...options, correctorOrder: 0 },
    ]) {
      const { trajectory } = await sample(gaussianVelocity, {
        cond,
        noise,
        grid,
        seed: 5,
        solver: 'sa-solver',
        saSolver: o,
        trajectory: true,
      });
      const reference = referenceSaRollout(grid, o, noise, 5);
      for (const [k, state] of reference.entries()) {
        const ours = (trajectory as Tensor).storage.subarray(k * noise.size, (k + 1) * noise.size);
        let err = 0;
        for (let i = 0; i < noise.size; i++) err = Math.max(err, Math.abs((ours[i] as number) - (state[i] as number)));
        expect(err, `state ${k} of ${JSON.stringify(o)}`).toBeLessThan(2e-5);
      }
    }
  });

  it('converges to the exact Gaussian flow at the predicted order with τ = 0', async () => {
    // PEC's order is p without a corrector, else min(c, p + 1); the error ratio when the steps double is 2^order.
    for (const [predictorOrder, correctorOrder, order] of [
      [1, 0, 1],
      [2, 0, 2],
      [2, 1, 1],
      [1, 2, 2],
      [2, 3, 3],
    ] as const) {
      const o = { predictorOrder, correctorOrder, tau: 0 };
      const errors = [await saInnerError(o, 16), await saInnerError(o, 32), await saInnerError(o, 64)];
      for (const k of [0, 1]) {
        const ratio = (errors[k] as number) / (errors[k + 1] as number);
        expect(ratio, `p ${predictorOrder}, c ${correctorOrder}, steps ${16 << k}`).toBeGreaterThan(0.8 * 2 ** order);
        expect(ratio, `p ${predictorOrder}, c ${correctorOrder}, steps ${16 << k}`).toBeLessThan(1.3 * 2 ** order);
      }
    }
    // AWM's orders (2, 2): the corrector's leading error nearly vanishes on this flow, so the ratios are irregular;
    // four times the steps still gain more than second order.
    const awm = { tau: 0 };
    expect(await saInnerError(awm, 64)).toBeLessThan((await saInnerError(awm, 16)) / 16);
  });

  it('samples the data distribution with τ > 0: the marginal mean and variance, and not the ODE’s map', async () => {
    const rows = 20000;
    const noise = Tensor.randn([rows, 1], { seed: 31 });
    const cond = Tensor.fromInt32(new Int32Array(rows), [rows, 1]);
    const moments = async (saOptions: SaSolverOptions, steps: number) => {
      const grid = timeGrid(steps);
      const { x } = await sample(gaussianVelocity, { cond, noise, grid, solver: 'sa-solver', saSolver: saOptions });
      const mean = x.storage.reduce((a, v) => a + v, 0) / rows;
      const variance = x.storage.reduce((a, v) => a + (v - mean) ** 2, 0) / (rows - 1);
      let cov = 0;
      for (let i = 0; i < rows; i++) cov += ((x.storage[i] as number) - mean) * (noise.storage[i] as number);
      return { mean, variance, correlation: cov / (rows - 1) / Math.sqrt(variance) };
    };
    // The standard errors of 20000 samples: 0.0035 for the mean, 0.0025 for the variance.
    const awm = await moments({}, 20);
    expect(Math.abs(awm.mean - MU)).toBeLessThan(0.015);
    expect(Math.abs(awm.variance - SIGMA ** 2)).toBeLessThan(0.015);
    // The ODE maps each noise to μ + σ·ε (correlation 1); the injected noise decorrelates the samples from it.
    expect(awm.correlation).toBeLessThan(0.95);
    // τ = 1 on every step, a strong SDE: the variance's error falls as the steps double.
    const strong = { tau: 1, tauInterval: [0, 1] as const };
    const errors: number[] = [];
    for (const steps of [20, 40, 80]) {
      const m = await moments(strong, steps);
      expect(Math.abs(m.mean - MU), `mean at ${steps} steps`).toBeLessThan(0.015);
      expect(m.correlation).toBeLessThan(0.5);
      errors.push(Math.abs(m.variance - SIGMA ** 2));
    }
    expect(errors[2] as number).toBeLessThan(0.01);
    expect(errors[2] as number).toBeLessThan((errors[0] as number) / 3);
  });

  it('is seeded: the same seed reproduces, chunks and offsets do not change a sample, another seed does', async () => {
    await onDevices(async (at) => {
      const net = randomizedNet({ dataDim: 3, width: 16, depth: 1 }, 5, at);
      const cond = tokens(10, 1, 16);
      const common = { cond, solver: 'sa-solver' as const, saSolver: { tauInterval: [0, 1] as const }, seed: 7 };
      const whole = await sample(net, common);
      const again = await sample(net, { ...common, chunk: 3 });
      expect(Array.from(again.x.storage)).toEqual(Array.from(whole.x.storage));
      const tail = await sample(net, {
        ...common,
        cond: Tensor.fromInt32(cond.storage.slice(4), [6, 1]),
        firstSample: 4,
      });
      expect(Array.from(tail.x.storage)).toEqual(Array.from(whole.x.storage.slice(12)));
      const other = await sample(net, { ...common, seed: 8 });
      expect(maxAbsDiff(other.x, whole.x)).toBeGreaterThan(0.01);
      // Only the noise differs from seed to seed: the same initial noise and τ = 0 give the same samples.
      const noise = Tensor.randn([10, 3], { seed: 1 });
      const deterministic = { ...common, noise, saSolver: { tau: 0 } };
      const a = await sample(net, deterministic);
      const b = await sample(net, { ...deterministic, seed: 9 });
      expect(Array.from(b.x.storage)).toEqual(Array.from(a.x.storage));
      net.dispose();
      return { x: whole.x.storage, other: other.x.storage };
    });
  });

  it('gives the same samples natively and driven from TypeScript, with and without CFG', async () => {
    await onDevices(async (at) => {
      const net = randomizedNet({ dataDim: 5, width: 24, depth: 2, condSlots: 2, vocabSize: 7 }, 3, at);
      const cond = tokens(37, 2, 7);
      const samples: Record<string, Float32Array> = {};
      for (const saOptions of [{}, { predictorOrder: 3, correctorOrder: 3, tau: 1 }, { correctorOrder: 0 }]) {
        for (const cfg of [{ cfgScale: 1 }, { cfgScale: 3.5, cfgInterval: [0.2, 0.7] as const }]) {
          const common = { cond, seed: 4, ...cfg, trajectory: true, steps: 10, schedule: 'sd3' as const };
          const native = await sample(net, { ...common, solver: 'sa-solver', saSolver: saOptions, chunk: 10 });
          const driven = await sample(net, { ...common, solver: saSolver(saOptions) });
          const name = `${JSON.stringify(saOptions)} ${JSON.stringify(cfg)}`;
          expect(maxAbsDiff(native.x, driven.x), name).toBeLessThanOrEqual(1e-6);
          expect(maxAbsDiff(native.trajectory as Tensor, driven.trajectory as Tensor), name).toBeLessThanOrEqual(1e-6);
          samples[name] = native.trajectory?.storage as Float32Array;
        }
      }
      // solvers['sa-solver'] is SA-Solver with AWM's options.
      const byName = await sample(net, { cond, seed: 4, steps: 6, solver: solvers['sa-solver'] });
      expect(Array.from(byName.x.storage)).toEqual(
        Array.from((await sample(net, { cond, seed: 4, steps: 6, solver: 'sa-solver' })).x.storage),
      );
      net.dispose();
      return samples;
    });
  });

  it('rejects bad options with errors that name them', async () => {
    const net = randomizedNet({ dataDim: 2, width: 8, depth: 1 }, 1);
    const cond = tokens(4, 1, 16);
    await expect(sample(net, { cond, saSolver: { tau: 0 } })).rejects.toThrow(
      /saSolver applies to solver: 'sa-solver'/,
    );
    const bad = [
      [{ predictorOrder: 4 }, /predictorOrder/],
      [{ correctorOrder: -1 }, /correctorOrder/],
      [{ tau: -0.1 }, /tau/],
      [{ tauInterval: [0.9, 0.3] }, /tauInterval must be \[lo, hi\]/],
      [{ order: 2 }, /unknown option 'order'/],
    ] as const;
    for (const [saOptions, message] of bad) {
      await expect(sample(net, { cond, solver: 'sa-solver', saSolver: saOptions as SaSolverOptions })).rejects.toThrow(
        message,
      );
      expect(() => saSolver(saOptions as SaSolverOptions)).toThrow(message);
    }
    net.dispose();
  });
});
