import { CONFIG_SMALL, type NetConfig } from '../config.js';
import { Tensor } from '../tensor.js';

/** Number of mixture components. */
export const MODES = 8;
/** Radius of the circle the mode centres sit on. */
export const RADIUS = 2;
/** Standard deviation of each component. */
export const MODE_STD = 0.1;
/** Network config for this task: the small preset (D = 2, one condition slot). */
export const config: Readonly<NetConfig> = CONFIG_SMALL;

// Streams of the task's own draws (any user stream ≥ 16 works; these keep them apart).
const MODE_STREAM = 100;
const POINT_STREAM = 101;

/** Centre (x, y) of mode k (0-based). */
export function center(mode: number): [number, number] {
  const angle = (2 * Math.PI * mode) / MODES;
  return [RADIUS * Math.cos(angle), RADIUS * Math.sin(angle)];
}

/** Condition token of mode k: k + 1 (token 0 is the null condition). */
export function modeToken(mode: number): number {
  return mode + 1;
}

/**
 * A batch of the 2-D 8-Gaussian mixture conditioned on the mode: x0 (B, 2) and cond (B, 1) = mode + 1.
 * Batch `index` of a seed is always the same data.
 */
export function batch(
  size: number,
  seed: number,
  index: number,
): { x0: Tensor; cond: Tensor<'int32'>; modes: Int32Array } {
  const offset = index * size * 2;
  const u = Tensor.rand([size], { seed, stream: MODE_STREAM, offset: index * size });
  const z = Tensor.randn([size, 2], { seed, stream: POINT_STREAM, offset });
  const modes = new Int32Array(size);
  const x = z.storage;
  for (let b = 0; b < size; b++) {
    const mode = Math.min(MODES - 1, Math.floor((u.storage[b] as number) * MODES));
    modes[b] = mode;
    const [cx, cy] = center(mode);
    x[2 * b] = cx + MODE_STD * (x[2 * b] as number);
    x[2 * b + 1] = cy + MODE_STD * (x[2 * b + 1] as number);
  }
  u.dispose();
  return { x0: z, cond: Tensor.fromInt32(modes.map(modeToken), [size, 1]), modes };
}

/** Summary of generated samples against the modes they were asked for. */
export interface Toy2dScore {
  /** Fraction of samples closer to their requested centre than to any other. */
  modeAccuracy: number;
  /** Mean distance to the requested centre (ideal: about MODE_STD·√(π/2) ≈ 0.125). */
  meanDistance: number;
  /** Fraction within 3 standard deviations (ideal about 0.99). */
  within3Std: number;
}

/** Scores samples (B, 2) generated for the given modes. */
export function score(samples: Float32Array, modes: Int32Array): Toy2dScore {
  let correct = 0;
  let distance = 0;
  let within = 0;
  for (let b = 0; b < modes.length; b++) {
    const x = samples[2 * b] as number;
    const y = samples[2 * b + 1] as number;
    let best = 0;
    let bestDist = Number.POSITIVE_INFINITY;
    for (let k = 0; k < MODES; k++) {
      const [cx, cy] = center(k);
      const d = Math.hypot(x - cx, y - cy);
      if (d < bestDist) {
        bestDist = d;
        best = k;
      }
    }
    const [cx, cy] = center(modes[b] as number);
    const d = Math.hypot(x - cx, y - cy);
    if (best === modes[b]) correct++;
    if (d < 3 * MODE_STD) within++;
    distance += d;
  }
  const n = Math.max(1, modes.length);
  return { modeAccuracy: correct / n, meanDistance: distance / n, within3Std: within / n };
}

/** Condition tokens (B, 1) asking for the given modes. */
export function conditions(modes: Int32Array): Tensor<'int32'> {
  return Tensor.fromInt32(modes.map(modeToken), [modes.length, 1]);
}
