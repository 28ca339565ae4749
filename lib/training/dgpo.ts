// DGPO, direct group preference optimisation (docs/algorithms.md §8): roll out θ (θ_old, the fast EMA, once the step
// count passes switchEmaRef) with a deterministic solver, score the clean samples, train θ with the fused DGPO loss
// at the epoch's M high-noise times on group-shared noise, and soft-update θ_old after every optimiser step.

import { type DgpoStatistics, type NativeDgpoStepOptions, native } from '../core/native.js';
import { TIME_STREAM } from '../core/random.js';
import type { VelocityNet } from '../model/net.js';
import { ADV_CLIP_MAX } from '../options/advantage.js';
import { DGPO_LOSS_SCHEMA, type DgpoLossOptions } from '../options/dgpo-loss.js';
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
import type { Prompt } from './common.js';
import { type EpochData, OnlineTrainer } from './online.js';
import { type EpochStats, ONLINE_SCHEMA, type OnlineOptions, type ResumePlacement } from './online-options.js';

/** Options of a DGPO trainer: the official code's GenEval defaults, except where a comment says why not. */
export interface DGPOOptions<P extends Prompt = Prompt> extends OnlineOptions<P>, DgpoLossOptions, CleanRolloutOptions {
  /** Rollout solver (default 'dpm2', deterministic, as the code's DPM-Solver++); 'sde': FlowGRPO's SDE; 'sa-solver'. */
  solver?: SolverName | 'sde';
  /** Advantages are clipped to ±advClipMax (5). */
  advClipMax?: number;
  /** M, the distinct grid times of an epoch at which every sample is trained (4). */
  timesPerEpoch?: number;
  /** The times are drawn among grid indices 0 … truncSteps, the highest noise levels (4). */
  truncSteps?: number;
  /** Once the step count passes this, θ_old (the fast EMA) rolls out instead of θ (500, GenEval's; the base: 200). */
  switchEmaRef?: number;
  /** θ_old's decay after step s is min(emaDecayRate·s, emaDecayMax) (0.001). */
  emaDecayRate?: number;
  /** Cap of θ_old's decay (0.3). */
  emaDecayMax?: number;
}

/** Statistics of a DGPO epoch. */
export interface DgpoEpochStats extends EpochStats {
  /** Fraction of trained rows whose gradient the clip stopped. */
  clipFraction: number;
  /** Mean group weight σ(S_g) of the trained rows. */
  weightMean: number;
  /** The epoch's training times. */
  times: number[];
  /** Whether θ_old rolled out this epoch's samples. */
  emaRollout: boolean;
}

/** The option table of DGPO: the per-group std of the official GenEval config. */
const DGPO_SCHEMA = {
  ...withDefaults(ONLINE_SCHEMA, { optimizerSteps: 1, std: 'group' }),
  ...DGPO_LOSS_SCHEMA,
  ...CLEAN_ROLLOUT_SCHEMA,
  advClipMax: ADV_CLIP_MAX,
  timesPerEpoch: { type: 'int', min: 1, max: 10000, default: 4 },
  truncSteps: { type: 'int', min: 0, max: 10000, default: 4 },
  switchEmaRef: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 500 },
  emaDecayRate: { type: 'number', min: 0, max: 1, default: 0.001 },
  emaDecayMax: { type: 'number', min: 0, max: 1, default: 0.3 },
} as const satisfies Record<keyof DGPOOptions, Rule>;

/**
 * DGPO (Luo et al., 2025) on a VelocityNet, behind the same epoch()/run()/evaluate()/save()/resume() contract as
 * DiffusionNFT. An optimiser step holds whole prompt groups (the group weight sums over every member, over every
 * rank); θ_ref is the frozen base, θ_old the fast EMA: the clip's old policy, the late sampler and, with emaRef,
 * the reference of the group weight.
 */
export class DGPO<P extends Prompt = Prompt> extends OnlineTrainer<P, DgpoEpochStats> {
  readonly #rollout: CleanRollout;
  readonly #advClipMax: number;
  readonly #times: { count: number; trunc: number };
  readonly #ema: { switchAt: number; rate: number; max: number };
  readonly #native: Omit<NativeDgpoStepOptions, 'times'>;

