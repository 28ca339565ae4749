// Sampling: integrate dx/dt = v(x, t, c) from noise at t = 1 to data at t = 0 (docs/algorithms.md §1.1 and §2.7).
// A VelocityNet with a built-in solver runs the whole rollout in one native call; any other combination (a velocity
// function, a solver written in TypeScript) runs here, with the built-in solvers re-expressed over the same float32
// arithmetic so that both paths give the same samples.
import { checkFinite, checkTensor } from '../core/checks.js';
import type { ParamSetName } from '../core/native.js';
import { SAMPLE_STREAM, SDE_STREAM } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import { VelocityNet } from '../model/net.js';
import { checkValue, type Resolved, type Rule, resolveOptions, type Schema, seedOption } from '../options/schema.js';
import {
  runSaPlan,
  SA_SOLVER_SCHEMA,
  SA_TAU_INTERVAL,
  type SaSolverConfig,
  type SaSolverOptions,
  saSolverPlan,
} from './sa-solver.js';
import { type FlatSolver, guide, SOLVER_STEPS } from './solver-steps.js';

/** Names of the built-in solvers. */
export type SolverName = 'euler' | 'heun' | 'dpm2' | 'sa-solver';

/** The built-in solvers' names, in the order messages list them. */
export const SOLVER_NAMES: readonly SolverName[] = ['euler', 'heun', 'dpm2', 'sa-solver'];

/** What a solver is given for one chunk of samples. */
export interface SolverContext {
  /** The initial state (B, D) at t = grid[0] = 1; the solver owns it and may update it in place. */
  readonly x: Tensor;
  /** The time grid, 1 = t_0 > t_1 > … > t_N = 0. */
  readonly grid: Float64Array;
  /** The velocity at (x, t) for this chunk's conditions, with classifier-free guidance applied when asked for. */
  velocity(x: Tensor, t: number): Promise<Tensor>;
  /** Appends the state after a step to the trajectory (the initial state is recorded already); cheap when unused. */
  record(x: Tensor): void;
  /** Standard normal noise (B, D) for step i (1-based) of a stochastic solver: stepNoise of the chunk's samples. */
  noise(step: number): Tensor;
}

/**
 * The standard normal noise (rows, dim) of step `step` (1-based) of a stochastic solver for the samples from
 * `firstSample` of a seed: Philox stream SDE_STREAM at offset (step − 1)·2^40 + firstSample·dim, as the native sampler
 * draws it (SolverContext.noise; the dashboard's sampling page gets SA-Solver's noise from it).
 */
export function stepNoise(seed: number, step: number, firstSample: number, rows: number, dim: number): Tensor {
  return Tensor.randn([rows, dim], { seed, stream: SDE_STREAM, offset: (step - 1) * 2 ** 40 + firstSample * dim });
}

/** A solver: returns the state at t = 0. */
export type Solver = (ctx: SolverContext) => Promise<Tensor>;

/** Any velocity model: x (B, D), one time for all rows, conditions (B, L) → v (B, D). */
export type VelocityFn = (x: Tensor, t: number, cond: Tensor<'int32'>) => Tensor | Promise<Tensor>;

/** Options of timeGrid. */
export interface TimeGridOptions {
  /**
   * 'uniform' (default): t_k = σ(1 − k/N). 'sd3': the grid of diffusers' FlowMatchEulerDiscreteScheduler that SD3.5
   * and both official codebases use: s linear from 1 to σ(1/1000) over N points, t_k = σ(s_k), then a final 0.
   */
  schedule?: 'uniform' | 'sd3';
  /** σ(s) = shift·s / (1 + (shift − 1)·s); 1 (default for 'uniform') is the identity, SD3 uses 3 (default for 'sd3'). */
  shift?: number;
}

/** The option table of timeGrid (the shift's default depends on the schedule). */
export const TIME_GRID_SCHEMA = {
  schedule: { type: 'enum', values: ['uniform', 'sd3'], default: 'uniform' },
  shift: { type: 'number', min: 1e-3, max: 1e3 },
} as const satisfies Record<keyof TimeGridOptions, Rule>;

