// MixGRPO (docs/algorithms.md §9.3): an ODE rollout with a sliding window of SDE steps that advances every few epochs,
// the group sharing its initial noise, trained on the window's transitions; MixGRPO-Flash solves the rest of the
// trajectory after the window with DPM-Solver++(2M) on a compressed grid. On the likelihood methods' trainer
// (lib/training/likelihood.ts).

import { SAMPLE_STREAM } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import type { VelocityNet } from '../model/net.js';
import { type Rule, resolveOptions, withDefaults } from '../options/schema.js';
import type { Prompt } from './common.js';
import {
  LIKELIHOOD_SCHEMA,
  type LikelihoodEpochStats,
  type LikelihoodOptions,
  LikelihoodTrainer,
  type RolloutPlan,
} from './likelihood.js';
import { OnlineTrainer } from './online.js';
import type { ResumePlacement } from './online-options.js';

/** Options of MixGRPO: the official FLUX script's defaults (`finetune_flux_grpo_MixGRPO.sh`). */
export interface MixGRPOOptions<P extends Prompt = Prompt> extends LikelihoodOptions<P> {
  /** SDE steps w of the window (4). */
  sdeWindowSize?: number;
  /** Epochs τ the window stays at one position (25; the Flash scripts use 20). */
  windowShiftEvery?: number;
  /** Steps s the window moves by at each shift (1; Flash* 0, a frozen window). */
  windowStride?: number;
  /** Every member of a group starts from the same initial noise (true, the code's `--init_same_noise`). */
  sameNoise?: boolean;
  /**
   * MixGRPO-Flash: the ratio r of the steps after the window kept, re-gridded and solved with DPM-Solver++(2M)
   * (0: off, an Euler ODE on the rollout grid; the Flash script's 0.4, Flash*'s 0.2). Needs the uniform grid schedule.
   */
  flashCompression?: number;
}

/** Statistics of a MixGRPO epoch. */
export interface MixEpochStats extends LikelihoodEpochStats {
  /** The first step of the epoch's SDE window. */
  windowStart: number;
  /** Steps of the epoch's rollouts (fewer than N with Flash). */
  rolloutSteps: number;
}

const MIX_SCHEMA = {
  ...withDefaults(LIKELIHOOD_SCHEMA, { clipRange: 1e-4, klCoef: 0, std: 'group', optimizerSteps: 4 }),
  sdeWindowSize: { type: 'int', min: 1, max: 10000, default: 4 },
  windowShiftEvery: { type: 'int', min: 1, max: 1e9, default: 25 },
  windowStride: { type: 'int', min: 0, max: 10000, default: 1 },
  sameNoise: { type: 'boolean', default: true },
  flashCompression: { type: 'number', min: 0, max: 1, default: 0 },
} as const satisfies Record<keyof MixGRPOOptions, Rule>;

/**
 * The SDE window [lo, hi) of epoch k on N steps: lo = ⌊k/τ⌋·s, hi = min(lo + w, N − 2), the start rolled back to
 * the beginning once it reaches N − 2 (the code's `max_timesteps`; lo is taken modulo N − 2, so the window is never
 * empty, where the code's can be at lo = N − 2).
 */
export function mixWindow(epoch: number, N: number, size: number, every: number, stride: number): [number, number] {
  const last = Math.max(1, N - 2);
  const lo = (Math.floor(epoch / every) * stride) % last;
  return [lo, Math.min(lo + size, last)];
}

/**
 * MixGRPO-Flash's rollout grid: the grid up to the window's end t_hi, then n = max(2, ⌊(N − hi + 1)·r⌋) points
 * shift(linspace(u_hi, 0, n)) with u the unshifted uniform times (the code's `max(…, 1)` points, at least 2 here so
 * the tail reaches t = 0).
 */
export function flashGrid(grid: ArrayLike<number>, hi: number, ratio: number, shift: number): Float64Array {
  const N = grid.length - 1;
  const n = Math.max(2, Math.floor((N - (hi - 1)) * ratio));
  const u = 1 - hi / N;
  const sigma = (s: number) => (shift * s) / (1 + (shift - 1) * s);
  const out = new Float64Array(hi + n);
  for (let k = 0; k <= hi; k++) out[k] = grid[k] as number;
  for (let j = 1; j < n; j++) out[hi + j] = j === n - 1 ? 0 : sigma(u - (u * j) / (n - 1));
  return out;
}

/** MixGRPO on a VelocityNet, with FlowGRPO's contract. */
export class MixGRPO<P extends Prompt = Prompt> extends LikelihoodTrainer<P, MixEpochStats> {
  readonly #window: { size: number; every: number; stride: number };
  readonly #sameNoise: boolean;
  readonly #flash: { ratio: number; shift: number } | undefined;

  constructor(net: VelocityNet, options: MixGRPOOptions<P>) {
    const opts = resolveOptions('options', options, MIX_SCHEMA);
    if (opts.steps < 3) throw new RangeError('options.steps must be at least 3: the window lies before the last 2');
    if (opts.flashCompression > 0 && opts.gridSchedule !== 'uniform') {
      throw new RangeError("options.flashCompression needs gridSchedule 'uniform': Flash re-grids its shifted times");
    }
    super(net, opts, false);
    this.#window = { size: opts.sdeWindowSize, every: opts.windowShiftEvery, stride: opts.windowStride };
    this.#sameNoise = opts.sameNoise;
    this.#flash = opts.flashCompression > 0 ? { ratio: opts.flashCompression, shift: opts.shift ?? 1 } : undefined;
    this.startLikelihoodPhase();
  }

  /** Continues a run saved by `run({ checkpoint })` or `save()` on the device `placement` names (DiffusionNFT.resume). */
  static async resume<P extends Prompt>(
    path: string,
    options: MixGRPOOptions<P>,
    placement?: ResumePlacement,
  ): Promise<MixGRPO<P>> {
    return OnlineTrainer.resumeWith<P, MixEpochStats, MixGRPO<P>>(
      'MixGRPO.resume',
      path,
      placement,
      (net) => new MixGRPO<P>(net, options),
    );
  }

  protected override fingerprint(): Record<string, unknown> {
    return { ...super.fingerprint(), window: this.#window, sameNoise: this.#sameNoise, flash: this.#flash };
  }

  protected override plan(): RolloutPlan {
    const grid = this.common.grid;
    const { size, every, stride } = this.#window;
    const window = mixWindow(this.epochCount, grid.length - 1, size, every, stride);
    if (this.#flash === undefined) return { grid, window, tail: 'euler' };
    return { grid: flashGrid(grid, window[1], this.#flash.ratio, this.#flash.shift), window, tail: 'dpm2' };
  }

  protected override initialNoise(rows: number, firstSample: number): Tensor | undefined {
    if (!this.#sameNoise) return undefined;
    // Each member takes the noise its group's first sample would draw (groups are consecutive samples).
    const D = this.net.config.dataDim;
    const { groupSize, seed } = this.common;
    const perEpoch = this.common.groups * groupSize;
    const noise = new Float32Array(rows * D);
    for (let r = 0; r < rows; r++) {
      const sample = firstSample + r;
      const leader = sample - ((sample % perEpoch) % groupSize);
      noise.set(Tensor.randn([D], { seed, stream: SAMPLE_STREAM, offset: leader * D }).storage, r * D);
    }
    return Tensor.from(noise, [rows, D]);
  }

  protected override methodStats(plans: readonly RolloutPlan[]): Record<string, number> {
    const plan = plans[0] as RolloutPlan;
    return { windowStart: plan.window[0], rolloutSteps: plan.grid.length - 1 };
  }
}
