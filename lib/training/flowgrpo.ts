// FlowGRPO (docs/algorithms.md §3 and §4.2), the baseline: the SDE (or, with `sde: 'cps'`, CPS) over the whole grid,
// trained on the first ⌊0.99·N⌋ transitions, on the likelihood methods' trainer (lib/training/likelihood.ts).

import type { VelocityNet } from '../model/net.js';
import { type Rule, resolveOptions, withDefaults } from '../options/schema.js';
import type { Prompt } from './common.js';
import {
  LIKELIHOOD_SCHEMA,
  type LikelihoodEpochStats,
  WHOLE_GRID_RULES,
  type WholeGridOptions,
  WholeGridTrainer,
} from './likelihood.js';
import { OnlineTrainer } from './online.js';
import type { ResumePlacement } from './online-options.js';

/** Options of a FlowGRPO trainer: the official code's defaults, except where a comment says why not. */
export interface FlowGRPOOptions<P extends Prompt = Prompt> extends WholeGridOptions<P> {}

/** Statistics of a FlowGRPO epoch. */
export type GrpoEpochStats = LikelihoodEpochStats;

/** The option table of FlowGRPO: the trainer runs the code's KL coefficient 0.04, where grpoLoss alone has none. */
const GRPO_SCHEMA = {
  ...withDefaults(LIKELIHOOD_SCHEMA, { klCoef: 0.04 }),
  ...WHOLE_GRID_RULES,
} as const satisfies Record<keyof FlowGRPOOptions, Rule>;

/**
 * FlowGRPO (Liu et al., 2025) on a VelocityNet, behind the same epoch()/run()/evaluate()/save()/resume() contract as
 * DiffusionNFT.
 */
export class FlowGRPO<P extends Prompt = Prompt> extends WholeGridTrainer<P> {
  constructor(net: VelocityNet, options: FlowGRPOOptions<P>) {
    super(net, resolveOptions('options', options, GRPO_SCHEMA), false);
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
}
