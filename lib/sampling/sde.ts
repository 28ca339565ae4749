// FlowGRPO's reverse SDE (docs/algorithms.md §3.2–§3.3), exposed for verification: one step and its
// log-probability, and the SDE rollout with the per-step log-probabilities that FlowGRPO trains on.
import { checkFinite, checkTensor } from '../core/checks.js';
import { native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import type { VelocityNet } from '../model/net.js';
import { objectOption, type Rule, rejectUnknown, resolveOptions, seedOption } from '../options/schema.js';
import { ROLLOUT_RULES, resolveInterval, timeGrid } from './solvers.js';

/** The noise level a of the SDE's σ_t = a·√(t/(1 − t)) (0.7, the code's); 0 is the Euler ODE. */
export const SDE_A = { type: 'number', min: 0, max: 100, default: 0.7 } as const satisfies Rule;

/** A time of the grid, in [0, 1]. */
export const TIME = { type: 'number', min: 0, max: 1 } as const satisfies Rule;

const SDE_STEP_SCHEMA = { t: TIME, tNext: TIME, a: SDE_A, tFirst: TIME } as const;

/** One step of the SDE from t to tNext < t (docs/algorithms.md §3.2). */
export interface SdeStepResult {
  /** mean = x + [v + σ²/(2t)·(x + (1 − t)·v)]·dt, dt = tNext − t. */
  mean: Tensor;
  /** mean + std·noise. */
  xNext: Tensor;
  /** σ_t·√(t − tNext). */
  std: number;
  /** σ_t = a·√(t/(1 − t)) (at t = 1 the code's guard: a·√(1/(1 − tFirst))). */
  sigma: number;
}

/**
 * One Euler–Maruyama step of FlowGRPO's marginal-preserving reverse SDE, in float32 as the native sampler runs it.
 * `tFirst` is the grid's second time, used by the guard at t = 1.
 */
export function sdeStep(
  x: Tensor,
  v: Tensor,
  noise: Tensor,
  options: { t: number; tNext: number; a?: number; tFirst?: number },
): SdeStepResult {
  const { t, tNext, a, tFirst = tNext } = resolveOptions('sdeStep options', options, SDE_STEP_SCHEMA);
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
  );
  return { mean: Tensor.from(r.mean, x.shape), xNext: Tensor.from(r.xNext, x.shape), std: r.std, sigma: r.sigma };
}

/**
 * The stds sdeLogProb takes: 2·std² must be a normal float32, neither 0 nor infinite (std 1e-30 would divide by 0).
 */
const SDE_STD_RANGE = [2 ** -63, 2 ** 63] as const;

/**
 * log N(xNext; mean, std²·I) of each row (B, D), averaged over the D dimensions as the code does (a per-dimension
 * geometric mean), or summed with `{ sum: true }`. A std outside [2^-63, 2^63] is a RangeError; a log-probability
 * that overflows (x far from the mean for the std) a NumericError.
 */
export function sdeLogProb(xNext: Tensor, mean: Tensor, std: number, options: { sum?: boolean } = {}): Float32Array {
  const opts = objectOption('sdeLogProb options', options);
  rejectUnknown('sdeLogProb options', opts, ['sum']);
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
  seed: { type: 'value' },
  logpSum: { type: 'boolean', default: false },
  params: { type: 'value' },
} as const satisfies Record<keyof SdeSampleOptions, Rule>;

/**
 * An SDE rollout as FlowGRPO collects it, in one native call per chunk: the clean samples x (B, D), every state
 * (N + 1, B, D) and the log-probability of every step (N, B), as stored for the ratio.
 */
export async function sampleSde(
  net: VelocityNet,
  options: SdeSampleOptions,
): Promise<{
  /** The clean samples (B, D). */
  x: Tensor;
  /** Every state, x_{t_0} to x_{t_N} (N + 1, B, D). */
  trajectory: Tensor;
  /** The log-probability of every step (N, B). */
  logp: Tensor;
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
  const nativeOptions = {
    solver: 'sde' as const,
    grid,
    sdeA: opts.a,
    cfgScale: opts.cfgScale,
    cfgTMin,
    cfgTMax,
    seed,
    firstSample: opts.firstSample,
    chunk: opts.chunk,
    logpSum: opts.logpSum,
  };
  const r = await net.enqueue(() => net.model.sample(null, tokens, batch, nativeOptions, true, params));
  const D = net.config.dataDim;
  const x = Tensor.from(r.x, [batch, D]);
  checkFinite('the samples', x.storage);
  return {
    x,
    trajectory: Tensor.from(r.trajectory as Float32Array, [grid.length, batch, D]),
    logp: Tensor.from(r.logp as Float32Array, [grid.length - 1, batch]),
  };
}
