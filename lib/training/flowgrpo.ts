// FlowGRPO (docs/algorithms.md §3 and §4.2), the baseline: roll out θ with the marginal-preserving SDE recording the
// per-step log-probabilities, score, normalise advantages per group, and train with the PPO-clipped GRPO objective
// on the first ⌊0.99·N⌋ transitions.

import type { NativeGrpoStepOptions } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import type { VelocityNet } from '../model/net.js';
import { ADV_CLIP_MAX } from '../options/advantage.js';
import { GRPO_LOSS_SCHEMA, type GrpoLossOptions } from '../options/grpo-loss.js';
import { pick, type Rule, resolveOptions, withDefaults } from '../options/schema.js';
import { groupAdvantages } from '../rl/advantage.js';
import { SDE_A, sampleSde } from '../sampling/sde.js';
import { ROLLOUT_RULES, resolveInterval } from '../sampling/solvers.js';
import type { Prompt } from './common.js';
import { type EpochData, OnlineTrainer } from './online.js';
import { type EpochStats, ONLINE_SCHEMA, type OnlineOptions, type ResumePlacement } from './online-options.js';

/** Options of a FlowGRPO trainer: the official code's defaults, except where a comment says why not. */
export interface FlowGRPOOptions<P extends Prompt = Prompt> extends OnlineOptions<P>, GrpoLossOptions {
  /** SDE noise level a of σ_t = a·√(t/(1 − t)) (0.7). */
  sdeA?: number;
  /** Advantages are clipped to ±advClipMax (5). */
  advClipMax?: number;
  /** Fraction of the N transitions trained, the first ones in order (0.99: 9 of 10). */
  trainFraction?: number;
  /** Classifier-free guidance in rollouts and the training forward (1: none; the code uses 4.5 on SD3.5). */
  cfgScale?: number;
  /**
   * The times [t_lo, t_hi] at which the guidance applies, in rollouts and in training (a transition from t is guided
   * when t is in it); default [0, 1], everywhere, as the code. [0, 0.6] is the shapes base's best guidance.
   */
  cfgInterval?: readonly [number, number];
  /** Drop samples whose advantage is exactly 0, e.g. groups whose rewards are all equal (true, as the code). */
  filterZeroAdvantage?: boolean;
}

/** Statistics of a FlowGRPO epoch. */
export interface GrpoEpochStats extends EpochStats {
  /** Fraction of trained transitions whose ratio left [1 − ε, 1 + ε]. */
  clipFraction: number;
  /** ½·mean (log p − log p_old)², the code's approximate KL. */
  approxKl: number;
  /** Mean of the ratios. */
  ratioMean: number;
  /** Samples trained on after the zero-advantage filter. */
  trainedSamples: number;
}

/** The option table of FlowGRPO: the trainer runs the code's KL coefficient 0.04, where grpoLoss alone has none. */
const GRPO_SCHEMA = {
  ...withDefaults(ONLINE_SCHEMA, { optimizerSteps: 2 }),
  ...withDefaults(GRPO_LOSS_SCHEMA, { klCoef: 0.04 }),
  sdeA: SDE_A,
  advClipMax: ADV_CLIP_MAX,
  trainFraction: { type: 'number', min: 1e-6, max: 1, default: 0.99 },
  cfgScale: ROLLOUT_RULES.cfgScale,
  cfgInterval: { type: 'value' },
  filterZeroAdvantage: { type: 'boolean', default: true },
} as const satisfies Record<keyof FlowGRPOOptions, Rule>;

interface Recorded {
  trajectory: Float32Array; // (N + 1, rows, D)
  logp: Float32Array; // (N, rows)
  rows: number;
}

/**
 * FlowGRPO (Liu et al., 2025) on a VelocityNet, behind the same epoch()/run()/evaluate()/save()/resume() contract as
 * DiffusionNFT. There is no separate old policy: log p_old is stored at rollout time, so the first optimiser step of
 * an epoch is exactly on-policy (ratio 1) and later ones are stale. The KL term uses θ_ref, a frozen copy of θ at the
 * start of the phase.
 */
export class FlowGRPO<P extends Prompt = Prompt> extends OnlineTrainer<P, GrpoEpochStats> {
  readonly #native: NativeGrpoStepOptions;
  readonly #advClipMax: number;
  readonly #filter: boolean;

