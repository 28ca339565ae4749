// AWM, advantage weighted matching (docs/algorithms.md §7): roll out θ, score the clean samples, train θ with the
// fused AWM loss (advantage-weighted flow matching under the ghuber weighting, plus the KL to the base and to the EMA
// anchor), then soft-update the anchor θ_old.

import type { AwmStatistics, NativeAwmStepOptions } from '../core/native.js';
import type { VelocityNet } from '../model/net.js';
import { ADV_CLIP_MAX } from '../options/advantage.js';
import { AWM_LOSS_SCHEMA, type AwmLossOptions } from '../options/awm-loss.js';
import type { StepStats } from '../options/optimizer.js';
import { pick, type Rule, resolveOptions, withDefaults } from '../options/schema.js';
import { groupAdvantages } from '../rl/advantage.js';
import type { SolverName } from '../sampling/solvers.js';
import {
  CLEAN_ROLLOUT_SCHEMA,
  type CleanRollout,
  type CleanRolloutOptions,
  cleanRollout,
  rolloutFingerprint,
} from './clean-rollout.js';
import { histogram, type Prompt } from './common.js';
import { type EpochData, OnlineTrainer } from './online.js';
import { type EpochStats, ONLINE_SCHEMA, type OnlineOptions, type ResumePlacement } from './online-options.js';

/** Options of an AWM trainer: the official code's GenEval defaults, except where a comment says why not. */
export interface AWMOptions<P extends Prompt = Prompt> extends OnlineOptions<P>, AwmLossOptions, CleanRolloutOptions {
  /**
   * Rollout solver of θ (default 'dpm2'). The code's SA-Solver is deterministic at its PickScore setting, where an
   * ODE reproduces it; 'sa-solver' is that sampler (its GenEval setting by default); 'sde' FlowGRPO's SDE.
   */
  solver?: SolverName | 'sde';
  /** Advantages are clipped to ±advClipMax (5) and then scaled by advantageMax/advClipMax, into [−1, 1]. */
  advClipMax?: number;
  /** The advantages' bound after the scaling (1). */
  advantageMax?: number;
  /** Training times per sample, one per stratum of grid indices (6, the code's train_timesteps). */
  timesPerSample?: number;
  /** The strata cover grid indices below ⌊N·timeFraction⌋ (0.9). */
  timeFraction?: number;
  /** Whether t = 1 (index 0) may be trained: the code's 'discrete' (true) or 'discrete_wo_init' (false, GenEval's). */
  trainInitialTime?: boolean;
  /** The anchor's decay after step s is min(emaDecayRate·s, emaDecayMax) (0.001). */
  emaDecayRate?: number;
  /** Cap of the anchor's decay (0.3). */
  emaDecayMax?: number;
}

/** Statistics of an AWM epoch. */
export interface AwmEpochStats extends EpochStats {
  /** Counts of the scaled advantages in 10 equal bins of [−advantageMax, advantageMax]. */
  advantageHistogram: number[];
  /** Mean flow-matching error l of the trained rows. */
  fm: number;
  /** Mean log q(l, t) of the trained rows. */
  logQ: number;
  /** Mean (v_θ − v_ref)², the KL to the base (0 when off). */
  kl: number;
  /** Mean (v_θ − v_ema)², the KL to the EMA anchor (0 when off). */
  emaKl: number;
  /** The anchor's decay applied after the epoch. */
  emaDecay: number;
}

/** The option table of AWM: one optimiser step per epoch, as the official GenEval config. */
const AWM_SCHEMA = {
  ...withDefaults(ONLINE_SCHEMA, { optimizerSteps: 1 }),
  ...AWM_LOSS_SCHEMA,
  ...CLEAN_ROLLOUT_SCHEMA,
  advClipMax: ADV_CLIP_MAX,
  advantageMax: { type: 'number', min: 1e-6, max: 1e6, default: 1 },
  timesPerSample: { type: 'int', min: 1, max: 10000, default: 6 },
  timeFraction: { type: 'number', min: 1e-6, max: 1, default: 0.9 },
  trainInitialTime: { type: 'boolean', default: false },
  emaDecayRate: { type: 'number', min: 0, max: 1, default: 0.001 },
  emaDecayMax: { type: 'number', min: 0, max: 1, default: 0.3 },
} as const satisfies Record<keyof AWMOptions, Rule>;

/**
 * The strata of grid indices of the code's stratified discrete times: K + 1 bounds ⌊linspace(lo, ⌊N·fraction⌋,
 * K + 1)⌋ with lo = 1 without t = 1 and 0 with it.
 */
