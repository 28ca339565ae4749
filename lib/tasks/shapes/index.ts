/**
 * The `shapes` task: a GenEval in miniature. 16×16 images of coloured shapes, prompts in GenEval's six categories, a
 * detector, and the strict and partial-credit scores of an image for its prompt.
 * @module
 */
// Its parts: world.ts, prompts.ts, detector.ts, score.ts.
import { SHAPES_PROMPT_STREAM, SHAPES_SCENE_STREAM } from '../../core/random.js';
import { Tensor } from '../../core/tensor.js';
import { detect } from './detector.js';
import { CATEGORIES, type Category, type ShapesPrompt, SLOTS, sceneFor, TRAIN_PROMPTS } from './prompts.js';
import { scoreDetections } from './score.js';
import { DATA_DIM, Draws, render } from './world.js';

export type { Detection } from './detector.js';
export { detect } from './detector.js';
export type { Category, ObjectSpec, Relation, ShapesPrompt } from './prompts.js';
export { ALL_PROMPTS, CATEGORIES, RELATIONS, SLOTS, sceneFor, TEST_PROMPTS, TRAIN_PROMPTS, VOCAB } from './prompts.js';
export type { ImageScore } from './score.js';
export { scoreDetections } from './score.js';
export type { Colour, SceneObject, Shape } from './world.js';
export { BACKGROUND, CHANNELS, COLOURS, DATA_DIM, Draws, IMAGE_SIZE, PALETTE, render, SHAPES, SIZES } from './world.js';

// Random numbers of one scene: placements retry, so each image gets a generous private range of its stream.
const DRAWS_PER_SCENE = 4096;

/** A rendered image (D values) of a random scene satisfying `prompt`; scene `index` of a seed is always the same. */
export function renderPrompt(prompt: ShapesPrompt, seed: number, index: number): Float32Array {
  return render(sceneFor(prompt, new Draws(seed, SHAPES_SCENE_STREAM, index * DRAWS_PER_SCENE, DRAWS_PER_SCENE)));
}

/**
 * A pre-training batch: prompts drawn uniformly from `prompts` (default: the training prompts), each with a
 * rendered image. Batch `index` of a seed is always the same data.
 */
export function batch(
  size: number,
  seed: number,
  index: number,
  prompts: readonly ShapesPrompt[] = TRAIN_PROMPTS,
): {
  /** The images (size, D). */
  x0: Tensor;
  /** Their prompts' tokens (size, SLOTS). */
  cond: Tensor<'int32'>;
  /** The prompts drawn. */
  prompts: ShapesPrompt[];
} {
  const choice = new Draws(seed, SHAPES_PROMPT_STREAM, index * size, size);
  const chosen = Array.from({ length: size }, () => choice.pick(prompts));
  const x0 = new Float32Array(size * DATA_DIM);
  const cond = new Int32Array(size * SLOTS);
  chosen.forEach((p, i) => {
    x0.set(renderPrompt(p, seed, index * size + i), i * DATA_DIM);
    cond.set(p.tokens, i * SLOTS);
  });
  return { x0: Tensor.from(x0, [size, DATA_DIM]), cond: Tensor.fromInt32(cond, [size, SLOTS]), prompts: chosen };
}

/** The partial-credit reward of each sample (n, D) for its prompt: a RewardFn for the trainers. */
export function reward(samples: Tensor, prompts: readonly ShapesPrompt[]): number[] {
  return prompts.map(
    (p, i) =>
      scoreDetections(p, detect(samples.storage.subarray(i * DATA_DIM, (i + 1) * DATA_DIM) as Float32Array)).reward,
  );
}

/** GenEval's strict success of each sample (n, D) for its prompt as a 0/1 reward: a RewardFn for the trainers. */
export function strictReward(samples: Tensor, prompts: readonly ShapesPrompt[]): number[] {
  return prompts.map((p, i) =>
    scoreDetections(p, detect(samples.storage.subarray(i * DATA_DIM, (i + 1) * DATA_DIM) as Float32Array)).strict
      ? 1
      : 0,
  );
}

/** The rewards a shapes run can train with: the partial credit (default) or the strict success. */
export const REWARD_KINDS = ['partial', 'strict'] as const;
/** One of the REWARD_KINDS. */
export type RewardKind = (typeof REWARD_KINDS)[number];

