// The DGPO loss with its gradient (docs/algorithms.md §8.2), exposed for verification and for pipelines of one's own.
import { checkFinite, checkTensor } from '../core/checks.js';
import { type DgpoStatistics, native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import { DGPO_LOSS_SCHEMA, type DgpoLossOptions } from '../options/dgpo-loss.js';
import { objectOption, rejectUnknown, resolveOptions } from '../options/schema.js';

/**
 * The inputs of dgpoLoss: B samples, each at the same M times, as rows (B·M, D) ordered sample by sample (row i is
 * sample ⌊i/M⌋ at time i mod M); every member of a group is present, and groups have equal sizes.
 */
export interface DgpoLossInputs {
  /** The trained network's velocity at the noised rows (B·M, D). */
  vTheta: Tensor;
  /** The base's velocity there (needed unless emaRef is set and klCoef is 0). */
  vRef?: Tensor;
  /** The fast EMA θ_old's velocity there (B·M, D). */
  vOld: Tensor;
  /** The target velocities ε − x0 of the rows (B·M, D). */
  target: Tensor;
  /** Advantages (B), clipped as the trainer does. */
  advantages: Tensor;
  /** Group of each sample (B), int32 ids from 0. */
  groupIds: Tensor<'int32'>;
}

/**
 * The DGPO loss of docs/algorithms.md §8.2: the group weights σ(S_g) per (group, time) with S_g = (β_dpo/G)·Σ A·(l −
 * l_ref), the clip on exp(l_old − l), mean σ(S_g)·A·l over the rows plus klCoef·mean (v_θ − v_ref)². Returns the
 * loss, its gradient with respect to vTheta, the fraction of clipped rows and the mean group weight.
 */
export function dgpoLoss(
  inputs: DgpoLossInputs,
  options: DgpoLossOptions = {},
): { loss: number; grad: Tensor } & DgpoStatistics {
  const given = objectOption('dgpoLoss inputs', inputs);
  rejectUnknown('dgpoLoss inputs', given, ['vTheta', 'vRef', 'vOld', 'target', 'advantages', 'groupIds']);
  const params = resolveOptions('dgpoLoss options', options, DGPO_LOSS_SCHEMA);
  const vTheta = given.vTheta as Tensor;
  if (!(vTheta instanceof Tensor) || vTheta.shape.length !== 2) {
    throw new TypeError('vTheta must be a float32 Tensor of shape [B·M, D]');
  }
  const shape = vTheta.shape;
  const advantages = given.advantages as Tensor;
  if (!(advantages instanceof Tensor) || advantages.shape.length !== 1) {
    throw new TypeError('advantages must be a float32 Tensor of shape [B]');
  }
  const B = advantages.shape[0] as number;
  const M = (shape[0] as number) / B;
  if (!Number.isInteger(M) || M < 1)
    throw new RangeError(`vTheta has ${shape[0]} rows: not a multiple of ${B} samples`);
  checkTensor('advantages', advantages, 'float32', [B]);
  checkFinite('advantages', advantages.storage as Float32Array);
  checkTensor('groupIds', given.groupIds, 'int32', [B]);
  const groupIds = (given.groupIds as Tensor<'int32'>).storage;
  const sizes = new Map<number, number>();
  for (const g of groupIds) {
    if (g < 0) throw new RangeError(`group ids must not be negative, got ${g}`);
    sizes.set(g, (sizes.get(g) ?? 0) + 1);
  }
  const groupSize = sizes.values().next().value as number;
  if ([...sizes.values()].some((n) => n !== groupSize)) throw new RangeError('every group must have the same size');
  const rowsOf = (name: string, needed: boolean): Float32Array | null => {
    if (given[name] === undefined) {
      if (needed) throw new TypeError(`dgpoLoss: ${name} is required by the options`);
      return null;
    }
    checkTensor(name, given[name], 'float32', shape);
    const storage = (given[name] as Tensor<'float32'>).storage;
    checkFinite(name, storage);
    return storage;
  };
  rowsOf('vTheta', true);
  const vRef = rowsOf('vRef', params.klCoef > 0 || !params.emaRef);
  const vOld = rowsOf('vOld', true) as Float32Array;
  const target = rowsOf('target', true) as Float32Array;
  const r = native().dgpoLoss(
    vTheta.storage as Float32Array,
    vRef,
    vOld,
    target,
    advantages.storage as Float32Array,
    groupIds,
    M,
    shape[1] as number,
    { ...params, groupSize },
  );
  return { ...r, grad: Tensor.from(r.grad, shape) };
}
