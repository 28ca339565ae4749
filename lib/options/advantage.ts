// The options of group advantages and of DiffusionNFT's optimality probability (lib/rl/advantage.ts).
import type { Rule } from './schema.js';

/** Options of groupAdvantages and optimalityProbability. */
export interface OptimalityOptions {
  /** Advantages are clipped to ±advClipMax, and r = 1/2 + A_c/(2·advClipMax) (default 5, as the codes). */
  advClipMax?: number;
  /** Normaliser: the standard deviation of all rewards ('global', the codes' default) or of each group ('group'). */
  std?: 'global' | 'group';
  /** Added to the standard deviation (default 1e-4, as the codes). */
  eps?: number;
}

/** The clip of advantages; the NFT loss's scale C uses the same bound. */
export const ADV_CLIP_MAX = { type: 'number', min: 1e-6, max: 1e6, default: 5 } as const satisfies Rule;

/** The advantages' option table. */
export const ADVANTAGE_SCHEMA = {
  advClipMax: ADV_CLIP_MAX,
  std: { type: 'enum', values: ['global', 'group'], default: 'global' },
  eps: { type: 'number', min: 0, max: 1e6, default: 1e-4 },
} as const satisfies Record<keyof OptimalityOptions, Rule>;