/** The N + 1 times of an N-step rollout, from t = 1 (noise) down to t = 0 (data), in double precision. */
export function timeGrid(steps: number, options: TimeGridOptions = {}): Float64Array {
  checkValue('steps', ROLLOUT_RULES.steps, steps);
  const { schedule, shift } = resolveOptions('timeGrid options', options, TIME_GRID_SCHEMA);
  const shiftValue = shift ?? (schedule === 'sd3' ? 3 : 1);
  const sigma = (s: number) => (shiftValue * s) / (1 + (shiftValue - 1) * s);
  const grid = new Float64Array(steps + 1);
  if (schedule === 'uniform') {
    for (let k = 0; k <= steps; k++) grid[k] = sigma(1 - k / steps);
  } else {
    const last = sigma(1 / 1000);
    for (let k = 0; k < steps; k++) grid[k] = sigma(steps === 1 ? 1 : 1 + ((last - 1) * k) / (steps - 1));
  }
  grid[0] = 1;
  grid[steps] = 0;
  return grid;
}

// A built-in solver's steps (lib/sampling/solver-steps.ts) as a Solver over the context's tensors.
function overTensors(steps: FlatSolver): Solver {
  return async (ctx) => {
    const x = ctx.x.storage as Float32Array;
    const shape = ctx.x.shape;
    await steps(
      x,
      ctx.grid,
      async (state, t) =>
        (await ctx.velocity(state === x ? ctx.x : Tensor.from(state, shape), t)).storage as Float32Array,
      () => ctx.record(ctx.x),
    );
    return ctx.x;
  };
}

/** SA-Solver options with their defaults, checked (docs/algorithms.md §2.8). */
export function resolveSaSolver(given: unknown, what = 'sample options.saSolver'): SaSolverConfig {
  const opts = resolveOptions(what, given ?? {}, SA_SOLVER_SCHEMA);
  const tauInterval = resolveInterval(opts.tauInterval, `${what}.tauInterval`, SA_TAU_INTERVAL);
  return { predictorOrder: opts.predictorOrder, correctorOrder: opts.correctorOrder, tau: opts.tau, tauInterval };
}

/** SA-Solver with these options (default: AWM's) as a Solver over any velocity function. */
export function saSolver(options: SaSolverOptions = {}): Solver {
  const config = resolveSaSolver(options, 'saSolver options');
  return async (ctx) => {
    const x = ctx.x.storage as Float32Array;
    const shape = ctx.x.shape;
    await runSaPlan(
      x,
      ctx.grid,
      saSolverPlan(ctx.grid, config),
      async (state, t) =>
        (await ctx.velocity(state === x ? ctx.x : Tensor.from(state, shape), t)).storage as Float32Array,
      (step, out) => out.set(ctx.noise(step).storage),
      () => ctx.record(ctx.x),
    );
    return ctx.x;
  };
}

/**
 * The built-in solvers as TypeScript functions: what `sample` runs natively for a VelocityNet, runnable over any
 * velocity function, and examples of the Solver contract.
 */
export const solvers: Readonly<Record<SolverName, Solver>> = Object.freeze({
  euler: overTensors(SOLVER_STEPS.euler),
  heun: overTensors(SOLVER_STEPS.heun),
  dpm2: overTensors(SOLVER_STEPS.dpm2),
  'sa-solver': saSolver(),
});

