// The AdamW optimiser every trainer shares (docs/algorithms.md §1.3): its options with their ranges and defaults,
// and the statistics of one step. Trainers add OPTIMIZER_SCHEMA to their own option tables.
import type { Rule } from './schema.js';

/** Learning-rate schedule after the warm-up. */
export type LrSchedule = 'constant' | 'cosine' | 'linear' | 'drop';

/** AdamW settings shared by every trainer (defaults: docs/algorithms.md §1.3). */
export interface OptimizerOptions {
  /** Peak learning rate (3e-4). */
  lr?: number;
  /** AdamW's first-moment decay β1 (0.9). */
  beta1?: number;
  /** AdamW's second-moment decay β2 (0.999). */
  beta2?: number;
  /** AdamW epsilon (1e-8). */
  eps?: number;
  /** Decoupled weight decay (1e-4), not applied to biases and embeddings. */
  weightDecay?: number;
  /** Global gradient-norm clip (1.0); 0 disables it. */
  maxGradNorm?: number;
  /** Linear warm-up steps (0). */
  warmupSteps?: number;
  /** Schedule after the warm-up ('constant'); 'drop' keeps lr up to step totalSteps and minLr after it. */
  schedule?: LrSchedule;
  /** Step at which a cosine or linear schedule reaches minLr, or the last step at lr of 'drop'. */
  totalSteps?: number;
  /** Final learning rate of a decaying schedule, or the one after a drop (0). */
  minLr?: number;
}

/** The optimiser's option table. */
export const OPTIMIZER_SCHEMA = {
  lr: { type: 'number', min: 0, max: 10, default: 3e-4 },
  beta1: { type: 'number', min: 0, max: 0.999999, default: 0.9 },
  beta2: { type: 'number', min: 0, max: 0.999999999, default: 0.999 },
  eps: { type: 'number', min: 1e-30, max: 1, default: 1e-8 },
  weightDecay: { type: 'number', min: 0, max: 10, default: 1e-4 },
  maxGradNorm: { type: 'number', min: 0, max: 1e30, default: 1 },
  warmupSteps: { type: 'int', min: 0, max: 1e15, default: 0 },
  schedule: { type: 'enum', values: ['constant', 'cosine', 'linear', 'drop'], default: 'constant' },
  totalSteps: { type: 'int', min: 0, max: 1e15, default: 0 },
  minLr: { type: 'number', min: 0, max: 10, default: 0 },
} as const satisfies Record<keyof OptimizerOptions, Rule>;

/** Statistics of one optimiser step. */
export interface StepStats {
  /** The step's loss, the mean over its rows. */
  loss: number;
  /** The gradient's global norm, before clipping. */
  gradNorm: number;
  /** The learning rate the step applied (after warm-up and schedule). */
  lr: number;
  /** Optimiser steps taken, this one included. */
  step: number;
}

/**
 * Rows per forward/backward of a training step: a larger batch runs in chunks of this many rows whose gradients add
 * up, each weighted by its share of the rows, so the step is the same mean (0 = all rows at once). The default is a
 * fixed row count, not one derived from the machine's memory: the chunking sets the order of the float sums, and a
 * seed must give the same run on every machine. 128 rows bound the activations of the shapes DiT to a few hundred MB
 * (the whole 1,152-row batch of the demo needed 5.6 GB) and keep each native call large enough for every thread.
 */
export const MICRO_BATCH = { type: 'int', min: 0, max: 1 << 24, default: 128 } as const satisfies Rule;
