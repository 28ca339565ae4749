// The pure pieces of DiffusionNFT, exposed for verification and for pipelines of one's own: rewards → optimality
// probability r (algorithms.md 2.2) and the fused NFT loss with its gradient (2.3).
import { checkFinite, checkTensor } from './checks.js';
import { native } from './native.js';
import { numberOption, objectOption, rejectUnknown } from './options.js';
import { Tensor } from './tensor.js';

/** Options of optimalityProbability. */
export interface OptimalityOptions {
  /** Advantages are clipped to ±advClipMax and r = 1/2 + A_c/(2·advClipMax) (default 5, as the code). */
  advClipMax?: number;
  /** Normaliser: the standard deviation of all rewards ('global', the code's default) or of each group ('group'). */
  std?: 'global' | 'group';
  /** Added to the standard deviation (default 1e-4, as the code). */
  eps?: number;
}

/**
 * Rewards → optimality probabilities, exactly as the official code (algorithms.md 2.2): A = (R − mean of the
 * sample's group) / (std + eps), with the population standard deviation (numpy's default, ddof 0); A_c = clip(A,
 * ±advClipMax); r = clip(A_c/advClipMax/2 + 1/2, 0, 1). A group whose rewards are all equal, or of one sample, gets
 * r = 1/2.
 */
export function optimalityProbability(
  rewards: ArrayLike<number>,
  groupIds: ArrayLike<number | string>,
  options: OptimalityOptions = {},
): { r: Float32Array; advantages: Float64Array } {
  const opts = objectOption('optimalityProbability options', options);
  rejectUnknown('optimalityProbability options', opts, ['advClipMax', 'std', 'eps']);
  const clip = numberOption('options', opts, 'advClipMax', { kind: 'number', min: 1e-6, max: 1e6 }, 5);
  const eps = numberOption('options', opts, 'eps', { kind: 'number', min: 0, max: 1e6 }, 1e-4);
  const mode = opts.std ?? 'global';
  if (mode !== 'global' && mode !== 'group') throw new RangeError(`options.std must be 'global' or 'group'`);
  const n = rewards?.length;
  if (typeof n !== 'number' || n === 0) throw new TypeError('rewards must be a non-empty array of numbers');
  if (groupIds?.length !== n) throw new RangeError(`groupIds has ${groupIds?.length} entries for ${n} rewards`);
  const groups = new Map<number | string, number[]>();
  for (let i = 0; i < n; i++) {
    const value = rewards[i] as number;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new RangeError(`rewards[${i}] is not a finite number (${value})`);
    }
    const id = groupIds[i] as number | string;
    if (!(typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)))) {
      throw new TypeError(`groupIds[${i}] must be a finite number or a string, got ${String(id)}`);
    }
    const members = groups.get(id);
    if (members === undefined) groups.set(id, [i]);
    else members.push(i);
  }
  const stats = (indices: readonly number[]) => {
    let mean = 0;
    for (const i of indices) mean += rewards[i] as number;
    mean /= indices.length;
    let sq = 0;
    for (const i of indices) sq += ((rewards[i] as number) - mean) ** 2;
    return { mean, std: Math.sqrt(sq / indices.length) };
  };
  const globalStd = stats(Array.from({ length: n }, (_, i) => i)).std;
  const advantages = new Float64Array(n);
  const r = new Float32Array(n);
  for (const members of groups.values()) {
    const group = stats(members);
    const std = mode === 'global' ? globalStd : group.std;
    for (const i of members) {
      const a = ((rewards[i] as number) - group.mean) / (std + eps);
      advantages[i] = a;
      const clipped = Math.min(clip, Math.max(-clip, a));
      r[i] = Math.min(1, Math.max(0, clipped / clip / 2 + 0.5));
    }
  }
  return { r, advantages };
}

/** Options of the NFT loss (algorithms.md 2.3; defaults as the official code). */
export interface NftLossOptions {
  /** Guidance strength β of the implicit policies (1; the code uses 0.1 for OCR and multi-reward). */
  beta?: number;
  /** The loss is scaled by advClipMax/β (5). */
  advClipMax?: number;
  /** The x0-space adaptive weighting (true, the code's) or the plain velocity MSE of the paper's Eq. 5 (false). */
  adaptive?: boolean;
  /** Ablation: keep only the positive term r·L+ (false). The paper reports that this collapses. */
  positiveOnly?: boolean;
  /** Weight of the KL-like term mean (v_θ − v_ref)² (0 here; the code runs 1e-4). Needs vRef. */
  klCoef?: number;
}

/** Checks NFT loss options; returns the fields of the native call. @internal */
export function resolveNftLoss(what: string, opts: Record<string, unknown>): Record<string, number | boolean> {
  const result: Record<string, number | boolean> = {
    beta: numberOption(what, opts, 'beta', { kind: 'number', min: 1e-6, max: 1e6 }, 1),
    advClipMax: numberOption(what, opts, 'advClipMax', { kind: 'number', min: 1e-6, max: 1e6 }, 5),
    klCoef: numberOption(what, opts, 'klCoef', { kind: 'number', min: 0, max: 1e6 }, 0),
  };
  for (const flag of ['adaptive', 'positiveOnly'] as const) {
    const value = opts[flag];
    if (value !== undefined && typeof value !== 'boolean') throw new TypeError(`${what}.${flag} must be a boolean`);
    result[flag] = value ?? flag === 'adaptive';
  }
  return result;
}

/** The inputs of nftLoss: rows (B, D) of velocities, the clean samples and their noise, times and r (B). */
export interface NftLossInputs {
  vTheta: Tensor;
  vOld: Tensor;
  /** The reference policy's velocity, for the KL term. */
  vRef?: Tensor;
  x0: Tensor;
  eps: Tensor;
  /** Times in (0, 1]. */
  t: Tensor;
  /** Optimality probabilities in [0, 1]. */
  r: Tensor;
}

/**
 * The DiffusionNFT loss of algorithms.md 2.3 as the trainer computes it, in one native pass: with v = ε − x0,
 * v± the implicit policies, the adaptive (or plain) weighting, the advClipMax/β scaling and the mean over the
 * batch. Returns the loss and its gradient with respect to vTheta.
 */
export function nftLoss(inputs: NftLossInputs, options: NftLossOptions = {}): { loss: number; grad: Tensor } {
  const given = objectOption('nftLoss inputs', inputs);
  rejectUnknown('nftLoss inputs', given, ['vTheta', 'vOld', 'vRef', 'x0', 'eps', 't', 'r']);
  const opts = objectOption('nftLoss options', options);
  rejectUnknown('nftLoss options', opts, ['beta', 'advClipMax', 'adaptive', 'positiveOnly', 'klCoef']);
  const params = resolveNftLoss('nftLoss options', opts);
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
  } else if ((params.klCoef as number) > 0) {
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