  constructor(net: VelocityNet, options: DGPOOptions<P>) {
    const opts = resolveOptions('options', options, DGPO_SCHEMA);
    super(net, opts);
    const N = this.common.grid.length - 1;
    const trunc = Math.min(opts.truncSteps, N - 1);
    if (opts.timesPerEpoch > trunc + 1) {
      throw new RangeError(
        `options.timesPerEpoch = ${opts.timesPerEpoch} distinct times do not fit grid indices 0 … ${trunc}`,
      );
    }
    if (this.common.groups % this.common.optimizerSteps !== 0) {
      throw new RangeError(
        `options.groups = ${this.common.groups} do not split into ${this.common.optimizerSteps} optimiser steps of ` +
          'whole groups: DGPO weighs each group over all its members',
      );
    }
    this.#rollout = cleanRollout(opts);
    this.#advClipMax = opts.advClipMax;
    this.#times = { count: opts.timesPerEpoch, trunc };
    this.#ema = { switchAt: opts.switchEmaRef, rate: opts.emaDecayRate, max: opts.emaDecayMax };
    this.#native = {
      ...this.optimizer,
      ...pick(opts, DGPO_LOSS_SCHEMA),
      groupSize: this.common.groupSize,
      seed: this.common.seed,
      groups: this.common.groups,
      microBatch: this.common.microBatch,
    };
    const needsRef = this.#native.klCoef > 0 || !this.#native.emaRef;
    this.startPhase(needsRef ? ['old', 'ref'] : ['old']);
  }

  /** Continues a run saved by `run({ checkpoint })` or `save()` on the device `placement` names (DiffusionNFT.resume). */
  static async resume<P extends Prompt>(
    path: string,
    options: DGPOOptions<P>,
    placement?: ResumePlacement,
  ): Promise<DGPO<P>> {
    return OnlineTrainer.resumeWith<P, DgpoEpochStats, DGPO<P>>(
      'DGPO.resume',
      path,
      placement,
      (net) => new DGPO<P>(net, options),
    );
  }

  protected fingerprint(): Record<string, unknown> {
    return {
      ...rolloutFingerprint(this.#rollout),
      advClipMax: this.#advClipMax,
      times: this.#times,
      ema: this.#ema,
      native: this.#native,
    };
  }

  /** Whether θ_old rolls out now. */
  get #emaRollout(): boolean {
    return this.net.step > this.#ema.switchAt;
  }

  protected async rolloutChunk(tokens: Int32Array, rows: number, firstSample: number) {
    const params = this.#emaRollout ? 'old' : 'theta';
    return this.rolloutClean(tokens, rows, firstSample, this.#rollout, params);
  }

  /** The epoch's M distinct training times among grid indices 0 … trunc, the same on every rank. */
  #epochTimes(): Float64Array {
    const { count, trunc } = this.#times;
    const u = new Float32Array(trunc + 1);
    native().randomFill(u, this.common.seed, TIME_STREAM, this.epochCount * (trunc + 1), 'uniform');
    const order = Array.from(u.keys()).sort((a, b) => (u[a] as number) - (u[b] as number) || a - b);
    return Float64Array.from(order.slice(0, count), (i) => this.common.grid[i] as number);
  }

  protected async train(data: EpochData<P>) {
    const { dataDim: D, condSlots: L } = this.net.config;
    const { clipped } = groupAdvantages(data.rewards, data.groupIds, {
      advClipMax: this.#advClipMax,
      std: this.common.std,
    });
    const advantages = Float32Array.from(clipped);
    const times = this.#epochTimes();
    const emaRollout = this.#emaRollout;
    const steps: (StepStats & DgpoStatistics)[] = [];
    for (const { from, to } of this.stepShares(data)) {
      const native = { ...this.#native, times };
      steps.push(
        await this.net.enqueue(() =>
          this.net.model.dgpoStep(
            data.samples.slice(from * D, to * D),
            data.tokens.slice(from * L, to * L),
            advantages.slice(from, to),
            data.groupIds.slice(from, to),
            to - from,
            native,
          ),
        ),
      );
      // The fast EMA follows θ after every optimiser step.
      this.net.model.blendParams('old', Math.min(this.#ema.rate * this.net.step, this.#ema.max), 'theta');
    }
    const mean = (key: 'loss' | 'gradNorm' | 'clipFraction' | 'weightMean') =>
      steps.reduce((s, x) => s + x[key], 0) / steps.length;
    return {
      loss: mean('loss'),
      gradNorm: mean('gradNorm'),
      lr: steps[steps.length - 1]?.lr ?? 0,
      extra: {
        clipFraction: mean('clipFraction'),
        weightMean: mean('weightMean'),
        times: Array.from(times),
        emaRollout,
      },
    };
  }
}
