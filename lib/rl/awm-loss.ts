// The AWM loss with its gradient (docs/algorithms.md §7.2), exposed for verification and for pipelines of one's own.
import { checkFinite, checkTensor } from '../core/checks.js';
import { type AwmStatistics, native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import { AWM_LOSS_SCHEMA, type AwmLossOptions } from '../options/awm-loss.js';
import { objectOption, rejectUnknown, resolveOptions } from '../options/schema.js';

/** The inputs of awmLoss: rows (B, D) of velocities, the clean samples and their noise, times and advantages (B). */
export interface AwmLossInputs {
  /** The trained network's velocity at the noised samples x_t (B, D). */
  vTheta: Tensor;
  /** The base's velocity there, for the KL term (needed when klCoef > 0). */
  vRef?: Tensor;
  /** The EMA anchor's velocity there, for the EMA term (needed when emaCoef > 0). */
  vEma?: Tensor;
  /** The clean samples (B, D). */
  x0: Tensor;
  /** The noise that made x_t = (1 − t)·x0 + t·ε (B, D). */
  eps: Tensor;
  /** Times in (0, 1] (B). */
  t: Tensor;
  /** Advantages, already clipped and scaled as the trainer does (B). */
  advantages: Tensor;
}

/**
 * The AWM loss of docs/algorithms.md §7.2 in one native pass: −A·ratio (ratio = 1 on-policy) with the gradient of
 * −A·log q(l, t), plus klCoef·mean (v_θ − v_ref)² and emaCoef·mean (v_θ − v_ema)², averaged over the rows. Returns the
 * loss, its gradient with respect to vTheta and the row means of l, log q and the two KL terms.
 */
export function awmLoss(
  inputs: AwmLossInputs,
  options: AwmLossOptions = {},
): { loss: number; grad: Tensor } & AwmStatistics {
  const given = objectOption('awmLoss inputs', inputs);
  rejectUnknown('awmLoss inputs', given, ['vTheta', 'vRef', 'vEma', 'x0', 'eps', 't', 'advantages']);
  const params = resolveOptions('awmLoss options', options, AWM_LOSS_SCHEMA);
  const vTheta = given.vTheta as Tensor;
  if (!(vTheta instanceof Tensor) || vTheta.shape.length !== 2) {
    throw new TypeError('vTheta must be a float32 Tensor of shape [B, D]');
  }
  const shape = vTheta.shape;
  const rows = shape[0] as number;
  const rowsOf = (name: string, needed: boolean): Float32Array | null => {
    if (given[name] === undefined) {
      if (needed) throw new TypeError(`awmLoss: ${name} is required by the options`);
      return null;
    }
    checkTensor(name, given[name], 'float32', shape);
    const storage = (given[name] as Tensor<'float32'>).storage;
    checkFinite(name, storage);
    return storage;
  };
  for (const name of ['vTheta', 'x0', 'eps']) rowsOf(name, true);
  const vRef = rowsOf('vRef', params.klCoef > 0);
  const vEma = rowsOf('vEma', params.emaCoef > 0);
  checkTensor('t', given.t, 'float32', [rows]);
  checkTensor('advantages', given.advantages, 'float32', [rows]);
  const t = (given.t as Tensor<'float32'>).storage;
  for (let i = 0; i < rows; i++) {
    if (!((t[i] as number) > 0 && (t[i] as number) <= 1))
      throw new RangeError(`t must be in (0, 1], got ${t[i]} at ${i}`);
  }
  const advantages = (given.advantages as Tensor<'float32'>).storage;
  checkFinite('advantages', advantages);
  const x0 = (given.x0 as Tensor<'float32'>).storage;
  const eps = (given.eps as Tensor<'float32'>).storage;
  // The target velocity ε − x0 in float32, as the trainer's interpolation computes it.
  const target = Float32Array.from(x0, (x, i) => (eps[i] as number) - x);
  const r = native().awmLoss(
    vTheta.storage as Float32Array,
    vRef,
    vEma,
    target,
    t,
    advantages,
    shape[1] as number,
    params,
  );
  return { ...r, grad: Tensor.from(r.grad, shape) };
}
