// GRPO-Guard (docs/algorithms.md §9.4): FlowGRPO's rollout storing each step's mean, trained with the RatioNorm ratio
// and each transition weighted by 1/|dt|, on the likelihood methods' trainer (lib/training/likelihood.ts).

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

/**
 * Options of GRPO-Guard: the fork's `geneval_sd3_rationorm` defaults (ε = 2e-6, per-group std, lr 1e-4, no KL). Its
 * step is FlowGRPO's SDE (`sde: 'cps'` is rejected) and it has no KL term.
 */
export interface GRPOGuardOptions<P extends Prompt = Prompt> extends WholeGridOptions<P> {}

const GUARD_SCHEMA = {
  ...withDefaults(LIKELIHOOD_SCHEMA, { clipRange: 2e-6, klCoef: 0, std: 'group', lr: 1e-4 }),
  ...WHOLE_GRID_RULES,
} as const satisfies Record<keyof GRPOGuardOptions, Rule>;

/** GRPO-Guard on a VelocityNet, with FlowGRPO's contract; its ratio statistics are of the normalised ratio. */
export class GRPOGuard<P extends Prompt = Prompt> extends WholeGridTrainer<P> {
  constructor(net: VelocityNet, options: GRPOGuardOptions<P>) {
    super(net, resolveOptions('options', options, GUARD_SCHEMA), true);
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
}