/** Options of sample. */
export interface SampleOptions extends TimeGridOptions {
  /** Condition tokens (B, L) int32, one row per sample; the null condition is all zeros. Required. */
  cond: Tensor<'int32'>;
  /** 'euler' (default), 'heun', 'dpm2', 'sa-solver', or a Solver. */
  solver?: SolverName | Solver;
  /** Options of 'sa-solver' (default: AWM's, stochastic with τ = 0.4 in t ∈ [0.3, 0.9]); only with that solver. */
  saSolver?: SaSolverOptions;
  /** Number of steps N of the grid (default 10); ignored when `grid` is given. */
  steps?: number;
  /** An explicit grid 1 = t_0 > … > t_N = 0 instead of `steps`/`schedule`/`shift`. */
  grid?: ArrayLike<number>;
  /** Classifier-free guidance scale: v = v_null + s·(v_cond − v_null); 1 (default) is off. */
  cfgScale?: number;
  /**
   * The times [t_lo, t_hi] at which guidance applies (default [0, 1], everywhere); a velocity at any other t is the
   * conditional one alone. Guidance at high noise (t near 1) can erase objects: a guidance interval (Kynkäänniemi et
   * al. 2024) keeps its gain on details without that.
   */
  cfgInterval?: readonly [number, number];
  /** Initial noise (B, D); by default drawn from Philox stream SAMPLE_STREAM of `seed`. */
  noise?: Tensor;
  /** Seed of the initial noise (default 0), below 2^53. */
  seed?: number;
  /** Index of the first sample in the noise stream (default 0): sample i of a seed is the same in any batch. */
  firstSample?: number;
  /** Samples integrated at a time (default 128; twice the rows with guidance): bounds the memory, not the samples. */
  chunk?: number;
  /** Also return every state: a (N + 1, B, D) tensor (default false). */
  trajectory?: boolean;
  /** Data dimension D of a velocity function, when no `noise` gives it. */
  dataDim?: number;
  /** The parameter set of a VelocityNet to sample with (default 'theta'; a DiffusionNFT trainer adds 'old', 'ref', 'ema'). */
  params?: ParamSetName;
}

/** The clean samples (B, D) and, when asked for, the trajectory (N + 1, B, D). */
export interface SampleResult {
  /** The clean samples (B, D). */
  x: Tensor;
  /** Every state, x_{t_0} to x_{t_N} (N + 1, B, D), when `trajectory` was asked for. */
  trajectory?: Tensor;
}

/** Rules shared by every rollout call: steps of a uniform grid, guidance, the noise stream's first sample, chunks. */
export const ROLLOUT_RULES = {
  steps: { type: 'int', min: 1, max: 100000, default: 10 },
  cfgScale: { type: 'number', min: -1e6, max: 1e6, default: 1 },
  firstSample: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 0 },
  // 128 samples bound a DiT's activations to about 0.5 GB (1 GB with guidance: 768 guided rows at once took 3 GB),
  // and keep each native call large enough for every thread. Sample i is the same in any chunk.
  chunk: { type: 'int', min: 1, max: 1 << 24, default: 128 },
} as const satisfies Schema;

/** The option table of sample; `value` fields are checked below. */
const SAMPLE_SCHEMA = {
  ...TIME_GRID_SCHEMA,
  ...ROLLOUT_RULES,
  cond: { type: 'value' },
  solver: { type: 'value' },
  saSolver: { type: 'value' },
  grid: { type: 'value' },
  cfgInterval: { type: 'value' },
  noise: { type: 'value' },
  seed: { type: 'value' },
  trajectory: { type: 'boolean', default: false },
  dataDim: { type: 'value' },
  params: { type: 'value' },
} as const satisfies Record<keyof SampleOptions, Rule>;

/** An interval option of times: [lo, hi] with 0 ≤ lo ≤ hi ≤ 1, `fallback` ([0, 1]) when not given. */
export function resolveInterval(
  given: unknown,
  what = 'sample options.cfgInterval',
  fallback: readonly [number, number] = [0, 1],
): [number, number] {
  if (given === undefined) return [fallback[0], fallback[1]];
  const [lo, hi] = Array.isArray(given) && given.length === 2 ? given : [];
  if (!(typeof lo === 'number' && typeof hi === 'number' && lo >= 0 && lo <= hi && hi <= 1)) {
    throw new RangeError(`${what} must be [lo, hi] with 0 ≤ lo ≤ hi ≤ 1, got ${JSON.stringify(given)}`);
  }
  return [lo, hi];
}

