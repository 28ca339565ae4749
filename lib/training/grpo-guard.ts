// GRPO-Guard (docs/algorithms.md §9.4): FlowGRPO's rollout storing each step's mean, trained with the RatioNorm ratio
// and each transition weighted by 1/|dt|, on the likelihood methods' trainer (lib/training/likelihood.ts).

import type { VelocityNet } from '../model/net.js';
import { type Rule, resolveOptions, withDefaults } from '../options/schema.js';
import type { Prompt } from './common.js';
import {
  LIKELIHOOD_SCHEMA,
  type LikelihoodEpochStats,
  type LikelihoodOptions,
  LikelihoodTrainer,
  leadingTransitions,
  type RolloutPlan,
  TRAIN_FRACTION,
  wholeGrid,
} from './likelihood.js';
import { OnlineTrainer } from './online.js';
import type { ResumePlacement } from './online-options.js';

/**
 * Options of GRPO-Guard: the fork's `geneval_sd3_rationorm` defaults (ε = 2e-6, per-group std, lr 1e-4, no KL). Its
 * step is FlowGRPO's SDE (`sde: 'cps'` is rejected) and it has no KL term.
 */
export interface GRPOGuardOptions<P extends Prompt = Prompt> extends LikelihoodOptions<P> {
  /** Fraction of the N transitions trained, the first ones in order (0.99: 9 of 10). */
  trainFraction?: number;
}

const GUARD_SCHEMA = {
  ...withDefaults(LIKELIHOOD_SCHEMA, { clipRange: 2e-6, klCoef: 0, std: 'group', lr: 1e-4 }),
  trainFraction: TRAIN_FRACTION,
} as const satisfies Record<keyof GRPOGuardOptions, Rule>;

/** GRPO-Guard on a VelocityNet, with FlowGRPO's contract; its ratio statistics are of the normalised ratio. */
export class GRPOGuard<P extends Prompt = Prompt> extends LikelihoodTrainer<P, LikelihoodEpochStats> {
  readonly #trained: [number, number];

  constructor(net: VelocityNet, options: GRPOGuardOptions<P>) {
    const opts = resolveOptions('options', options, GUARD_SCHEMA);
    super(net, opts, true);
    this.#trained = leadingTransitions(this.common.grid.length - 1, opts.trainFraction);
  }

  /** Continues a run saved by `run({ checkpoint })` or `save()` on the device `placement` names (DiffusionNFT.resume). */
  static async resume<P extends Prompt>(
    path: string,
    options: GRPOGuardOptions<P>,
    placement?: ResumePlacement,
  ): Promise<GRPOGuard<P>> {
    return OnlineTrainer.resumeWith<P, LikelihoodEpochStats, GRPOGuard<P>>(
      'GRPOGuard.resume',
      path,
      placement,
      (net) => new GRPOGuard<P>(net, options),
    );
  }

  protected override fingerprint(): Record<string, unknown> {
    const { native, ...rest } = super.fingerprint();
    return { ...rest, native: { ...(native as object), trainSteps: this.#trained[1] } };
  }

  protected override plan(): RolloutPlan {
    return wholeGrid(this.common.grid);
  }

  protected override trained(): [number, number] {
    return this.#trained;
  }
}
