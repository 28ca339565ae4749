// The pure pieces of FlowGRPO (algorithms.md 3.2–3.4), exposed for verification: the SDE step and its
// log-probability, the SDE rollout with the per-step log-probabilities, and the GRPO loss with its gradient.
import { checkFinite, checkTensor } from './checks.js';
import { native } from './native.js';
import type { VelocityNet } from './net.js';
import { numberOption, objectOption, rejectUnknown, seedOption } from './options.js';
import { timeGrid } from './solvers.js';
import { Tensor } from './tensor.js';

/** Philox stream of the SDE noise: step n of sample i uses elements n·2^40 + [i·D, (i + 1)·D). */
export const SDE_STREAM = 7;

/** One step of the SDE from t to tNext < t (algorithms.md 3.2). */
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
  const opts = objectOption('sdeStep options', options);
  rejectUnknown('sdeStep options', opts, ['t', 'tNext', 'a', 'tFirst']);
  const t = numberOption('sdeStep options', opts, 't', { kind: 'number', min: 0, max: 1 }, Number.NaN);
  const tNext = numberOption('sdeStep options', opts, 'tNext', { kind: 'number', min: 0, max: 1 }, Number.NaN);
  if (!(t > 0 && tNext < t)) throw new RangeError('sdeStep needs 0 ≤ tNext < t ≤ 1');
  const a = numberOption('sdeStep options', opts, 'a', { kind: 'number', min: 0, max: 100 }, 0.7);
  const tFirst = numberOption('sdeStep options', opts, 'tFirst', { kind: 'number', min: 0, max: 1 }, tNext);
  if (t === 1 && !(tFirst < 1)) throw new RangeError('sdeStep at t = 1 needs tFirst < 1');
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
    tFirst,
  );
  return { mean: Tensor.from(r.mean, x.shape), xNext: Tensor.from(r.xNext, x.shape), std: r.std, sigma: r.sigma };
}

/**
 * log N(xNext; mean, std²·I) of each row (B, D), averaged over the D dimensions as the code does (a per-dimension
 * geometric mean), or summed with `{ sum: true }`.
 */
export function sdeLogProb(xNext: Tensor, mean: Tensor, std: number, options: { sum?: boolean } = {}): Float32Array {
  const opts = objectOption('sdeLogProb options', options);
  rejectUnknown('sdeLogProb options', opts, ['sum']);
  if (!(xNext instanceof Tensor) || xNext.shape.length !== 2) throw new TypeError('xNext must be a [B, D] Tensor');
  checkTensor('mean', mean, 'float32', xNext.shape);
  checkFinite('xNext', xNext.storage as Float32Array);
  checkFinite('mean', mean.storage as Float32Array);
  if (!(std > 0 && Number.isFinite(std))) throw new RangeError(`std must be a positive number, got ${std}`);
  return native().sdeLogp(
    xNext.storage as Float32Array,
    mean.storage as Float32Array,
    std,
    xNext.shape[1] as number,
    opts.sum === true,
  );
}

/** Options of sampleSde. */
export interface SdeSampleOptions {
  /** Condition tokens (B, L). */
  cond: Tensor<'int32'>;
  /** SDE steps N (default 10) of a uniform grid, or an explicit `grid`. */
  steps?: number;
  grid?: ArrayLike<number>;
  /** Noise level a (default 0.7); 0 gives the Euler ODE sampler. */
  a?: number;
  /** Classifier-free guidance (default 1: none; the code rolls out SD3.5 at 4.5). */
  cfgScale?: number;
  seed?: number;
  firstSample?: number;
  chunk?: number;
  /** Sum the per-dimension log-probabilities instead of averaging them. */
  logpSum?: boolean;
  /** The parameter set to roll out (default 'theta'). */
  params?: 'theta' | 'old' | 'ref' | 'ema';
}

/**
 * An SDE rollout as FlowGRPO collects it, in one native call per chunk: the clean samples x (B, D), every state
 * (N + 1, B, D) and the log-probability of every step (N, B), as stored for the ratio.
 */