function resolveGrid(opts: Resolved<typeof SAMPLE_SCHEMA>): Float64Array {
  if (opts.grid === undefined) return timeGrid(opts.steps, { schedule: opts.schedule, shift: opts.shift });
  const given = opts.grid as ArrayLike<number>;
  if (given === null || typeof given !== 'object' || typeof given.length !== 'number') {
    throw new TypeError('sample options.grid must be an array of numbers');
  }
  const grid = Float64Array.from(given);
  if (grid.length < 2 || grid[0] !== 1 || grid[grid.length - 1] !== 0) {
    throw new RangeError('sample options.grid must have at least 2 points, start at 1 and end at 0');
  }
  for (let i = 1; i < grid.length; i++) {
    if (!((grid[i] as number) < (grid[i - 1] as number))) {
      throw new RangeError(`sample options.grid must be strictly decreasing (index ${i})`);
    }
  }
  return grid;
}

/**
 * Draws samples from a velocity model by integrating from noise at t = 1 to t = 0. `model` is a VelocityNet or any
 * velocity function; `solver` a built-in name or a Solver. A VelocityNet with a built-in solver runs each chunk of the
 * rollout as one native call off the JavaScript thread.
 */
export async function sample(model: VelocityNet | VelocityFn, options: SampleOptions): Promise<SampleResult> {
  const opts = resolveOptions('sample options', options, SAMPLE_SCHEMA);
  const net = model instanceof VelocityNet ? model : null;
  if (net === null && typeof model !== 'function') throw new TypeError('model must be a VelocityNet or a function');
  const cond = opts.cond as Tensor<'int32'>;
  if (!(cond instanceof Tensor) || cond.shape.length !== 2) {
    throw new TypeError('sample options.cond must be an int32 Tensor of shape [B, L]');
  }
  const batch = cond.shape[0] as number;
  if (net === null) checkTensor('cond', cond, 'int32', cond.shape);
  const tokens = net ? net.checkCond(cond, batch) : cond.storage;
  const noise = opts.noise as Tensor | undefined;
  const dim = net?.config.dataDim ?? noise?.shape[1] ?? (opts.dataDim as number | undefined);
  if (dim === undefined) throw new TypeError('sample options.dataDim (or noise) is required for a velocity function');
  if (!Number.isInteger(dim) || dim < 1) throw new RangeError(`sample options.dataDim must be a positive integer`);
  if (noise !== undefined) {
    checkTensor('noise', noise, 'float32', [batch, dim]);
    checkFinite('noise', noise.storage);
  }
  const grid = resolveGrid(opts);
  const solver = opts.solver ?? 'euler';
  if (typeof solver !== 'function' && !Object.hasOwn(solvers, solver as string)) {
    const names = SOLVER_NAMES.map((name) => `'${name}'`).join(', ');
    throw new RangeError(`sample options.solver must be ${names} or a function, got ${String(solver)}`);
  }
  if (opts.saSolver !== undefined && solver !== 'sa-solver') {
    throw new TypeError("sample options.saSolver applies to solver: 'sa-solver' only");
  }
  const sa = solver === 'sa-solver' ? resolveSaSolver(opts.saSolver) : undefined;
  const { cfgScale, firstSample, chunk } = opts;
  const [cfgTMin, cfgTMax] = resolveInterval(opts.cfgInterval);
  const seed = Number(seedOption('sample options.seed', opts.seed ?? 0));
  if (!Number.isSafeInteger(seed)) throw new RangeError('sample options.seed must be below 2^53');
  const withTrajectory = opts.trajectory;
  const params = (opts.params ?? 'theta') as ParamSetName;
  if (net !== null) net.checkParamSet(params);
  else if (opts.params !== undefined) throw new TypeError('sample options.params applies to a VelocityNet only');

  if (net !== null && typeof solver === 'string') {
    const nativeOptions = {
      solver: solver as SolverName,
      grid,
      cfgScale,
      cfgTMin,
      cfgTMax,
      seed,
      firstSample,
      chunk,
      ...(sa ? { saPlan: saSolverPlan(grid, sa) } : {}),
    };
    const r = await net.enqueue(() =>
      net.model.sample(noise?.storage ?? null, tokens, batch, nativeOptions, withTrajectory, params),
    );
    const x = Tensor.from(r.x, [batch, dim]);
    checkFinite('the samples', x.storage);
    return r.trajectory ? { x, trajectory: Tensor.from(r.trajectory, [grid.length, batch, dim]) } : { x };
  }

  const velocityOf: VelocityFn = net ? (x, t, c) => net.velocity(x, t, c, params) : (model as VelocityFn);
  const run = typeof solver === 'function' ? (solver as Solver) : sa ? saSolver(sa) : solvers[solver as SolverName];
  const slots = cond.shape[1] as number;
  const out = new Float32Array(batch * dim);
  const states: Float32Array[] = [];
  for (let start = 0; start < batch; start += chunk) {
    const rows = Math.min(chunk, batch - start);
    const chunkCond = Tensor.fromInt32(tokens.subarray(start * slots, (start + rows) * slots), [rows, slots]);
    const x = noise
      ? Tensor.from(noise.storage.slice(start * dim, (start + rows) * dim), [rows, dim])
      : Tensor.randn([rows, dim], { seed, stream: SAMPLE_STREAM, offset: (firstSample + start) * dim });
    let recorded = 0;
    const record = (state: Tensor) => {
      if (!withTrajectory) return;
      checkTensor('a recorded state', state, 'float32', [rows, dim]);
      if (start === 0) states.push(new Float32Array(batch * dim));
      const into = states[recorded++];
      if (into === undefined) throw new RangeError('a solver recorded more states in a later chunk than the first');
      into.set(state.storage, start * dim);
    };
    record(x);
    const ctx: SolverContext = {
      x,
      grid,
      velocity: (state, t) =>
        guidedVelocity(velocityOf, state, t, chunkCond, t >= cfgTMin && t <= cfgTMax ? cfgScale : 1, dim),
      record,
      noise: (step) => {
        if (!(Number.isInteger(step) && step >= 1 && step < grid.length)) {
          throw new RangeError(`a solver asked for the noise of step ${step} of ${grid.length - 1}`);
        }
        return stepNoise(seed, step, firstSample + start, rows, dim);
      },
    };
    const result = await run(ctx);
    checkTensor('the solver result', result, 'float32', [rows, dim]);
    if (withTrajectory && recorded !== states.length) {
      throw new RangeError('a solver recorded a different number of states in one chunk than in another');
    }
    out.set(result.storage, start * dim);
  }
  checkFinite('the samples', out);
  const x = Tensor.from(out, [batch, dim]);
  if (!withTrajectory) return { x };
  const trajectory = new Float32Array(states.length * batch * dim);
  for (const [k, state] of states.entries()) trajectory.set(state, k * batch * dim);
  return { x, trajectory: Tensor.from(trajectory, [states.length, batch, dim]) };
}

