// GRPO-Guard's loss with its gradient (docs/algorithms.md §9.4), exposed for verification: FlowGRPO's clipped
// objective on the RatioNorm ratio, each transition weighted by 1/|dt|, in the native code the trainer runs.
import { native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import { GRPO_LOSS_SCHEMA } from '../options/grpo-loss.js';
import { objectOption, rejectUnknown, resolveOptions } from '../options/schema.js';
import { SDE_A, TIME } from '../sampling/sde.js';
import { checkTransitions, type GrpoLossInputs, transitionRows } from './grpo-loss.js';

const GUARD_LOSS_SCHEMA = {
  clipRange: { ...GRPO_LOSS_SCHEMA.clipRange, default: 2e-6 },
  logpSum: GRPO_LOSS_SCHEMA.logpSum,
  a: SDE_A,
  tFirst: TIME,
} as const;

/** The inputs of guardLoss: grpoLoss's, without a reference, with the rollout's step means. */
export interface GuardLossInputs extends Omit<GrpoLossInputs, 'vRef'> {
  /** The mean of each transition's step under the rollout policy, as the rollout stored it (R, D). */
  meanOld: Tensor;
}

/**
 * GRPO-Guard's objective over R FlowGRPO transitions: with s the step's std and b = mean_d (mean_θ − meanOld)²/(2s²),
 * the normalised ratio ρ = exp((log p_θ − log p_old + b)·s), the mean over rows of max(−A·ρ, −A·clip(ρ, 1 ± ε))/|dt|.
 * Returns the loss, its gradient with respect to vTheta, and the clip fraction, ½·mean (log ρ)² and mean ratio.
 */
export function guardLoss(
  inputs: GuardLossInputs,
  options: { clipRange?: number; logpSum?: boolean; a?: number; tFirst?: number } = {},
): {
  /** The mean loss over the transitions. */
  loss: number;
  /** Its gradient with respect to vTheta (R, D). */
  grad: Tensor;
  /** Fraction of transitions whose normalised ratio left [1 − ε, 1 + ε]. */
  clipFraction: number;
  /** ½·mean (log ρ)² of the normalised ratios. */
  approxKl: number;
  /** Mean of the normalised ratios. */
  ratioMean: number;
} {
  const given = objectOption('guardLoss inputs', inputs);
  rejectUnknown('guardLoss inputs', given, ['vTheta', 'meanOld', 'x', 'xNext', 't', 'tNext', 'advantages', 'logpOld']);
  const { a, tFirst, ...params } = resolveOptions('guardLoss options', options, GUARD_LOSS_SCHEMA);
  const [R, D] = checkTransitions(given, ['x', 'xNext', 'meanOld']);
  const f32 = (name: string) => (given[name] as Tensor<'float32'>).storage;
  const rows = transitionRows(given.t as Tensor<'float32'>, given.tNext as Tensor<'float32'>, a, tFirst, 'flow-grpo');
  const r = native().guardLoss(
    f32('vTheta'),
    f32('x'),
    f32('xNext'),
    f32('meanOld'),
    rows,
    f32('advantages'),
    f32('logpOld'),
    D,
    { ...params, klCoef: 0, sde: 'flow-grpo' },
  );
  return { ...r, grad: Tensor.from(r.grad, [R, D]) };
}
