/**
 * The `toy2d` task: a mixture of 8 Gaussians on a circle in 2-D, conditioned on the mode, with rewards for RL on it.
 * @module
 */
import { TOY2D_MODE_STREAM, TOY2D_POINT_STREAM } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import { CONFIG_SMALL, type NetConfig } from '../options/net-config.js';

/** Number of mixture components. */
export const MODES = 8;
/** Radius of the circle the mode centres sit on. */
export const RADIUS = 2;
/** Standard deviation of each component. */
export const MODE_STD = 0.1;
/** Network config for this task: the small preset (D = 2, one condition slot). */
export const config: Readonly<NetConfig> = CONFIG_SMALL;

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
): {
  /** The points (B, 2). */
  x0: Tensor;
  /** Their modes' condition tokens (B, 1). */
  cond: Tensor<'int32'>;
  /** Their modes, 0-based. */
  modes: Int32Array;
} {
  const offset = index * size * 2;
  const u = Tensor.rand([size], { seed, stream: TOY2D_MODE_STREAM, offset: index * size });
  const z = Tensor.randn([size, 2], { seed, stream: TOY2D_POINT_STREAM, offset });
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
    const [cx, cy] = center(modes[b] as number);
    const d = Math.hypot(x - cx, y - cy);
    if (nearestMode(x, y).mode === modes[b]) correct++;
    if (d < 3 * MODE_STD) within++;
    distance += d;
  }
  const n = Math.max(1, modes.length);
  return { modeAccuracy: correct / n, meanDistance: distance / n, within3Std: within / n };
}

/** A toy2d prompt: a mode, or `mode: null` for the null condition (the whole mixture, if trained with dropout). */
export interface Toy2dPrompt {
  /** The condition token: the mode's, or 0. */
  readonly tokens: readonly number[];
  /** 'mode k', or 'any mode'. */
  readonly text: string;
  /** The mode, 0-based, or null for the null condition. */
  readonly mode: number | null;
}

/** The prompts: 'any mode' (the null condition) and one per mode. */
export const prompts: readonly Toy2dPrompt[] = Object.freeze([
  { tokens: [0], text: 'any mode', mode: null },
  ...Array.from({ length: MODES }, (_, k) => ({ tokens: [modeToken(k)], text: `mode ${k}`, mode: k })),
]);

/** The colour of mode k: even modes are red, odd ones blue. */
export function colour(mode: number): 'red' | 'blue' {
  return mode % 2 === 0 ? 'red' : 'blue';
}

function nearestMode(x: number, y: number): { mode: number; distance: number } {
  let mode = 0;
  let distance = Number.POSITIVE_INFINITY;
  for (let k = 0; k < MODES; k++) {
    const [cx, cy] = center(k);
    const d = Math.hypot(x - cx, y - cy);
    if (d < distance) {
      distance = d;
      mode = k;
    }
  }
  return { mode, distance };
}

/** Rewards for RL on the mixture, each `(samples (n, 2), prompts) => number[]`. */
export const rewards = {
  /** Prefers the upper half-plane: tanh of the height. */
  upperHalf: (samples: Tensor): number[] =>
    Array.from({ length: samples.shape[0] as number }, (_, i) => Math.tanh(samples.storage[2 * i + 1] as number)),
  /** 1 for a sample on a red mode (within 3σ of its centre), else 0. */
  red: (samples: Tensor): number[] =>
    Array.from({ length: samples.shape[0] as number }, (_, i) => {
      const near = nearestMode(samples.storage[2 * i] as number, samples.storage[2 * i + 1] as number);
      return colour(near.mode) === 'red' && near.distance < 3 * MODE_STD ? 1 : 0;
    }),
  /** The reward of the point (tx, ty): the negative distance to it. */
  target:
    (tx: number, ty: number) =>
    (samples: Tensor): number[] =>
      Array.from(
        { length: samples.shape[0] as number },
        (_, i) => -Math.hypot((samples.storage[2 * i] as number) - tx, (samples.storage[2 * i + 1] as number) - ty),
      ),
};

/**
 * FlowGRPO settings for this task. The code's clip range ε = 1e-4 is tuned for the mean over 65536 latent
 * dimensions, whose per-step log-ratio barely moves; with D = 2 every stale transition leaves 1 ± 1e-4 and only the
 * on-policy half of an epoch trains, so a PPO-sized ε is used here. The rest are the code's defaults (lr 3e-4,
 * β_KL 0.04); a larger learning rate makes runs collapse onto zero reward on this task.
 */
export const flowGrpoDefaults = Object.freeze({
  /** FlowGRPO's clip range ε. */
  clipRange: 0.2,
});

/** Condition tokens (B, 1) asking for the given modes. */
export function conditions(modes: Int32Array): Tensor<'int32'> {
  return Tensor.fromInt32(modes.map(modeToken), [modes.length, 1]);
}