export function awmStrata(N: number, K: number, fraction: number, withInitial: boolean): Float64Array {
  const lo = withInitial ? 0 : 1;
  const hi = Math.floor(N * fraction);
  if (hi <= lo) {
    throw new RangeError(`AWM needs ⌊N·timeFraction⌋ = ${hi} above ${lo}: more rollout steps or a larger fraction`);
  }
  return Float64Array.from({ length: K + 1 }, (_, k) => Math.floor(lo + ((hi - lo) * k) / K));
}

/**
 * AWM (Xue et al., 2025) on a VelocityNet, behind the same epoch()/run()/evaluate()/save()/resume() contract as
 * DiffusionNFT. θ samples (on-policy, so the code's likelihood ratio is exactly 1 and its clip never acts); θ_old is
 * the EMA anchor of the second KL term, θ_ref the frozen base of the first.
 */
export class AWM<P extends Prompt = Prompt> extends OnlineTrainer<P, AwmEpochStats> {
  readonly #rollout: CleanRollout;
  readonly #advantages: { clip: number; max: number };
  readonly #ema: { rate: number; max: number };
  readonly #native: NativeAwmStepOptions;

  constructor(net: VelocityNet, options: AWMOptions<P>) {
    const opts = resolveOptions('options', options, AWM_SCHEMA);
    super(net, opts);
    const N = this.common.grid.length - 1;
    this.#rollout = cleanRollout(opts);
    this.#advantages = { clip: opts.advClipMax, max: opts.advantageMax };
    this.#ema = { rate: opts.emaDecayRate, max: opts.emaDecayMax };
    this.#native = {
      ...this.optimizer,
      ...pick(opts, AWM_LOSS_SCHEMA),
      seed: this.common.seed,
      times: this.common.grid.subarray(0, N),
      strata: awmStrata(N, opts.timesPerSample, opts.timeFraction, opts.trainInitialTime),
      microBatch: this.common.microBatch,
      firstSample: 0,
    };
    const sets: ('old' | 'ref')[] = [];
    if (this.#native.emaCoef > 0) sets.push('old');
    if (this.#native.klCoef > 0) sets.push('ref');
    this.startPhase(sets);
  }

  /** Continues a run saved by `run({ checkpoint })` or `save()` on the device `placement` names (DiffusionNFT.resume). */
  static async resume<P extends Prompt>(
    path: string,
    options: AWMOptions<P>,
    placement?: ResumePlacement,
  ): Promise<AWM<P>> {
    return OnlineTrainer.resumeWith<P, AwmEpochStats, AWM<P>>(
      'AWM.resume',
      path,
      placement,
      (net) => new AWM<P>(net, options),
    );
  }

  protected fingerprint(): Record<string, unknown> {
    return {
      ...rolloutFingerprint(this.#rollout),
      advantages: this.#advantages,
      ema: this.#ema,
      native: { ...this.#native, times: undefined, strata: Array.from(this.#native.strata), firstSample: undefined },
    };
  }

  protected async rolloutChunk(tokens: Int32Array, rows: number, firstSample: number) {
    return this.rolloutClean(tokens, rows, firstSample, this.#rollout, 'theta');
  }

  protected async train(data: EpochData<P>) {
    const { dataDim: D, condSlots: L } = this.net.config;
    const { clip, max } = this.#advantages;
    const { clipped } = groupAdvantages(data.rewards, data.groupIds, { advClipMax: clip, std: this.common.std });
    const advantages = Float32Array.from(clipped, (a) => (a * max) / clip);
    const steps: (StepStats & AwmStatistics)[] = [];
    for (const { from, to, first } of this.stepShares(data)) {
      const native = { ...this.#native, firstSample: first };
      steps.push(
        await this.net.enqueue(() =>
          this.net.model.awmStep(
            data.samples.slice(from * D, to * D),
            data.tokens.slice(from * L, to * L),
            advantages.slice(from, to),
            to - from,
            native,
          ),
        ),
      );
    }
    // The anchor's soft update after the epoch's steps, with the decay of the step count reached.
    const emaDecay = Math.min(this.#ema.rate * this.net.step, this.#ema.max);
    if (this.#native.emaCoef > 0) this.net.model.blendParams('old', emaDecay, 'theta');
    const mean = (key: 'loss' | 'gradNorm' | 'fm' | 'logQ' | 'kl' | 'emaKl') =>
      steps.reduce((s, x) => s + x[key], 0) / steps.length;
    return {
      loss: mean('loss'),
      gradNorm: mean('gradNorm'),
      lr: steps[steps.length - 1]?.lr ?? 0,
      extra: {
        advantageHistogram: histogram(Float64Array.from(advantages, (a) => (a + max) / (2 * max))),
        fm: mean('fm'),
        logQ: mean('logQ'),
        kl: mean('kl'),
        emaKl: mean('emaKl'),
        emaDecay,
      },
    };
  }
}
