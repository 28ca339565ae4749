// The options of AWM's loss (lib/rl/awm-loss.ts), which its trainer takes too.
import type { Rule } from './schema.js';

/** The per-sample weightings log q(l, t) of AWM's official `weighting` option (docs/algorithms.md §7.2). */
export const AWM_WEIGHTINGS = ['ghuber', 'uniform', 't', 't2', 'huber'] as const;

/** Options of the AWM loss (docs/algorithms.md §7.2; defaults as the official GenEval configuration). */
export interface AwmLossOptions {
  /**
   * The per-sample weighting log q of the flow-matching error l at time t: 'ghuber' −(t/p)((l + δ)^p − δ^p) (the
   * code's), 'uniform' −l, 't' −t·l, 't2' −t²·l, 'huber' −t(√(l + 1e-10) − 1e-5).
   */
  weighting?: (typeof AWM_WEIGHTINGS)[number];
  /** p of the 'ghuber' weighting (0.25). */
  ghuberPower?: number;
  /** Weight of the KL to the base, mean (v_θ − v_ref)² (1e-3, GenEval's; OCR 3e-3, PickScore 1e-4). */
  klCoef?: number;
  /** Weight of the KL to the EMA anchor, mean (v_θ − v_ema)² (1). */
  emaCoef?: number;
}

/** The AWM loss's option table. */
export const AWM_LOSS_SCHEMA = {
  weighting: { type: 'enum', values: AWM_WEIGHTINGS, default: 'ghuber' },
  ghuberPower: { type: 'number', min: 1e-6, max: 1, default: 0.25 },
  klCoef: { type: 'number', min: 0, max: 1e6, default: 1e-3 },
  emaCoef: { type: 'number', min: 0, max: 1e6, default: 1 },
} as const satisfies Record<keyof AwmLossOptions, Rule>;
