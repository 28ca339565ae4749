// The options of DiffusionNFT's loss (lib/rl/nft-loss.ts), which its trainer takes too.
import { ADV_CLIP_MAX } from './advantage.js';
import type { Rule } from './schema.js';

/** Options of the NFT loss (docs/algorithms.md §2.3; defaults as the official code). */
export interface NftLossOptions {
  /** Guidance strength β of the implicit policies (1; the code uses 0.1 for OCR and multi-reward). */
  beta?: number;
  /** The loss is scaled by advClipMax/β (5). */
  advClipMax?: number;
  /** The x0-space adaptive weighting (true, the code's) or the plain velocity MSE of the paper's Eq. 5 (false). */
  adaptive?: boolean;
  /** Ablation: keep only the positive term r·L+ (false). The paper reports that this collapses. */
  positiveOnly?: boolean;
  /** Weight of the KL-like term mean (v_θ − v_ref)² (0 here; the code runs 1e-4). Needs vRef. */
  klCoef?: number;
}

/** The NFT loss's option table. */
export const NFT_LOSS_SCHEMA = {
  beta: { type: 'number', min: 1e-6, max: 1e6, default: 1 },
  advClipMax: ADV_CLIP_MAX,
  adaptive: { type: 'boolean', default: true },
  positiveOnly: { type: 'boolean', default: false },
  klCoef: { type: 'number', min: 0, max: 1e6, default: 0 },
} as const satisfies Record<keyof NftLossOptions, Rule>;
