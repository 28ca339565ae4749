// DiffusionNFT (docs/algorithms.md §2 and §4.1): roll out θ_old with any solver, score the clean samples, turn rewards into
// optimality probabilities, train θ with the fused NFT loss, soft-update θ_old.

import type { NativeNftStepOptions } from '../core/native.js';
import type { VelocityNet } from '../model/net.js';
import { NFT_LOSS_SCHEMA, type NftLossOptions } from '../options/nft-loss.js';
import type { StepStats } from '../options/optimizer.js';
import { pick, type Rule, resolveOptions, withDefaults } from '../options/schema.js';
import { optimalityProbability } from '../rl/advantage.js';
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

/** The η schedule of the soft update θ_old ← η·θ_old + (1 − η)·θ, as a function of the optimiser step i. */
export type EtaSchedule = 'default' | 'delayed' | 'on-policy' | number | ((step: number) => number);

/**
 * η_i of a schedule (docs/algorithms.md §2.6): 'default' min(0.001·i, 0.5); 'delayed' (the OCR one) 0 before step 75,
 * then min(0.0075·(i − 75), 0.999); 'on-policy' 0 (a hard copy); a number: constant; a function: yours.
 */
export function etaAt(schedule: EtaSchedule, step: number): number {
  if (typeof schedule === 'function') return schedule(step);
  if (typeof schedule === 'number') return schedule;
  if (schedule === 'default') return Math.min(0.001 * step, 0.5);
  if (schedule === 'delayed') return step < 75 ? 0 : Math.min(0.0075 * (step - 75), 0.999);
  return 0;
}

/** Options of a DiffusionNFT trainer; defaults follow the official code where they make sense at this scale. */
export interface DiffusionNFTOptions<P extends Prompt = Prompt>
  extends OnlineOptions<P>,
    NftLossOptions,
    CleanRolloutOptions {
  /**
   * Rollout solver (default 'dpm2', deterministic, no CFG, as the code); 'sde' rolls out with FlowGRPO's SDE, the
   * paper's sampler ablation (docs/algorithms.md §2.7); 'sa-solver' with SA-Solver (§2.8), AWM's sampler.
   */
  solver?: SolverName | 'sde';
  /** Training times: 'grid' (default) draws distinct times of the rollout grid per sample, as the code; 'uniform'
   * draws t ~ U(0, 1). */
  timeSampling?: 'grid' | 'uniform';
  /** Fraction of the N grid times each sample is trained at (default 0.99: 9 of 10), or the count for 'uniform'. */
  timeFraction?: number;
  /** Soft-update schedule of θ_old (default 'default'). */
  eta?: EtaSchedule;
}

/** Statistics of a DiffusionNFT epoch. */
export interface NftEpochStats extends EpochStats {
  /** Counts of r in 10 equal bins of [0, 1]. */
  rHistogram: number[];
  /** η of the soft update applied after the epoch. */
  eta: number;
}

/** The option table of DiffusionNFT. */
const NFT_SCHEMA = {
  ...withDefaults(ONLINE_SCHEMA, { optimizerSteps: 1 }),
  ...NFT_LOSS_SCHEMA,
  ...CLEAN_ROLLOUT_SCHEMA,
  timeSampling: { type: 'enum', values: ['grid', 'uniform'], default: 'grid' },
  timeFraction: { type: 'number', min: 1e-6, max: 1, default: 0.99 },
  eta: { type: 'value' },
} as const satisfies Record<keyof DiffusionNFTOptions, Rule>;

/**
 * DiffusionNFT (Zheng et al., 2025) on a VelocityNet: `await nft.epoch()` runs one sampling round and its optimiser
 * steps; `run()` loops with progress, evaluation, abort and checkpoints. Creating the trainer starts an RL phase:
 * θ_old (and θ_ref for the KL term, and the EMA) become copies of θ and the optimiser is new. `resume()` continues
 * a saved run exactly.
 */
export class DiffusionNFT<P extends Prompt = Prompt> extends OnlineTrainer<P, NftEpochStats> {
  readonly #rollout: CleanRollout;
  readonly #eta: EtaSchedule;
  readonly #native: NativeNftStepOptions;