export async function sampleSde(
  net: VelocityNet,
  options: SdeSampleOptions,
): Promise<{ x: Tensor; trajectory: Tensor; logp: Tensor }> {
  const opts = objectOption('sampleSde options', options);
  rejectUnknown('sampleSde options', opts, [
    'cond',
    'steps',
    'grid',
    'a',
    'cfgScale',
    'seed',
    'firstSample',
    'chunk',
    'logpSum',
    'params',
  ]);
  const cond = opts.cond as Tensor<'int32'>;
  if (!(cond instanceof Tensor) || cond.shape.length !== 2)
    throw new TypeError('options.cond must be a [B, L] int32 Tensor');
  const batch = cond.shape[0] as number;
  const tokens = net.checkCond(cond, batch);
  const grid =
    opts.grid === undefined
      ? timeGrid(numberOption('options', opts, 'steps', { kind: 'int', min: 1, max: 100000 }, 10))
      : Float64Array.from(opts.grid as ArrayLike<number>);
  const params = (opts.params ?? 'theta') as 'theta';
  net.checkParamSet(params);
  const seed = Number(seedOption('options.seed', opts.seed ?? 0));
  if (!Number.isSafeInteger(seed)) throw new RangeError('options.seed must be below 2^53');
  const nativeOptions = {
    solver: 'sde',
    grid,
    sdeA: numberOption('options', opts, 'a', { kind: 'number', min: 0, max: 100 }, 0.7),
    cfgScale: numberOption('options', opts, 'cfgScale', { kind: 'number', min: -1e6, max: 1e6 }, 1),
    seed,
    firstSample: numberOption('options', opts, 'firstSample', { kind: 'int', min: 0, max: Number.MAX_SAFE_INTEGER }, 0),
    chunk: numberOption('options', opts, 'chunk', { kind: 'int', min: 1, max: 1 << 24 }, 1024),
    logpSum: opts.logpSum === true,
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

/** Options of the GRPO loss (algorithms.md 3.4; defaults as the official code). */
export interface GrpoLossOptions {
  /** PPO clip range ε on the ratio of mean-over-dimension likelihoods (1e-4, the code's, for 65536-dim latents). */
  clipRange?: number;
  /** β_KL of mean_dims (mean_θ − mean_ref)²/(2σ_t²) (0.04 in the code for GenEval). Needs vRef. */
  klCoef?: number;
  /** Sum the per-dimension log-probabilities instead of averaging them (false). */
  logpSum?: boolean;
}

/** The inputs of grpoLoss: R transitions x → xNext (R, D), with their step's times and the rollout's log p. */
export interface GrpoLossInputs {
  vTheta: Tensor;
  vRef?: Tensor;
  x: Tensor;
  xNext: Tensor;
  /** The transition's times (R each): t > tNext. */
  t: Tensor;
  tNext: Tensor;
  /** Advantages (R), clipped already. */
  advantages: Tensor;
  /** log p of each transition recorded at rollout (R). */
  logpOld: Tensor;
}

/**
 * The GRPO objective of algorithms.md 3.4 over R transitions, in the native code the trainer runs: ratio =
 * exp(log p_θ − log p_old), mean of max(−A·ratio, −A·clip(ratio, 1 ± ε)), plus the code's KL term. Returns the
 * loss, its gradient with respect to vTheta, and the clip fraction, approximate KL and mean ratio.
 */
export function grpoLoss(
  inputs: GrpoLossInputs,
  options: GrpoLossOptions & { a?: number; tFirst?: number } = {},
): { loss: number; grad: Tensor; clipFraction: number; approxKl: number; ratioMean: number } {
  const given = objectOption('grpoLoss inputs', inputs);
  rejectUnknown('grpoLoss inputs', given, ['vTheta', 'vRef', 'x', 'xNext', 't', 'tNext', 'advantages', 'logpOld']);
  const opts = objectOption('grpoLoss options', options);
  rejectUnknown('grpoLoss options', opts, ['clipRange', 'klCoef', 'logpSum', 'a', 'tFirst']);
  const vTheta = given.vTheta as Tensor;
  if (!(vTheta instanceof Tensor) || vTheta.shape.length !== 2) throw new TypeError('vTheta must be a [R, D] Tensor');
  const [R, D] = vTheta.shape as [number, number];
  for (const name of ['vTheta', 'x', 'xNext', ...(given.vRef === undefined ? [] : ['vRef'])]) {
    checkTensor(name, given[name], 'float32', [R, D]);
    checkFinite(name, (given[name] as Tensor<'float32'>).storage);
  }
  for (const name of ['t', 'tNext', 'advantages', 'logpOld']) {
    checkTensor(name, given[name], 'float32', [R]);
    checkFinite(name, (given[name] as Tensor<'float32'>).storage);
  }
  const params = {
    clipRange: numberOption('grpoLoss options', opts, 'clipRange', { kind: 'number', min: 0, max: 1e6 }, 1e-4),
    klCoef: numberOption('grpoLoss options', opts, 'klCoef', { kind: 'number', min: 0, max: 1e6 }, 0),
    logpSum: opts.logpSum === true,
  };
  if (params.klCoef > 0 && given.vRef === undefined) throw new TypeError('grpoLoss: vRef is required when klCoef > 0');
  const a = numberOption('grpoLoss options', opts, 'a', { kind: 'number', min: 0, max: 100 }, 0.7);
  const t = (given.t as Tensor<'float32'>).storage;
  const tNext = (given.tNext as Tensor<'float32'>).storage;
  const rows = new Float32Array(4 * R);
  for (let i = 0; i < R; i++) {
    const ti = t[i] as number;
    const tn = tNext[i] as number;
    if (!(ti > 0 && ti <= 1 && tn > 0 && tn < ti)) {
      throw new RangeError(`transition ${i} needs 0 < tNext < t ≤ 1 (the last step into t = 0 is not trained)`);
    }
    const tFirst = numberOption('grpoLoss options', opts, 'tFirst', { kind: 'number', min: 0, max: 1 }, tn);
    const k = native().sdeCoefficients(ti, tn, a, tFirst);
    rows.set([k.xCoef, k.vCoef, k.std, k.sigma], 4 * i);
  }
  const r = native().grpoLoss(
    vTheta.storage as Float32Array,
    given.vRef === undefined ? null : (given.vRef as Tensor<'float32'>).storage,
    (given.x as Tensor<'float32'>).storage,
    (given.xNext as Tensor<'float32'>).storage,
    rows,
    (given.advantages as Tensor<'float32'>).storage,
    (given.logpOld as Tensor<'float32'>).storage,
    D,
    params,
  );
  return { ...r, grad: Tensor.from(r.grad, [R, D]) };
}
