import { checkSameRun, type DistributedOption, distributeModel, openWorld, type World } from './distributed.js';
import { type LoraOptions, loraOptions, useLora } from './lora.js';
import type { NativeFlowMatchingOptions } from './native.js';
import type { VelocityNet } from './net.js';
import { MICRO_BATCH, OPTIMIZER_SCHEMA, type OptimizerOptions, type StepStats } from './optimizer.js';
import { type Rule, resolveOptions, seedOption } from './options.js';
import type { Tensor } from './tensor.js';

/** Options of flow-matching pre-training. */
export interface FlowMatchingOptions extends OptimizerOptions {
  /** Seed of the draws of t, noise and condition dropout (0). With the step count it makes each step reproducible. */
  seed?: number | bigint;
  /** Rows per forward/backward: a batch larger than this is processed in chunks whose gradients accumulate (0 = whole batch). */
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

/**
 * Flow-matching pre-training (docs/algorithms.md §1.2): each `step()` draws t ~ U(0, 1) and noise, forms
 * x_t = (1 − t)·x0 + t·ε, regresses v(x_t, t, c) onto ε − x0 with a mean-squared error, and applies one AdamW step,
 * all in one native call off the JavaScript thread.
 */
export class FlowMatchingTrainer {
  /** The network being trained. */
  readonly net: VelocityNet;
  readonly #native: NativeFlowMatchingOptions;
  readonly #world: World | undefined;

  constructor(net: VelocityNet, options: FlowMatchingOptions = {}) {
    const { lora, distributed, ...opts } = resolveOptions('options', options, FLOW_MATCHING_SCHEMA);
    this.net = net;
    const seed = seedOption('options.seed', opts.seed ?? 0);
    if (typeof seed === 'bigint' && seed > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError('options.seed of a trainer must be below 2^53');
    }
    if (lora !== undefined) useLora(net, loraOptions('options.lora', lora, net.config.arch));
    this.#native = { ...opts, seed: Number(seed), firstSample: 0 };
    this.#world = openWorld('options.distributed', distributed);
    if (this.#world !== undefined) {
      distributeModel('FlowMatchingTrainer', net.model, net.device, this.#world);
      checkSameRun(
        'FlowMatchingTrainer: the options and θ',
        JSON.stringify(this.#native),
        new Uint8Array(net.getParameters().buffer),
      );
    }
  }

  /** This process's rank and the world size (rank 0 of 1 when not distributed). */
  get world(): World {
    return this.#world ?? { rank: 0, size: 1, checkEvery: 0, deviceCollectives: 'auto' };
  }

  /** The resolved options (as passed to the native step). */
  get options(): Readonly<NativeFlowMatchingOptions> {
    return this.#native;
  }

  /** One optimiser step on clean samples x0 (B, D) with condition tokens cond (B, L). */
  async step(batch: { x0: Tensor; cond: Tensor<'int32'> }): Promise<StepStats> {
    if (batch === null || typeof batch !== 'object') throw new TypeError('step expects { x0, cond }');
    const inputs = this.net.checkInputs(batch.x0, 0, batch.cond);
    const { rank, size } = this.world;
    if (inputs.batch % size !== 0) {
      throw new RangeError(`the batch of ${inputs.batch} rows does not split evenly over ${size} ranks`);
    }
    // This rank's share of the global batch, its draws keyed by the rows' global indices.
    const rows = inputs.batch / size;
    const { dataDim: D, condSlots: L } = this.net.config;
    const first = rank * rows;
    const x = size === 1 ? inputs.x : inputs.x.subarray(first * D, (first + rows) * D);
    const cond = size === 1 ? inputs.cond : inputs.cond.subarray(first * L, (first + rows) * L);
    const native = { ...this.#native, firstSample: first };
    return this.net.enqueue(() => this.net.model.flowMatchingStep(x, cond, rows, native));
  }
}
