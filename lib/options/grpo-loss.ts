// The options of FlowGRPO's loss (lib/rl/grpo-loss.ts), which its trainer takes too.
import type { Rule } from './schema.js';

/** Options of the GRPO loss (docs/algorithms.md §3.4; defaults as the official code). */
export interface GrpoLossOptions {
  /** PPO clip range ε on the ratio of mean-over-dimension likelihoods (1e-4, the code's, for 65536-dim latents). */
  clipRange?: number;
  /** β_KL of mean_dims (mean_θ − mean_ref)²/(2σ_t²) (0.04 in the code for GenEval). Needs vRef. */
  klCoef?: number;
  /** Sum the per-dimension log-probabilities instead of averaging them (false). */
  logpSum?: boolean;
}

/** The GRPO loss's option table. */
export const GRPO_LOSS_SCHEMA = {
  clipRange: { type: 'number', min: 0, max: 1e6, default: 1e-4 },
  klCoef: { type: 'number', min: 0, max: 1e6, default: 0 },
  logpSum: { type: 'boolean', default: false },
} as const satisfies Record<keyof GrpoLossOptions, Rule>;
