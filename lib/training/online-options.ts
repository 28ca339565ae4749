// The options and statistics of the online RL trainers (lib/training/online.ts): what every trainer takes, what
// run() and evaluate() take, with their tables, and what an epoch reports.
import type { RecordHook } from '../metrics/log.js';
import type { EpochSeconds } from '../metrics/records.js';
import type { CreateOptions } from '../model/net.js';
import { ADVANTAGE_SCHEMA } from '../options/advantage.js';
import type { DistributedOption } from '../options/distributed.js';
import type { LoraOptions } from '../options/lora.js';
import { MICRO_BATCH, OPTIMIZER_SCHEMA, type OptimizerOptions } from '../options/optimizer.js';
import type { Resolved, Rule } from '../options/schema.js';
import { ROLLOUT_RULES, SOLVER_NAMES, type SolverName, TIME_GRID_SCHEMA } from '../sampling/solvers.js';
import type { Prompt, Rewards } from './common.js';

/**
 * Where a resumed run continues (each trainer's `resume`): the backend and GPU arithmetic, as
 * VelocityNet.create takes them; the checkpoint does not record them, so a run trained on the GPU is resumed with
 * the same `{ device: 'cuda' }` (default: the CPU).
 */
export type ResumePlacement = Pick<CreateOptions, 'device' | 'precision'>;

/** Options every online trainer takes. */
export interface OnlineOptions<P extends Prompt = Prompt> extends OptimizerOptions {
  /** Training prompts; each epoch draws `groups` of them. */
  prompts: readonly P[];
  /** One reward function, a named one, or several summed with weights. */
  rewards: Rewards<P>;
  /** Prompts per epoch, M (default 16; the codes: 48). */
  groups?: number;
  /** Samples per prompt, K ≥ 2 (default 8; the codes: 24). */
  groupSize?: number;
  /** Rollout steps N (default 10). */
  steps?: number;
  /** Rollout time grid (default 'uniform'; 'sd3' is the codes' shifted grid), see timeGrid. */
  gridSchedule?: 'uniform' | 'sd3';
  /** Shift of the rollout grid (see timeGrid). */
  shift?: number;
  /** Optimiser steps per epoch: the epoch's samples are split between them. */
  optimizerSteps?: number;
  /**
   * Training rows per forward/backward (default 128; 0 = all at once): the rows of an optimiser step run in chunks
   * whose gradients add up, which bounds memory and leaves the step's mean loss and gradient as they are. A fixed
   * count, so that a seed gives the same run on every machine.
   */
  microBatch?: number;
  /** Advantage normaliser: the std of all rewards (default, as the codes) or of each group. */
  std?: 'global' | 'group';
  /** Keep an EMA of θ for evaluation, with decay min((1 + s)/(10 + s), ema) (default 0.9 as the codes; 0 = off). */
  ema?: number;
  /** Seed of every draw: prompts, rollout noise, training noise (default 0). */
  seed?: number;
  /** Samples per native rollout call (default 128): bounds the memory of the rollouts, not their samples. */
  chunk?: number;
  /**
   * Milliseconds one call of a reward may take before it fails with a RewardError (default 600000, ten minutes;
   * 0: no limit). Bounds rewards served over a network that may never answer.
   */
  rewardTimeout?: number;
  /** Further attempts of a reward call that threw, rejected or timed out (default 0). */
  rewardRetries?: number;
  /**
   * Train LoRA adapters of a frozen base instead of every weight (docs/lora.md): added to a network without
   * adapters; a network with adapters must carry these. θ_old, θ_ref and the EMA are then adapter sets.
   */
  lora?: LoraOptions;
  /**
   * Data-parallel over MPI (docs/distributed.md): the `groups` prompt groups of an epoch are split over the ranks;
   * default: on when an MPI launcher started several ranks.
   */
  distributed?: DistributedOption;
}

/** Statistics every trainer reports for an epoch. */
export interface EpochStats {
  /** Epochs completed, this one included. */
  epoch: number;
  /** Optimiser steps taken so far in this phase. */
  step: number;
  /** Rollouts of the epoch (M·K). */
  samples: number;
  /** Mean of the total reward of the epoch's rollouts. */
  reward: number;
  /** Standard deviation of the total reward of the epoch's rollouts. */
  rewardStd: number;
  /** Mean of each named reward. */
  rewards: Record<string, number>;
  /** Mean loss of the epoch's optimiser steps. */
  loss: number;
  /** Mean gradient norm (before clipping) of the epoch's optimiser steps. */
  gradNorm: number;
  /** Learning rate of the epoch's last optimiser step. */
  lr: number;
  /** Where the epoch's time went. */
  seconds: EpochSeconds;
}

