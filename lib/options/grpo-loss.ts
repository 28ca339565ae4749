// The options of the likelihood methods' loss (lib/rl/grpo-loss.ts), which their trainers take too.
import type { Rule } from './schema.js';

/** The stochastic step of the likelihood methods: FlowGRPO's SDE or CPS (docs/algorithms.md §9.1). */
export type SdeKind = 'flow-grpo' | 'cps';

/** The stochastic step, 'flow-grpo' (default) or 'cps', the coefficient-preserving step. */
export const SDE_KIND = {
  type: 'enum',
  values: ['flow-grpo', 'cps'] as SdeKind[],
  default: 'flow-grpo',
} as const satisfies Rule;

/** Options of the GRPO loss (docs/algorithms.md §3.4; defaults as the official code). */
export interface GrpoLossOptions {
  /** PPO clip range ε on the ratio of mean-over-dimension likelihoods (1e-4, the code's, for 65536-dim latents). */
  clipRange?: number;
  /** β_KL of mean_dims (mean_θ − mean_ref)²/(2σ_t²) (0.04 in the code for GenEval). Needs vRef. */
  klCoef?: number;
  /** Sum the per-dimension log-probabilities instead of averaging them (false). */
  logpSum?: boolean;
  /**
   * The rollout's stochastic step, whose log-probability the ratio compares: 'flow-grpo' (default) or 'cps', whose
   * log p = −mean_d (x' − mean)² drops every constant as the CPS code does (its clip ranges differ: docs/algorithms.md §9.1).
   */
  sde?: SdeKind;
}

/** The GRPO loss's option table. */
export const GRPO_LOSS_SCHEMA = {
  clipRange: { type: 'number', min: 0, max: 1e6, default: 1e-4 },
  klCoef: { type: 'number', min: 0, max: 1e6, default: 0 },
  logpSum: { type: 'boolean', default: false },
  sde: SDE_KIND,
} as const satisfies Record<keyof GrpoLossOptions, Rule>;
