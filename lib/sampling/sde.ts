// The likelihood methods' stochastic steps, FlowGRPO's reverse SDE (docs/algorithms.md §3.2–§3.3) and CPS (§9.1),
// exposed for verification: one step and its log-probability, and the SDE rollout with the per-step
// log-probabilities (in a window of steps, an ODE elsewhere) that FlowGRPO, Flow-GRPO-Fast, MixGRPO and GRPO-Guard
// train on.
import { checkFinite, checkTensor } from '../core/checks.js';
import { native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import type { VelocityNet } from '../model/net.js';
import { SDE_KIND, type SdeKind } from '../options/grpo-loss.js';
import { checkValue, objectOption, type Rule, rejectUnknown, resolveOptions, seedOption } from '../options/schema.js';
import { ROLLOUT_RULES, resolveInterval, timeGrid } from './solvers.js';

/** The noise level a of the SDE's σ_t = a·√(t/(1 − t)) (0.7, the code's); 0 is the Euler ODE. */
export const SDE_A = { type: 'number', min: 0, max: 100, default: 0.7 } as const satisfies Rule;

/** A time of the grid, in [0, 1]. */
export const TIME = { type: 'number', min: 0, max: 1 } as const satisfies Rule;

const SDE_STEP_SCHEMA = { t: TIME, tNext: TIME, a: SDE_A, tFirst: TIME, sde: SDE_KIND } as const;

/** One step of the SDE from t to tNext < t (docs/algorithms.md §3.2, CPS §9.1). */
export interface SdeStepResult {
  /**
   * mean = x + [v + σ²/(2t)·(x + (1 − t)·v)]·dt, dt = tNext − t; CPS: (1 − tNext)·x̂0 + tNext·cos(aπ/2)·ε̂ with
   * x̂0 = x − t·v, ε̂ = x + (1 − t)·v.
   */
  mean: Tensor;
  /** mean + std·noise. */
  xNext: Tensor;
  /** σ_t·√(t − tNext); CPS: tNext·sin(aπ/2). */
  std: number;
  /** σ_t = a·√(t/(1 − t)) (at t = 1 the code's guard: a·√(1/(1 − tFirst))); CPS: std (the KL term's divisor). */
  sigma: number;
}

/**
 * One step of FlowGRPO's marginal-preserving reverse SDE (Euler–Maruyama), or with `sde: 'cps'` of CPS, in float32 as
 * the native sampler runs it. `tFirst` is the grid's second time, used by FlowGRPO's guard at t = 1.
 */
export function sdeStep(
  x: Tensor,
  v: Tensor,
  noise: Tensor,
  options: { t: number; tNext: number; a?: number; tFirst?: number; sde?: SdeKind },
): SdeStepResult {
  const { t, tNext, a, tFirst = tNext, sde } = resolveOptions('sdeStep options', options, SDE_STEP_SCHEMA);
  if (!(t !== undefined && tNext !== undefined && t > 0 && tNext < t))
    throw new RangeError('sdeStep needs 0 ≤ tNext < t ≤ 1');
  if (t === 1 && !((tFirst as number) < 1)) throw new RangeError('sdeStep at t = 1 needs tFirst < 1');
  if (!(x instanceof Tensor)) throw new TypeError('x must be a Tensor');
  for (const [name, tensor] of [
    ['x', x],
    ['v', v],
    ['noise', noise],
  ] as const) {
    checkTensor(name, tensor, 'float32', x.shape);
    checkFinite(name, (tensor as Tensor<'float32'>).storage);
  }
  const r = native().sdeStep(
    x.storage as Float32Array,
    v.storage as Float32Array,
    noise.storage as Float32Array,
    t,
    tNext,
    a,
    tFirst as number,
    sde === 'cps',
  );
  return { mean: Tensor.from(r.mean, x.shape), xNext: Tensor.from(r.xNext, x.shape), std: r.std, sigma: r.sigma };
}

/**
 * The stds sdeLogProb takes: 2·std² must be a normal float32, neither 0 nor infinite (std 1e-30 would divide by 0).
 */
const SDE_STD_RANGE = [2 ** -63, 2 ** 63] as const;

/**
 * log N(xNext; mean, std²·I) of each row (B, D), averaged over the D dimensions as the code does (a per-dimension
 * geometric mean), or summed with `{ sum: true }`; with `{ sde: 'cps' }` CPS's −(xNext − mean)² in their place. A
 * std outside [2^-63, 2^63] is a RangeError; a log-probability that overflows (x far from the mean for the std) a
 * NumericError.
 */
export function sdeLogProb(
  xNext: Tensor,
  mean: Tensor,
  std: number,
  options: { sum?: boolean; sde?: SdeKind } = {},
): Float32Array {
  const opts = objectOption('sdeLogProb options', options);
  rejectUnknown('sdeLogProb options', opts, ['sum', 'sde']);
  const sde = checkValue('sdeLogProb options.sde', SDE_KIND, opts.sde ?? SDE_KIND.default);
  if (!(xNext instanceof Tensor) || xNext.shape.length !== 2) throw new TypeError('xNext must be a [B, D] Tensor');
  checkTensor('mean', mean, 'float32', xNext.shape);
  checkFinite('xNext', xNext.storage as Float32Array);
  checkFinite('mean', mean.storage as Float32Array);
  if (!(std >= SDE_STD_RANGE[0] && std <= SDE_STD_RANGE[1]))
    throw new RangeError(`std must be a number in [2^-63, 2^63] (its float32 square is used), got ${std}`);
  const logp = native().sdeLogp(
    xNext.storage as Float32Array,
    mean.storage as Float32Array,
    std,
    xNext.shape[1] as number,
    opts.sum === true,
    sde === 'cps',
  );
  checkFinite(`sdeLogProb (std ${std}): the log-probability`, logp);
  return logp;
}

/** Options of sampleSde. */
export interface SdeSampleOptions {
  /** Condition tokens (B, L). */
  cond: Tensor<'int32'>;
  /** SDE steps N (default 10) of a uniform grid, or an explicit `grid`. */
  steps?: number;
  /** An explicit grid 1 = t_0 > … > t_N = 0 instead of `steps`. */
  grid?: ArrayLike<number>;
  /** Noise level a (default 0.7); 0 gives the Euler ODE sampler. */
  a?: number;
  /** The stochastic step (default 'flow-grpo'). */
  sde?: SdeKind;
  /**
   * The stochastic steps [lo, hi) (default all N): the others are ODE steps, Euler before the window and `tail` after
   * it, and their log-probabilities are NaN (Flow-GRPO-Fast, MixGRPO).
   */
  window?: readonly [number, number];
  /** The ODE after the window: 'euler' (default) or 'dpm2', DPM-Solver++(2M) (MixGRPO-Flash). */
  tail?: 'euler' | 'dpm2';
  /** Also return each stochastic step's mean (GRPO-Guard stores them). */
  means?: boolean;
  /** The initial noise (B, D) instead of drawing it from `seed` (MixGRPO shares it within a group). */
  noise?: Tensor;
  /** Classifier-free guidance (default 1: none; the code rolls out SD3.5 at 4.5). */
  cfgScale?: number;
  /** The times [t_lo, t_hi] at which guidance applies (default [0, 1]), as in `sample`. */
  cfgInterval?: readonly [number, number];
  /** Seed of the initial noise and of the steps' noise (default 0), below 2^53. */
  seed?: number;
  /** Index of the first sample in the noise streams, as {@link SampleOptions.firstSample}. */
  firstSample?: number;
  /** Samples rolled out per native call, as {@link SampleOptions.chunk}: bounds the memory. */
  chunk?: number;
  /** Sum the per-dimension log-probabilities instead of averaging them. */
  logpSum?: boolean;
  /** The parameter set to roll out (default 'theta'). */
  params?: 'theta' | 'old' | 'ref' | 'ema';
}

const SDE_SAMPLE_SCHEMA = {
  ...ROLLOUT_RULES,
  cond: { type: 'value' },
  grid: { type: 'value' },
  cfgInterval: { type: 'value' },
  a: SDE_A,
  sde: SDE_KIND,
  window: { type: 'value' },
  tail: { type: 'enum', values: ['euler', 'dpm2'], default: 'euler' },
  means: { type: 'boolean', default: false },
  noise: { type: 'value' },
  seed: { type: 'value' },
  logpSum: { type: 'boolean', default: false },
  params: { type: 'value' },
} as const satisfies Record<keyof SdeSampleOptions, Rule>;

/**
 * An SDE rollout as the likelihood methods collect it, in one native call per chunk: the clean samples x (B, D), every
 * state (N + 1, B, D), the log-probability of every step (N, B), as stored for the ratio, and with `means` the
 * steps' means (N, B, D).
 */
export async function sampleSde(
  net: VelocityNet,
  options: SdeSampleOptions,
): Promise<{
  /** The clean samples (B, D). */
  x: Tensor;
  /** Every state, x_{t_0} to x_{t_N} (N + 1, B, D). */
  trajectory: Tensor;
  /** The log-probability of every step (N, B); NaN at the ODE steps outside the window. */
  logp: Tensor;
  /** With `means`: the mean of every stochastic step (N, B, D), zero outside the window. */
  means?: Tensor;
}> {
  const opts = resolveOptions('sampleSde options', options, SDE_SAMPLE_SCHEMA);
  const cond = opts.cond as Tensor<'int32'>;
  if (!(cond instanceof Tensor) || cond.shape.length !== 2)
    throw new TypeError('options.cond must be a [B, L] int32 Tensor');
  const batch = cond.shape[0] as number;
  const tokens = net.checkCond(cond, batch);
  const grid = opts.grid === undefined ? timeGrid(opts.steps) : Float64Array.from(opts.grid as ArrayLike<number>);
  const params = (opts.params ?? 'theta') as 'theta';
  net.checkParamSet(params);
  const seed = Number(seedOption('options.seed', opts.seed ?? 0));
  if (!Number.isSafeInteger(seed)) throw new RangeError('options.seed must be below 2^53');
  const [cfgTMin, cfgTMax] = resolveInterval(opts.cfgInterval, 'sampleSde options.cfgInterval');
  const N = grid.length - 1;
  const [windowLo, windowHi] = (opts.window ?? [0, N]) as readonly [number, number];
  if (
    !(Number.isInteger(windowLo) && Number.isInteger(windowHi) && 0 <= windowLo && windowLo < windowHi && windowHi <= N)
  )
    throw new RangeError(`sampleSde options.window must be [lo, hi] steps with 0 ≤ lo < hi ≤ ${N}`);
  const D = net.config.dataDim;
  let noise: Float32Array | null = null;
  if (opts.noise !== undefined) {
    checkTensor('options.noise', opts.noise, 'float32', [batch, D]);
    noise = (opts.noise as Tensor<'float32'>).storage;
    checkFinite('options.noise', noise);
  }
  const nativeOptions = {
    solver: 'sde' as const,
    grid,
    sdeA: opts.a,
    sde: opts.sde,
    windowLo,
    windowHi,
    tailSolver: opts.tail,
    cfgScale: opts.cfgScale,
    cfgTMin,
    cfgTMax,
    seed,
    firstSample: opts.firstSample,
    chunk: opts.chunk,
    logpSum: opts.logpSum,
  };
  const r = await net.enqueue(() => net.model.sample(noise, tokens, batch, nativeOptions, true, params, opts.means));
  const x = Tensor.from(r.x, [batch, D]);
  checkFinite('the samples', x.storage);
  return {
    x,
    trajectory: Tensor.from(r.trajectory as Float32Array, [grid.length, batch, D]),
    logp: Tensor.from(r.logp as Float32Array, [N, batch]),
    ...(r.means === undefined ? {} : { means: Tensor.from(r.means, [N, batch, D]) }),
  };
}