  constructor(net: VelocityNet, options: FlowGRPOOptions<P>) {
    const opts = resolveOptions('options', options, GRPO_SCHEMA);
    super(net, opts);
    const N = this.common.grid.length - 1;
    const [cfgTMin, cfgTMax] = resolveInterval(opts.cfgInterval, 'options.cfgInterval');
    this.#advClipMax = opts.advClipMax;
    this.#filter = opts.filterZeroAdvantage;
    this.#native = {
      ...this.optimizer,
      ...pick(opts, GRPO_LOSS_SCHEMA),
      grid: this.common.grid,
      // The last transition into t ≈ 0 is never trained: its tiny σ makes the log-density overflow.
      trainSteps: Math.min(N - 1 || 1, Math.max(1, Math.floor(N * opts.trainFraction))),
      sdeA: opts.sdeA,
      cfgScale: opts.cfgScale,
      cfgTMin,
      cfgTMax,
      microBatch: this.common.microBatch,
    };
    if (this.#native.sdeA === 0) throw new RangeError('options.sdeA must be > 0: FlowGRPO needs a stochastic policy');
    this.startPhase(this.#native.klCoef > 0 ? ['ref'] : []);
  }

  /** Continues a run saved by `run({ checkpoint })` or `save()` on the device `placement` names (DiffusionNFT.resume). */
  static async resume<P extends Prompt>(
    path: string,
    options: FlowGRPOOptions<P>,
    placement?: ResumePlacement,
  ): Promise<FlowGRPO<P>> {
    return OnlineTrainer.resumeWith<P, GrpoEpochStats, FlowGRPO<P>>(
      'FlowGRPO.resume',
      path,
      placement,
      (net) => new FlowGRPO<P>(net, options),
    );
  }

  protected fingerprint(): Record<string, unknown> {
    // The default interval is left out, so that checkpoints from before the option resume.
    const everywhere = this.#native.cfgTMin === 0 && this.#native.cfgTMax === 1;
    const interval = everywhere ? { cfgTMin: undefined, cfgTMax: undefined } : {};
    return {
      advClipMax: this.#advClipMax,
      filter: this.#filter,
      native: { ...this.#native, grid: undefined, ...interval },
    };
  }

  protected async rolloutChunk(tokens: Int32Array, rows: number, firstSample: number) {
    const L = this.net.config.condSlots;
    const r = await sampleSde(this.net, {
      cond: Tensor.fromInt32(tokens, [rows, L]),
      grid: this.common.grid,
      a: this.#native.sdeA,
      cfgScale: this.#native.cfgScale,
      cfgInterval: [this.#native.cfgTMin, this.#native.cfgTMax],
      seed: this.common.seed,
      firstSample,
      chunk: this.common.chunk,
      logpSum: this.#native.logpSum,
    });
    const data: Recorded = { trajectory: r.trajectory.storage, logp: r.logp.storage, rows };
    return { x: r.x, data };
  }

  protected async train(data: EpochData<P>) {
    const { dataDim: D, condSlots: L } = this.net.config;
    const N = this.common.grid.length - 1;
    // Clipped once, here: the advantages the loss sees are A_c of docs/algorithms.md §3.3.
    const { clipped: advantages } = groupAdvantages(data.rewards, data.groupIds, {
      advClipMax: this.#advClipMax,
      std: this.common.std,
    });
    // Where each sample's recorded states live: its chunk and its row in it.
    const where: [Recorded, number][] = [];
    for (const chunk of data.chunks) {
      const recorded = chunk.data as Recorded;
      for (let row = 0; row < recorded.rows; row++) where.push([recorded, row]);
    }
    const kept = Array.from(advantages.keys()).filter((i) => !this.#filter || advantages[i] !== 0);
    const totals = { loss: 0, gradNorm: 0, clipFraction: 0, approxKl: 0, ratioMean: 0, lr: 0 };
    const S = Math.min(this.common.optimizerSteps, kept.length);
    for (let k = 0; k < S; k++) {
      // The step's samples this rank rolled out (all of them in one process).
      const part = kept
        .slice(Math.floor((k * kept.length) / S), Math.floor(((k + 1) * kept.length) / S))
        .filter((i) => i >= data.from && i < data.to);
      const B = part.length;
      const trajectory = new Float32Array((N + 1) * B * D);
      const logpOld = new Float32Array(N * B);
      const tokens = new Int32Array(B * L);
      const adv = new Float32Array(B);
      part.forEach((sample, b) => {
        const [recorded, row] = where[sample - data.from] as [Recorded, number];
        for (let n = 0; n <= N; n++) {
          const from = (n * recorded.rows + row) * D;
          trajectory.set(recorded.trajectory.subarray(from, from + D), (n * B + b) * D);
          if (n < N) logpOld[n * B + b] = recorded.logp[n * recorded.rows + row] as number;
        }
        tokens.set(data.tokens.subarray(sample * L, (sample + 1) * L), b * L);
        adv[b] = advantages[sample] as number;
      });
      const stats = await this.net.enqueue(() =>
        this.net.model.grpoStep(trajectory, tokens, adv, logpOld, B, this.#native),
      );
      totals.loss += stats.loss / S;
      totals.gradNorm += stats.gradNorm / S;
      totals.clipFraction += stats.clipFraction / S;
      totals.approxKl += stats.approxKl / S;
      totals.ratioMean += stats.ratioMean / S;
      totals.lr = stats.lr;
    }
    const { lr, loss, gradNorm, ...extra } = totals;
    return { loss, gradNorm, lr, extra: { ...extra, trainedSamples: kept.length } };
  }
}
