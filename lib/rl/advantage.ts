// Group advantages, the one normalisation of rewards both trainers use (docs/algorithms.md §2.2, §3.3), and
// DiffusionNFT's optimality probability on top of them.
import { ADVANTAGE_SCHEMA, type OptimalityOptions } from '../options/advantage.js';
import { resolveOptions } from '../options/schema.js';

/**
 * Group advantages as the official codes compute them: A = (R − mean of the sample's group) / (std + eps), with the
 * population standard deviation (numpy's default, ddof 0), and A_c = clip(A, ±advClipMax). A group whose rewards
 * are all equal, or of one sample, gets A = 0.
 */
export function groupAdvantages(
  rewards: ArrayLike<number>,
  groupIds: ArrayLike<number | string>,
  options: OptimalityOptions = {},
): { advantages: Float64Array; clipped: Float64Array } {
  const { advClipMax: clip, eps, std: mode } = resolveOptions('advantage options', options, ADVANTAGE_SCHEMA);
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
  const clipped = new Float64Array(n);
  for (const members of groups.values()) {
    const group = stats(members);
    const std = mode === 'global' ? globalStd : group.std;
    for (const i of members) {
      const a = ((rewards[i] as number) - group.mean) / (std + eps);
      advantages[i] = a;
      clipped[i] = Math.min(clip, Math.max(-clip, a));
    }
  }
  return { advantages, clipped };
}

/**
 * Rewards → optimality probabilities, exactly as the official code (docs/algorithms.md §2.2): the group advantages
 * A and their clip A_c (groupAdvantages), then r = clip(A_c/advClipMax/2 + 1/2, 0, 1). Returns r and the unclipped A.
 */
export function optimalityProbability(
  rewards: ArrayLike<number>,
  groupIds: ArrayLike<number | string>,
  options: OptimalityOptions = {},
): {
  /** The optimality probability of each sample, in [0, 1]. */
  r: Float32Array;
  /** Each sample's group advantage A, before the clip. */
  advantages: Float64Array;
} {
  const clip = resolveOptions('optimalityProbability options', options, ADVANTAGE_SCHEMA).advClipMax;
  const { advantages, clipped } = groupAdvantages(rewards, groupIds, options);
  const r = new Float32Array(clipped.length);
  for (let i = 0; i < r.length; i++) r[i] = Math.min(1, Math.max(0, (clipped[i] as number) / clip / 2 + 0.5));
  return { r, advantages };
}
