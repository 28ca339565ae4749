// The options of flow-matching pre-training (lib/training/flow-matching.ts).
import type { DistributedOption } from './distributed.js';
import type { LoraOptions } from './lora.js';
import { MICRO_BATCH, OPTIMIZER_SCHEMA, type OptimizerOptions } from './optimizer.js';
import type { Rule } from './schema.js';

/** Options of flow-matching pre-training. */
export interface FlowMatchingOptions extends OptimizerOptions {
  /** Seed of the draws of t, noise and condition dropout (0). With the step count it makes each step reproducible. */
  seed?: number | bigint;
  /**
   * Rows per forward/backward (default 128; 0 = the whole batch): a larger batch runs in chunks whose gradients add
   * up, which bounds memory and leaves the step's mean loss and gradient as they are. A fixed count, so that a seed
   * gives the same run on every machine.
   */
  microBatch?: number;
  /** Probability of replacing a sample's condition by the null condition, for classifier-free guidance (0). */
  condDropout?: number;
  /** Train LoRA adapters of a frozen base (docs/lora.md): added to a network without; one with must carry these. */
  lora?: LoraOptions;
  /**
   * Data-parallel over MPI (docs/distributed.md): every rank passes the same global batch to step() and trains its
   * share of the rows; default: on when an MPI launcher started several ranks.
   */
  distributed?: DistributedOption;
}

/** The option table of pre-training. */
export const FLOW_MATCHING_SCHEMA = {
  ...OPTIMIZER_SCHEMA,
  seed: { type: 'value' },
  microBatch: MICRO_BATCH,
  condDropout: { type: 'number', min: 0, max: 1, default: 0 },
  lora: { type: 'value' },
  distributed: { type: 'value' },
} as const satisfies Record<keyof FlowMatchingOptions, Rule>;
