// FlowGRPO (docs/algorithms.md §3 and §4.2), the baseline: the SDE (or, with `sde: 'cps'`, CPS) over the whole grid,
// trained on the first ⌊0.99·N⌋ transitions, on the likelihood methods' trainer (lib/training/likelihood.ts).

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

/** Options of a FlowGRPO trainer: the official code's defaults, except where a comment says why not. */
export interface FlowGRPOOptions<P extends Prompt = Prompt> extends LikelihoodOptions<P> {
  /** Fraction of the N transitions trained, the first ones in order (0.99: 9 of 10). */
  trainFraction?: number;
}

/** Statistics of a FlowGRPO epoch. */
export type GrpoEpochStats = LikelihoodEpochStats;

/** The option table of FlowGRPO: the trainer runs the code's KL coefficient 0.04, where grpoLoss alone has none. */
const GRPO_SCHEMA = {
  ...withDefaults(LIKELIHOOD_SCHEMA, { klCoef: 0.04 }),
  trainFraction: TRAIN_FRACTION,
} as const satisfies Record<keyof FlowGRPOOptions, Rule>;

/**
 * FlowGRPO (Liu et al., 2025) on a VelocityNet, behind the same epoch()/run()/evaluate()/save()/resume() contract as
 * DiffusionNFT.
 */
export class FlowGRPO<P extends Prompt = Prompt> extends LikelihoodTrainer<P, GrpoEpochStats> {
  readonly #trained: [number, number];

  constructor(net: VelocityNet, options: FlowGRPOOptions<P>) {
    const opts = resolveOptions('options', options, GRPO_SCHEMA);
    super(net, opts, false);
    this.#trained = leadingTransitions(this.common.grid.length - 1, opts.trainFraction);
  }

  /** Continues a run saved by `run({ checkpoint })` or `save()` on the device `placement` names (DiffusionNFT.resume). */
  static async resume<P extends Prompt>(
    path: string,
    options: FlowGRPOOptions<P>,
    placement?: ResumePlacement,
  ): Promise<FlowGRPO<P>> {
    return OnlineTrainer.resumeWith<P, GrpoEpochStats, FlowGRPO<P>>(
      'FlowGRPO.resume',
      path,
      placement,
      (net) => new FlowGRPO<P>(net, options),
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