/** Options of run(). */
export interface RunOptions<S extends EpochStats = EpochStats> {
  /** How many epochs to run (≥ 1). */
  epochs: number;
  /** Called after every epoch (with the evaluation when one ran). */
  onProgress?: (stats: S, evaluation?: Evaluation) => void;
  /** Stops before the next epoch once aborted; an epoch still sampling is discarded, one training finishes. */
  signal?: AbortSignal;
  /** Saves a checkpoint to `path` every `every` epochs (default 1) and at the end. */
  checkpoint?: {
    /** The checkpoint file, rewritten each time. */
    path: string;
    /** Epochs between saves (default 1). */
    every?: number;
  };
  /** Evaluates every `every` epochs (default 1) and at the end. */
  evaluate?: EvaluateOptions<Prompt> & {
    /** Epochs between evaluations (default 1). */
    every?: number;
  };
  /** Writes metrics.jsonl (a record per epoch and per evaluation) and config.json into this folder as the run goes
   * (docs/dashboard.md); a resumed trainer continues the folder's stream. */
  metrics?: string;
  /** Receives each of those records as it is made, awaited (with or without `metrics`). */
  onRecord?: RecordHook;
}

/** Options of evaluate(). */
export interface EvaluateOptions<P extends Prompt = Prompt> {
  /** Held-out prompts (default: the training prompts). */
  prompts?: readonly P[];
  /** Samples per prompt (default 4). */
  samplesPerPrompt?: number;
  /** Deterministic ODE steps (default 40, Euler: the codes' evaluation). */
  steps?: number;
  /** The ODE solver (default 'euler'). */
  solver?: SolverName;
  /** Classifier-free guidance of the evaluation samples (default 1: none). */
  cfgScale?: number;
  /** Parameters: 'ema' when kept (default), else 'theta'. */
  params?: 'theta' | 'ema' | 'old';
  /** Seed of the evaluation noise (default 12345, the same every time so evaluations compare). */
  seed?: number;
}

/** Mean rewards of an evaluation. */
export interface Evaluation {
  /** Mean total reward of the evaluation samples. */
  reward: number;
  /** Mean of each named reward. */
  rewards: Record<string, number>;
  /** How many samples were scored. */
  samples: number;
}

/** The option table of OnlineOptions (the optimiser's is OPTIMIZER_SCHEMA); each trainer adds its own fields. */
export const ONLINE_SCHEMA = {
  prompts: { type: 'value' },
  rewards: { type: 'value' },
  groups: { type: 'int', min: 1, max: 1 << 16, default: 16 },
  groupSize: { type: 'int', min: 1, max: 1 << 16, default: 8 },
  steps: { type: 'int', min: 1, max: 10000, default: 10 },
  gridSchedule: TIME_GRID_SCHEMA.schedule,
  shift: TIME_GRID_SCHEMA.shift,
  optimizerSteps: { type: 'int', min: 1, max: 1 << 16, default: 1 },
  microBatch: MICRO_BATCH,
  std: ADVANTAGE_SCHEMA.std,
  ema: { type: 'number', min: 0, max: 1, default: 0.9 },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 0 },
  chunk: ROLLOUT_RULES.chunk,
  rewardTimeout: { type: 'int', min: 0, max: 2 ** 31 - 1, default: 600_000 },
  rewardRetries: { type: 'int', min: 0, max: 100, default: 0 },
  lora: { type: 'value' },
  distributed: { type: 'value' },
  ...OPTIMIZER_SCHEMA,
} as const satisfies Record<keyof OnlineOptions, Rule>;

/** The option table of EvaluateOptions. */
export const EVALUATE_SCHEMA = {
  prompts: { type: 'value' },
  samplesPerPrompt: { type: 'int', min: 1, max: 1 << 16, default: 4 },
  steps: { type: 'int', min: 1, max: 10000, default: 40 },
  solver: { type: 'enum', values: SOLVER_NAMES, default: 'euler' },
  cfgScale: ROLLOUT_RULES.cfgScale,
  params: { type: 'enum', values: ['theta', 'ema', 'old'] },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 12345 },
} as const satisfies Record<keyof EvaluateOptions, Rule>;

/** The option table of RunOptions. */
export const RUN_SCHEMA = {
  epochs: { type: 'int', min: 1, max: 1e9, default: 1 },
  onProgress: { type: 'value' },
  signal: { type: 'value' },
  checkpoint: { type: 'value' },
  evaluate: { type: 'value' },
  metrics: { type: 'value' },
  onRecord: { type: 'value' },
} as const satisfies Record<keyof RunOptions, Rule>;

/** Resolved options of the shared part. */
export type OnlineResolved = Resolved<typeof ONLINE_SCHEMA>;
