// timeGrid and sample: the grids of docs/algorithms.md §1.1, each solver's order and textbook arithmetic, the native
// and TypeScript paths agreeing, per-sample noise, guidance and its interval, custom solvers, and argument checks.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  NumericError,
  type Solver,
  sample,
  solvers,
  Tensor,
  timeGrid,
  type VelocityFn,
  VelocityNet,
} from '../lib/index.js';
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
