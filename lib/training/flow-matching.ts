// Flow-matching pre-training: the trainer of a base model (its options are lib/options/flow-matching.ts), and the
// forward process it regresses on is lib/sampling/interpolate.ts.
import type { ResolvedFlowMatchingOptions } from '../core/native.js';
import type { Tensor } from '../core/tensor.js';
import { useLora } from '../model/lora.js';
import type { VelocityNet } from '../model/net.js';
import { FLOW_MATCHING_SCHEMA, type FlowMatchingOptions } from '../options/flow-matching.js';
import { loraOptions } from '../options/lora.js';
import type { StepStats } from '../options/optimizer.js';
import { resolveOptions, seedOption } from '../options/schema.js';
import { checkSameRun, distributeModel, openWorld, type World } from './distributed.js';

/**
 * Flow-matching pre-training (docs/algorithms.md §1.2): each `step()` draws t ~ U(0, 1) and noise, forms
 * x_t = (1 − t)·x0 + t·ε, regresses v(x_t, t, c) onto ε − x0 with a mean-squared error, and applies one AdamW step,
 * all in one native call off the JavaScript thread.
 */
export class FlowMatchingTrainer {
  /** The network being trained. */
  readonly net: VelocityNet;
  readonly #native: ResolvedFlowMatchingOptions;
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
        'FlowMatchingTrainer',
        ['the options', JSON.stringify(this.#native)],
        ['the parameters θ', new Uint8Array(net.getParameters().buffer)],
      );
    }
  }

  /** This process's rank and the world size (rank 0 of 1 when not distributed). */
  get world(): World {
    return this.#world ?? { rank: 0, size: 1, checkEvery: 0, deviceCollectives: 'auto' };
  }

  /** The resolved options (as passed to the native step). */
  get options(): Readonly<ResolvedFlowMatchingOptions> {
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