// The velocity of a chunk, guided with one model call over [x; x] and [c; null] when cfgScale ≠ 1.
async function guidedVelocity(
  model: VelocityFn,
  x: Tensor,
  t: number,
  cond: Tensor<'int32'>,
  cfgScale: number,
  dim: number,
): Promise<Tensor> {
  const rows = cond.shape[0] as number;
  checkTensor('x', x, 'float32', [rows, dim]);
  if (cfgScale === 1) return checkVelocity(await model(x, t, cond), rows, dim, t);
  const stacked = new Float32Array(2 * rows * dim);
  stacked.set(x.storage);
  stacked.set(x.storage, rows * dim);
  const tokens = new Int32Array(2 * cond.size);
  tokens.set(cond.storage);
  const both = checkVelocity(
    await model(
      Tensor.from(stacked, [2 * rows, dim]),
      t,
      Tensor.fromInt32(tokens, [2 * rows, cond.shape[1] as number]),
    ),
    2 * rows,
    dim,
    t,
  );
  return Tensor.from(guide(both.storage, rows, dim, cfgScale), [rows, dim]);
}

function checkVelocity(v: unknown, rows: number, dim: number, t: number): Tensor {
  checkTensor(`the velocity at t = ${t}`, v, 'float32', [rows, dim]);
  checkFinite(`the velocity at t = ${t}`, (v as Tensor<'float32'>).storage);
  return v as Tensor;
}
