// The options of DGPO's loss (lib/rl/dgpo-loss.ts), which its trainer takes too.
import type { Rule } from './schema.js';

/** Options of the DGPO loss (docs/algorithms.md §8.2; defaults as the official GenEval configuration). */
export interface DgpoLossOptions {
  /** β_dpo inside the group weight σ((β_dpo/G)·Σ A·(l − l_ref)) (100; PickScore 10). */
  betaDpo?: number;
  /** c of the clip on the ratio exp(l_old − l) (0.01; PickScore 0.05). */
  clipRange?: number;
  /** Weight of the KL to the base, mean (v_θ − v_ref)² (0.02, GenEval's and OCR's; PickScore 1e-3). */
  klCoef?: number;
  /** Compare with θ_old, the fast EMA, instead of the base inside the group weight (false; the code's mode 2b). */
  emaRef?: boolean;
}

/** The DGPO loss's option table. */
export const DGPO_LOSS_SCHEMA = {
  betaDpo: { type: 'number', min: 0, max: 1e9, default: 100 },
  clipRange: { type: 'number', min: 0, max: 1e6, default: 0.01 },
  klCoef: { type: 'number', min: 0, max: 1e6, default: 0.02 },
  emaRef: { type: 'boolean', default: false },
} as const satisfies Record<keyof DgpoLossOptions, Rule>;
