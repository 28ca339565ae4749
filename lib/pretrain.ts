import type { NativeStepStats } from './native.js';
import type { VelocityNet } from './net.js';
import { numberOption, objectOption, rejectUnknown, seedOption } from './options.js';
import type { Tensor } from './tensor.js';

/** Learning-rate schedule after the warm-up. */
export type LrSchedule = 'constant' | 'cosine' | 'linear';

/** AdamW settings shared by every trainer (defaults: algorithms.md section 1). */
export interface OptimizerOptions {
  /** Peak learning rate (3e-4). */
  lr?: number;
  /** AdamW betas (0.9, 0.999). */
  beta1?: number;
  beta2?: number;
  /** AdamW epsilon (1e-8). */
  eps?: number;
  /** Decoupled weight decay (1e-4), not applied to biases and embeddings. */
  weightDecay?: number;
  /** Global gradient-norm clip (1.0); 0 disables it. */
  maxGradNorm?: number;
  /** Linear warm-up steps (0). */
  warmupSteps?: number;
  /** Schedule after the warm-up ('constant'). */
  schedule?: LrSchedule;
  /** Step at which a cosine or linear schedule reaches minLr. */
  totalSteps?: number;
  /** Final learning rate of a decaying schedule (0). */
  minLr?: number;
}

/** Options of flow-matching pre-training. */
export interface FlowMatchingOptions extends OptimizerOptions {
  /** Seed of the draws of t, noise and condition dropout (0). With the step count it makes each step reproducible. */
  seed?: number | bigint;
  /** Rows per forward/backward: a batch larger than this is processed in chunks whose gradients accumulate (0 = whole batch). */
  microBatch?: number;
  /** Probability of replacing a sample's condition by the null condition, for classifier-free guidance (0). */
  condDropout?: number;
}

/** Statistics of one optimiser step. */
export type StepStats = NativeStepStats;

const OPTIMIZER_RULES = {
  lr: { kind: 'number', min: 0, max: 10 },
  beta1: { kind: 'number', min: 0, max: 0.999999 },
  beta2: { kind: 'number', min: 0, max: 0.999999999 },
  eps: { kind: 'number', min: 1e-30, max: 1 },
  weightDecay: { kind: 'number', min: 0, max: 10 },
  maxGradNorm: { kind: 'number', min: 0, max: 1e30 },
  warmupSteps: { kind: 'int', min: 0, max: 1e15 },
  totalSteps: { kind: 'int', min: 0, max: 1e15 },
  minLr: { kind: 'number', min: 0, max: 10 },
} as const;

/** Validates optimiser options; returns the fields for the native call. */
export function resolveOptimizer(what: string, options: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [field, rule] of Object.entries(OPTIMIZER_RULES)) {
    if (options[field] !== undefined) result[field] = numberOption(what, options, field, rule, 0);
  }
  const schedule = options.schedule ?? 'constant';
  if (schedule !== 'constant' && schedule !== 'cosine' && schedule !== 'linear') {
    throw new RangeError(`${what}.schedule must be 'constant', 'cosine' or 'linear', got ${String(schedule)}`);
  }
  result.schedule = schedule;
  return result;
}

/**
 * Flow-matching pre-training (algorithms.md section 1): each `step()` draws t ~ U(0, 1) and noise, forms
 * x_t = (1 − t)·x0 + t·ε, regresses v(x_t, t, c) onto ε − x0 with a mean-squared error, and applies one AdamW step,
 * all in one native call off the JavaScript thread.
 */
export class FlowMatchingTrainer {
  /** The network being trained. */
  readonly net: VelocityNet;
  readonly #native: Record<string, unknown>;

  constructor(net: VelocityNet, options: FlowMatchingOptions = {}) {
    const given = objectOption('options', options);
    rejectUnknown('options', given, [...Object.keys(OPTIMIZER_RULES), 'schedule', 'seed', 'microBatch', 'condDropout']);
    this.net = net;
    const seed = seedOption('options.seed', given.seed ?? 0);
    if (typeof seed === 'bigint' && seed > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError('options.seed of a trainer must be below 2^53');
    }
    this.#native = {
      ...resolveOptimizer('options', given),
      seed: Number(seed),
      microBatch: numberOption('options', given, 'microBatch', { kind: 'int', min: 0, max: 1 << 24 }, 0),
      condDropout: numberOption('options', given, 'condDropout', { kind: 'number', min: 0, max: 1 }, 0),
    };
  }

  /** The resolved options (as passed to the native step). */
  get options(): Readonly<Record<string, unknown>> {
    return this.#native;
  }

  /** One optimiser step on clean samples x0 (B, D) with condition tokens cond (B, L). */
  async step(batch: { x0: Tensor; cond: Tensor<'int32'> }): Promise<StepStats> {
    if (batch === null || typeof batch !== 'object') throw new TypeError('step expects { x0, cond }');
    const inputs = this.net.checkInputs(batch.x0, 0, batch.cond);
    return this.net.enqueue(() => this.net.model.flowMatchingStep(inputs.x, inputs.cond, inputs.batch, this.#native));
  }
}