  constructor(net: VelocityNet, options: DiffusionNFTOptions<P>) {
    const opts = resolveOptions('options', options, NFT_SCHEMA);
    super(net, opts);
    const { timeSampling: sampling, timeFraction: fraction } = opts;
    const eta = (opts.eta ?? 'default') as EtaSchedule;
    const etaOk =
      typeof eta === 'function' ||
      (typeof eta === 'number' && eta >= 0 && eta <= 1) ||
      eta === 'default' ||
      eta === 'delayed' ||
      eta === 'on-policy';
    if (!etaOk)
      throw new RangeError(`options.eta must be 'default', 'delayed', 'on-policy', a number in [0, 1] or a function`);
    const loss = pick(opts, NFT_LOSS_SCHEMA);
    const { grid } = this.common;
    this.#rollout = cleanRollout(opts);
    this.#eta = eta;
    this.#native = {
      ...this.optimizer,
      ...loss,
      seed: this.common.seed,
      timesPerSample: Math.max(1, Math.floor((grid.length - 1) * fraction)),
      microBatch: this.common.microBatch,
      firstSample: 0,
      ...(sampling === 'grid' ? { times: grid.subarray(0, grid.length - 1) } : {}),
    };
    this.startPhase(loss.klCoef > 0 ? ['old', 'ref'] : ['old']);
  }

  /**
   * Continues a run saved by `run({ checkpoint })` or `save()`: the network with θ, θ_old, θ_ref, the EMA and the
   * optimiser state, and the epoch count. The options must be given again (functions are not saved); the numeric
   * ones must match those of the saved run. `placement` puts the network on a device, as when it was created (a run
   * trained with `{ device: 'cuda' }` resumes there only when told so; default the CPU).
   */
  static async resume<P extends Prompt>(
    path: string,
    options: DiffusionNFTOptions<P>,
    placement?: ResumePlacement,
  ): Promise<DiffusionNFT<P>> {
    return OnlineTrainer.resumeWith<P, NftEpochStats, DiffusionNFT<P>>(
      'DiffusionNFT.resume',
      path,
      placement,
      (net) => new DiffusionNFT<P>(net, options),
    );
  }

  protected fingerprint(): Record<string, unknown> {
    const eta = typeof this.#eta === 'function' ? 'function' : this.#eta;
    // firstSample is where a step's rows sit in the global batch, not an option of the run.
    return {
      ...rolloutFingerprint(this.#rollout),
      eta,
      native: { ...this.#native, times: undefined, firstSample: undefined },
    };
  }

  protected async rolloutChunk(tokens: Int32Array, rows: number, firstSample: number) {
    return this.rolloutClean(tokens, rows, firstSample, this.#rollout, 'old');
  }

  protected async train(data: EpochData<P>) {
    const { dataDim: D, condSlots: L } = this.net.config;
    const { r } = optimalityProbability(data.rewards, data.groupIds, {
      advClipMax: this.#native.advClipMax,
      std: this.common.std,
    });
    const steps: StepStats[] = [];
    // η of the soft update after the epoch's steps, checked before any of them changes the network.
    const etaStep = this.net.step + this.common.optimizerSteps;
    const eta = etaAt(this.#eta, etaStep);
    if (!(typeof eta === 'number' && eta >= 0 && eta <= 1))
      throw new RangeError(`the eta schedule gave ${eta} at step ${etaStep}; it must be in [0, 1]`);
    for (const { from, to, first } of this.stepShares(data)) {
      const native = { ...this.#native, firstSample: first };
      steps.push(
        await this.net.enqueue(() =>
          this.net.model.nftStep(
            data.samples.slice(from * D, to * D),
            data.tokens.slice(from * L, to * L),
            r.slice(from, to),
            to - from,
            native,
          ),
        ),
      );
    }
    // The soft update of θ_old, after the epoch's optimiser steps.
    this.net.model.blendParams('old', eta, 'theta');
    const mean = (key: 'loss' | 'gradNorm') => steps.reduce((s, x) => s + x[key], 0) / steps.length;
    return {
      loss: mean('loss'),
      gradNorm: mean('gradNorm'),
      lr: steps[steps.length - 1]?.lr ?? 0,
      extra: { rHistogram: histogram(r), eta },
    };
  }
}
