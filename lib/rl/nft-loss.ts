// The NFT loss of DiffusionNFT with its gradient (docs/algorithms.md §2.3), exposed for verification and for
// pipelines of one's own; the optimality probability r it takes comes from lib/rl/advantage.ts.
import { checkFinite, checkTensor } from '../core/checks.js';
import { native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import { NFT_LOSS_SCHEMA, type NftLossOptions } from '../options/nft-loss.js';
import { objectOption, rejectUnknown, resolveOptions } from '../options/schema.js';

/** The inputs of nftLoss: rows (B, D) of velocities, the clean samples and their noise, times and r (B). */
export interface NftLossInputs {
  /** The trained network's velocity at the noised samples x_t (B, D). */
  vTheta: Tensor;
  /** The rollout policy θ_old's velocity there (B, D). */
  vOld: Tensor;
  /** The reference policy's velocity, for the KL term. */
  vRef?: Tensor;
  /** The clean samples (B, D). */
  x0: Tensor;
  /** The noise that made x_t = (1 − t)·x0 + t·ε (B, D). */
  eps: Tensor;
  /** Times in (0, 1]. */
  t: Tensor;
  /** Optimality probabilities in [0, 1]. */
  r: Tensor;
}

/**
 * The DiffusionNFT loss of docs/algorithms.md §2.3 as the trainer computes it, in one native pass: with v = ε − x0,
 * v± the implicit policies, the adaptive (or plain) weighting, the advClipMax/β scaling and the mean over the
 * batch. Returns the loss and its gradient with respect to vTheta.
 */
export function nftLoss(
  inputs: NftLossInputs,
  options: NftLossOptions = {},
): {
  /** The loss, the mean over the batch. */
  loss: number;
  /** Its gradient with respect to vTheta (B, D). */
  grad: Tensor;
} {
  const given = objectOption('nftLoss inputs', inputs);
  rejectUnknown('nftLoss inputs', given, ['vTheta', 'vOld', 'vRef', 'x0', 'eps', 't', 'r']);
  const params = resolveOptions('nftLoss options', options, NFT_LOSS_SCHEMA);
  const vTheta = given.vTheta as Tensor;
  if (!(vTheta instanceof Tensor) || vTheta.shape.length !== 2) {
    throw new TypeError('vTheta must be a float32 Tensor of shape [B, D]');
  }
  const shape = vTheta.shape;
  const rows = shape[0] as number;
  for (const name of ['vTheta', 'vOld', 'x0', 'eps'] as const) {
    checkTensor(name, given[name], 'float32', shape);
    checkFinite(name, (given[name] as Tensor<'float32'>).storage);
  }
  if (given.vRef !== undefined) {
    checkTensor('vRef', given.vRef, 'float32', shape);
    checkFinite('vRef', (given.vRef as Tensor<'float32'>).storage);
  } else if (params.klCoef > 0) {
    throw new TypeError('nftLoss: vRef is required when klCoef > 0');
  }
  checkTensor('t', given.t, 'float32', [rows]);
  checkTensor('r', given.r, 'float32', [rows]);
  const t = (given.t as Tensor<'float32'>).storage;
  const r = (given.r as Tensor<'float32'>).storage;
  for (let i = 0; i < rows; i++) {
    if (!((t[i] as number) > 0 && (t[i] as number) <= 1))
      throw new RangeError(`t must be in (0, 1], got ${t[i]} at ${i}`);
    if (!((r[i] as number) >= 0 && (r[i] as number) <= 1))
      throw new RangeError(`r must be in [0, 1], got ${r[i]} at ${i}`);
  }
  // The target velocity ε − x0 in float32, as the trainer's interpolation computes it.
  const x0 = (given.x0 as Tensor<'float32'>).storage;
  const eps = (given.eps as Tensor<'float32'>).storage;
  const target = new Float32Array(x0.length);
  for (let i = 0; i < target.length; i++) target[i] = (eps[i] as number) - (x0[i] as number);
  const result = native().nftLoss(
    vTheta.storage as Float32Array,
    (given.vOld as Tensor<'float32'>).storage,
    given.vRef === undefined ? null : (given.vRef as Tensor<'float32'>).storage,
    target,
    t,
    r,
    shape[1] as number,
    params,
  );
  return { loss: result.loss, grad: Tensor.from(result.grad, shape) };
}
