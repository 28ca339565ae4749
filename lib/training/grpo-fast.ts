// Flow-GRPO-Fast (docs/algorithms.md §9.2): an ODE rollout with a random window of CPS steps, trained on the window's
// transitions only, on the likelihood methods' trainer (lib/training/likelihood.ts).

import { native } from '../core/native.js';
import { WINDOW_STREAM } from '../core/random.js';
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

/** Options of Flow-GRPO-Fast: flow_grpo's `geneval_sd3_fast_nocfg` defaults (CPS at a = 0.8, ε = 1e-5, no KL). */
export interface FlowGRPOFastOptions<P extends Prompt = Prompt> extends LikelihoodOptions<P> {
  /** Stochastic steps w of each rollout (3). */
  sdeWindowSize?: number;
  /** The window lies in the steps [lo, hi): its start is drawn from lo … hi − w (default [0, ⌊N/2⌋], the code's). */
  sdeWindowRange?: readonly [number, number];
}

/** Statistics of a Flow-GRPO-Fast epoch. */
export interface FastEpochStats extends LikelihoodEpochStats {
  /** Mean start step of the epoch's windows (one per prompt group). */
  windowStart: number;
}

const FAST_SCHEMA = {
  ...withDefaults(LIKELIHOOD_SCHEMA, { sde: 'cps', sdeA: 0.8, clipRange: 1e-5, klCoef: 0 }),
  sdeWindowSize: { type: 'int', min: 1, max: 10000, default: 3 },
  sdeWindowRange: { type: 'value' },
} as const satisfies Record<keyof FlowGRPOFastOptions, Rule>;

/** How the windows are drawn, as a checkpoint records it: one per prompt group of the run (fastWindowStart). */
const WINDOW_DRAW = 'per prompt group';

/**
 * The start step of the SDE window of the prompt group `group` of the run (epoch·groups + g): uniform over lo … hi − w,
 * drawn from the seed's window stream. The code draws one per sampling batch; one per group keeps a group's members on
 * one window and makes the draw independent of the chunk size and of the split over ranks.
 */
export function fastWindowStart(seed: number, group: number, size: number, range: readonly [number, number]) {
  const u = new Float32Array(1);
  native().randomFill(u, seed, WINDOW_STREAM, group, 'uniform');
  const choices = range[1] - size - range[0] + 1;
  return range[0] + Math.min(choices - 1, Math.floor((u[0] as number) * choices));
}

/** Flow-GRPO-Fast on a VelocityNet (flow_grpo's `train_sd3_fast.py`), with FlowGRPO's contract. */
export class FlowGRPOFast<P extends Prompt = Prompt> extends LikelihoodTrainer<P, FastEpochStats> {
  readonly #size: number;
  readonly #range: [number, number];

  constructor(net: VelocityNet, options: FlowGRPOFastOptions<P>) {
    const opts = resolveOptions('options', options, FAST_SCHEMA);
    const N = opts.steps;
    const range = (opts.sdeWindowRange ?? [0, Math.floor(N / 2)]) as readonly [number, number];
    const size = opts.sdeWindowSize;
    // The window never reaches the last step into t = 0, which is never trained (as FlowGRPO's).
    if (!(Array.isArray(range) && range.length === 2 && range.every(Number.isInteger))) {
      throw new TypeError('options.sdeWindowRange must be [lo, hi] step indices');
    }
    if (!(range[0] >= 0 && range[1] <= N - 1 && range[1] - range[0] >= size)) {
      throw new RangeError(
        `options.sdeWindowRange [${range}] must hold the window of ${size} steps within the steps 0 … ${N - 2}`,
      );
    }
    super(net, opts, false);
    this.#size = size;
    this.#range = [range[0], range[1]];
    this.startLikelihoodPhase();
  }

  /** Continues a run saved by `run({ checkpoint })` or `save()` on the device `placement` names (DiffusionNFT.resume). */
  static async resume<P extends Prompt>(
    path: string,
    options: FlowGRPOFastOptions<P>,
    placement?: ResumePlacement,
  ): Promise<FlowGRPOFast<P>> {
    return OnlineTrainer.resumeWith<P, FastEpochStats, FlowGRPOFast<P>>(
      'FlowGRPOFast.resume',
      path,
      placement,
      (net) => new FlowGRPOFast<P>(net, options),
    );
  }

  protected override fingerprint(): Record<string, unknown> {
    // The draw scheme is recorded with the window: a run whose windows were drawn per rollout chunk (before commit
    // 72889b7, never released) draws other windows, and resuming it here is refused naming window.draw.
    return { ...super.fingerprint(), window: { size: this.#size, range: this.#range, draw: WINDOW_DRAW } };
  }

  protected override plan(group: number): RolloutPlan {
    const start = fastWindowStart(this.common.seed, group, this.#size, this.#range);
    return { grid: this.common.grid, window: [start, start + this.#size], tail: 'euler' };
  }

  protected override methodStats(plans: readonly RolloutPlan[]): Record<string, number> {
    return { windowStart: plans.reduce((s, p) => s + p.window[0], 0) / plans.length };
  }
}