/**
 * A reward of `kind` whose score of a sample is multiplied by the weight of its prompt's category (default 1): a
 * per-category reward that gives some categories more of the advantages' scale. Checks the weights.
 */
export function rewardOf(
  kind: RewardKind,
  categoryWeights: Partial<Record<Category, number>> = {},
): {
  /** 'shapes' or 'shapes-strict', with '-weighted' when category weights are given. */
  name: string;
  /** The reward function. */
  fn: (samples: Tensor, prompts: readonly ShapesPrompt[]) => number[];
} {
  if (!REWARD_KINDS.includes(kind))
    throw new RangeError(`the shapes reward must be 'partial' or 'strict', got ${kind}`);
  if (categoryWeights === null || typeof categoryWeights !== 'object' || Array.isArray(categoryWeights))
    throw new TypeError('categoryWeights must be an object of category → weight');
  for (const [category, weight] of Object.entries(categoryWeights)) {
    if (!(CATEGORIES as readonly string[]).includes(category))
      throw new RangeError(`categoryWeights: no category '${category}' (known: ${CATEGORIES.join(', ')})`);
    if (typeof weight !== 'number' || !(weight >= 0 && weight <= 1e6))
      throw new RangeError(`categoryWeights.${category} must be a number in [0, 1e6], got ${String(weight)}`);
  }
  const base = kind === 'strict' ? strictReward : reward;
  const weighted = Object.keys(categoryWeights).length > 0;
  const name = `shapes${kind === 'strict' ? '-strict' : ''}${weighted ? '-weighted' : ''}`;
  if (!weighted) return { name, fn: base };
  return {
    name,
    fn: (samples, prompts) =>
      base(samples, prompts).map((r, i) => r * (categoryWeights[prompts[i]?.category as Category] ?? 1)),
  };
}

/** GenEval-style results: the strict success rate per category and their mean (GenEval's overall score). */
export interface ShapesEvaluation {
  /** The mean of the categories' strict success rates (GenEval's overall score). */
  overall: number;
  /** The strict success rate of each category that had prompts. */
  byCategory: Partial<Record<Category, number>>;
  /** The mean partial-credit reward. */
  reward: number;
  /** How many samples were scored. */
  samples: number;
  /**
   * The standard errors of `overall` (from each category's binomial rate) and of `reward` (the samples' standard
   * deviation over √n): how far a second evaluation with other noise would typically land.
   */
  standardError: {
    /** Of the strict score. */
    strict: number;
    /** Of the mean reward. */
    reward: number;
  };
}

/** Strict scores of samples (n, D) generated for `prompts`. */
export function evaluate(samples: Tensor, prompts: readonly ShapesPrompt[]): ShapesEvaluation {
  const totals = new Map<Category, [number, number]>();
  const rewards = prompts.map((p, i) => {
    const s = scoreDetections(p, detect(samples.storage.subarray(i * DATA_DIM, (i + 1) * DATA_DIM) as Float32Array));
    const [hits, count] = totals.get(p.category) ?? [0, 0];
    totals.set(p.category, [hits + (s.strict ? 1 : 0), count + 1]);
    return s.reward;
  });
  const byCategory: Partial<Record<Category, number>> = {};
  let strictVariance = 0; // of the sum of the categories' rates
  for (const c of CATEGORIES) {
    const entry = totals.get(c);
    if (!entry) continue;
    const rate = entry[0] / entry[1];
    byCategory[c] = rate;
    strictVariance += (rate * (1 - rate)) / entry[1];
  }
  const rates = Object.values(byCategory);
  const n = Math.max(1, prompts.length);
  const reward = rewards.reduce((sum, v) => sum + v, 0) / n;
  const rewardVariance = rewards.reduce((sum, v) => sum + (v - reward) ** 2, 0) / Math.max(1, prompts.length - 1);
  return {
    overall: rates.reduce((s, v) => s + v, 0) / Math.max(1, rates.length),
    byCategory,
    reward,
    samples: prompts.length,
    standardError: {
      strict: Math.sqrt(strictVariance) / Math.max(1, rates.length),
      reward: Math.sqrt(rewardVariance / n),
    },
  };
}
