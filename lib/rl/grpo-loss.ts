// FlowGRPO's loss with its gradient (docs/algorithms.md §3.4), exposed for verification: the clipped ratio of the
// SDE (or CPS) transitions' likelihoods (lib/sampling/sde.ts) and the KL term, in the native code the trainers run.
import { checkFinite, checkTensor } from '../core/checks.js';
import { native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import { GRPO_LOSS_SCHEMA, type GrpoLossOptions, type SdeKind } from '../options/grpo-loss.js';
import { objectOption, rejectUnknown, resolveOptions } from '../options/schema.js';
import { SDE_A, TIME } from '../sampling/sde.js';

const GRPO_LOSS_CALL_SCHEMA = { ...GRPO_LOSS_SCHEMA, a: SDE_A, tFirst: TIME } as const;

/** The inputs of grpoLoss: R transitions x → xNext (R, D), with their step's times and the rollout's log p. */
export interface GrpoLossInputs {
  /** The trained network's velocity at each transition's start (R, D). */
  vTheta: Tensor;
  /** The frozen reference θ_ref's velocity there (R, D), for the KL term: required when klCoef > 0. */
  vRef?: Tensor;
  /** Each transition's start (R, D). */
  x: Tensor;
  /** Each transition's end, as sampled at rollout (R, D). */
  xNext: Tensor;
  /** The transition's times (R each): t > tNext. */
  t: Tensor;
  /** The time of each transition's end (R). */
  tNext: Tensor;
  /** Advantages (R), clipped already. */
  advantages: Tensor;
  /** log p of each transition recorded at rollout (R). */
  logpOld: Tensor;
}

/**
 * Checks the inputs of a loss over R transitions: vTheta and `rows` (R, D), t, tNext, advantages and logpOld (R),
 * finite float32 tensors. Returns [R, D].
 */
export function checkTransitions(given: Record<string, unknown>, rows: readonly string[]): [number, number] {
  const vTheta = given.vTheta as Tensor;
  if (!(vTheta instanceof Tensor) || vTheta.shape.length !== 2) throw new TypeError('vTheta must be a [R, D] Tensor');
  const [R, D] = vTheta.shape as [number, number];
  for (const name of ['vTheta', ...rows]) {
    checkTensor(name, given[name], 'float32', [R, D]);
    checkFinite(name, (given[name] as Tensor<'float32'>).storage);
  }
  for (const name of ['t', 'tNext', 'advantages', 'logpOld']) {
    checkTensor(name, given[name], 'float32', [R]);
    checkFinite(name, (given[name] as Tensor<'float32'>).storage);
  }
  return [R, D];
}

/**
 * The per-row coefficients (xCoef, vCoef, std, sigma, dt) of R transitions t → tNext, as the native losses read them.
 * The last step into t = 0 is never trained: FlowGRPO's σ makes its log-density overflow.
 */
export function transitionRows(
  t: Tensor<'float32'>,
  tNext: Tensor<'float32'>,
  a: number,
  tFirst: number | undefined,
  sde: SdeKind,
): Float32Array {
  const R = t.shape[0] as number;
  const rows = new Float32Array(5 * R);
  for (let i = 0; i < R; i++) {
    const ti = t.storage[i] as number;
    const tn = tNext.storage[i] as number;
    if (!(ti > 0 && ti <= 1 && tn > 0 && tn < ti)) {
      throw new RangeError(`transition ${i} needs 0 < tNext < t ≤ 1 (the last step into t = 0 is not trained)`);
    }
    const k = native().sdeCoefficients(ti, tn, a, tFirst ?? tn, sde === 'cps');
    rows.set([k.xCoef, k.vCoef, k.std, k.sigma, tn - ti], 5 * i);
  }
  return rows;
}

/**
 * The GRPO objective of docs/algorithms.md §3.4 over R transitions, in the native code the trainer runs: ratio =
 * exp(log p_θ − log p_old), mean of max(−A·ratio, −A·clip(ratio, 1 ± ε)), plus the code's KL term. Returns the
 * loss, its gradient with respect to vTheta, and the clip fraction, approximate KL and mean ratio.
 */
export function grpoLoss(
  inputs: GrpoLossInputs,
  options: GrpoLossOptions & { a?: number; tFirst?: number } = {},
): {
  /** The mean loss over the transitions. */
  loss: number;
  /** Its gradient with respect to vTheta (R, D). */
  grad: Tensor;
  /** Fraction of transitions whose ratio left [1 − ε, 1 + ε]. */
  clipFraction: number;
  /** ½·mean (log p − log p_old)², the code's approximate KL. */
  approxKl: number;
  /** Mean of the ratios. */
  ratioMean: number;
} {
  const given = objectOption('grpoLoss inputs', inputs);
  rejectUnknown('grpoLoss inputs', given, ['vTheta', 'vRef', 'x', 'xNext', 't', 'tNext', 'advantages', 'logpOld']);
  const { a, tFirst, ...params } = resolveOptions('grpoLoss options', options, GRPO_LOSS_CALL_SCHEMA);
  const vTheta = given.vTheta as Tensor;
  const [R, D] = checkTransitions(given, ['x', 'xNext', ...(given.vRef === undefined ? [] : ['vRef'])]);
  if (params.klCoef > 0 && given.vRef === undefined) throw new TypeError('grpoLoss: vRef is required when klCoef > 0');
  const rows = transitionRows(given.t as Tensor<'float32'>, given.tNext as Tensor<'float32'>, a, tFirst, params.sde);
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
