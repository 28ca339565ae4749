// Classifier-free guidance of the shapes jobs' evaluations and grids: the benchmark's "with CFG", its check and
// its label.
import { resolveOptions } from '../../options/schema.js';
import { ROLLOUT_RULES, resolveInterval } from '../../sampling/solvers.js';

/** Classifier-free guidance of an evaluation or a grid: the scale, and the times t it applies at (see `sample`). */
export interface Guidance {
  cfgScale?: number;
  cfgInterval?: readonly [number, number];
}

/**
 * The guidance the shapes benchmark reports as "with CFG": scale 5 at t ≤ 0.6 only. Plain CFG over the whole
 * trajectory erases lone objects (the null condition's average scene has more objects than "a triangle", so guiding
 * away from it at high noise empties the image); limited to t ≤ 0.6 it keeps them and raises the strict score
 * (docs/science.md, "The shipped base model").
 */
export const SHAPES_GUIDANCE = { cfgScale: 5, cfgInterval: [0, 0.6] } as const satisfies Guidance;

/** The table of Guidance (the interval is checked by checkGuidance). */
export const GUIDANCE_SCHEMA = { cfgScale: ROLLOUT_RULES.cfgScale, cfgInterval: { type: 'value' } } as const;

/** A guidance checked (scale as `sample` takes it, interval [lo, hi] within [0, 1]), with its defaults. */
export function checkGuidance(g: Guidance, what: string): Required<Guidance> {
  const { cfgScale, cfgInterval } = resolveOptions(what, g, GUIDANCE_SCHEMA);
  return { cfgScale, cfgInterval: resolveInterval(cfgInterval, `${what}.cfgInterval`) };
}

/** "no CFG", "CFG 3", "CFG 5 at t ≤ 0.6", "CFG 5 at 0.2 ≤ t ≤ 0.6". */
export function guidanceLabel(g: Guidance): string {
  const {
    cfgScale: scale,
    cfgInterval: [lo, hi],
  } = checkGuidance(g, 'guidance');
  if (scale === 1) return 'no CFG';
  if (lo === 0 && hi === 1) return `CFG ${scale}`;
  if (lo === 0) return `CFG ${scale} at t ≤ ${hi}`;
  return hi === 1 ? `CFG ${scale} at t ≥ ${lo}` : `CFG ${scale} at ${lo} ≤ t ≤ ${hi}`;
}
