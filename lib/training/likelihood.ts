// The likelihood methods' shared trainer (docs/algorithms.md §3–§4.2, §9): roll out θ with a stochastic step
// (FlowGRPO's SDE or CPS) in a window of the grid recording the per-step log-probabilities, score, normalise
// advantages per group, and train with the PPO-clipped objective (or GRPO-Guard's) on the window's transitions.
// FlowGRPO, Flow-GRPO-Fast, MixGRPO and GRPO-Guard are small subclasses that say where the window lies.

import type { NativeGrpoStepOptions } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import type { VelocityNet } from '../model/net.js';
import { ADV_CLIP_MAX } from '../options/advantage.js';
import { GRPO_LOSS_SCHEMA, type GrpoLossOptions } from '../options/grpo-loss.js';
import { pick, type Resolved, type Rule, withDefaults } from '../options/schema.js';
import { groupAdvantages } from '../rl/advantage.js';
import { SDE_A, sampleSde } from '../sampling/sde.js';
import { ROLLOUT_RULES, resolveInterval } from '../sampling/solvers.js';
import type { Prompt } from './common.js';
import { type EpochData, OnlineTrainer } from './online.js';
import { type EpochStats, ONLINE_SCHEMA, type OnlineOptions } from './online-options.js';

/** Options every likelihood method takes: the official codes' defaults, except where a comment says why not. */
export interface LikelihoodOptions<P extends Prompt = Prompt> extends OnlineOptions<P>, GrpoLossOptions {
  /** Noise level a of the stochastic step: σ_t = a·√(t/(1 − t)) for FlowGRPO's SDE, std = t'·sin(aπ/2) for CPS. */
  sdeA?: number;
  /** Advantages are clipped to ±advClipMax (5). */
  advClipMax?: number;
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

/** Statistics of a likelihood method's epoch. */
export interface LikelihoodEpochStats extends EpochStats {
  /** Fraction of trained transitions whose ratio left [1 − ε, 1 + ε]. */
  clipFraction: number;
  /** ½·mean (log ρ)² of the trained transitions, the code's approximate KL. */
  approxKl: number;
  /** Mean of the ratios. */
  ratioMean: number;
  /** Samples trained on after the zero-advantage filter. */
  trainedSamples: number;
}

/** The option table the likelihood methods share; each method's table sets its official defaults over it. */
export const LIKELIHOOD_SCHEMA = {
  ...withDefaults(ONLINE_SCHEMA, { optimizerSteps: 2 }),
  ...GRPO_LOSS_SCHEMA,
  sdeA: SDE_A,
  advClipMax: ADV_CLIP_MAX,
  cfgScale: ROLLOUT_RULES.cfgScale,
  cfgInterval: { type: 'value' },
  filterZeroAdvantage: { type: 'boolean', default: true },
} as const satisfies Record<keyof LikelihoodOptions, Rule>;

/** How a prompt group is rolled out: the grid, the SDE window [lo, hi) and the ODE after it. */
export interface RolloutPlan {
  grid: Float64Array;
  window: [number, number];
  tail: 'euler' | 'dpm2';
}

/** The fraction of the N transitions trained of a whole-grid SDE rollout, the first ones (0.99: 9 of 10). */
export const TRAIN_FRACTION = { type: 'number', min: 1e-6, max: 1, default: 0.99 } as const satisfies Rule;

/**
 * The transitions trained of a whole-grid SDE rollout, [0, count): the last one into t ≈ 0 never is, its tiny σ
 * makes the log-density overflow.
 */
export function leadingTransitions(N: number, fraction: number): [number, number] {
  return [0, Math.min(N - 1 || 1, Math.max(1, Math.floor(N * fraction)))];
}

/** The SDE over the whole grid. */
function wholeGrid(grid: Float64Array): RolloutPlan {
  return { grid, window: [0, grid.length - 1], tail: 'euler' };
}

function sameGrid(a: Float64Array, b: Float64Array): boolean {
  return a.length === b.length && a.every((t, k) => t === b[k]);
}

/** Two plans that roll out alike: the same grid, window and tail. */
function samePlan(a: RolloutPlan, b: RolloutPlan): boolean {
  return a.tail === b.tail && a.window[0] === b.window[0] && a.window[1] === b.window[1] && sameGrid(a.grid, b.grid);
}

/** The recorded rollout of a run of consecutive samples that share one plan. */
interface Recorded {
  plan: RolloutPlan;
  trajectory: Float32Array; // (N + 1, rows, D)
  logp: Float32Array; // (N, rows)
  means: Float32Array | undefined; // (N, rows, D), GRPO-Guard's
  rows: number;
}

/**
 * The shared trainer of the likelihood methods. There is no separate old policy: log p_old is stored at rollout time,
 * so the first optimiser step of an epoch is exactly on-policy (ratio 1) and later ones are stale. The KL term uses
 * θ_ref, a frozen copy of θ at the start of the phase.
 */
export abstract class LikelihoodTrainer<P extends Prompt, S extends LikelihoodEpochStats> extends OnlineTrainer<P, S> {
  protected readonly native: Omit<NativeGrpoStepOptions, 'trainSteps' | 'firstStep' | 'guard'>;
  readonly #advClipMax: number;
  readonly #filter: boolean;
  readonly #guard: boolean;
  readonly #phaseSets: readonly 'ref'[];

  /** `opts` resolved against the method's table; `guard`: GRPO-Guard's loss on stored step means. */
  protected constructor(net: VelocityNet, opts: Resolved<typeof LIKELIHOOD_SCHEMA>, guard: boolean) {
    super(net, opts);
    const [cfgTMin, cfgTMax] = resolveInterval(opts.cfgInterval, 'options.cfgInterval');
    this.#advClipMax = opts.advClipMax;
    this.#filter = opts.filterZeroAdvantage;
    this.#guard = guard;
    this.native = {
      ...this.optimizer,
      ...pick(opts, GRPO_LOSS_SCHEMA),
      grid: this.common.grid,
      sdeA: opts.sdeA,
      cfgScale: opts.cfgScale,
      cfgTMin,
      cfgTMax,
      microBatch: this.common.microBatch,
    };
    if (opts.sdeA === 0) throw new RangeError('options.sdeA must be > 0: the methods need a stochastic policy');
    if (guard && (opts.sde !== 'flow-grpo' || opts.klCoef !== 0)) {
      throw new RangeError("GRPO-Guard runs the FlowGRPO SDE without a KL term: options.sde 'flow-grpo', klCoef 0");
    }
    this.#phaseSets = opts.klCoef > 0 ? ['ref'] : [];
  }

  /**
   * Starts the RL phase (OnlineTrainer.startPhase with θ_ref when there is a KL term). Each method calls it at the end
   * of its constructor: the phase's run check (under MPI) reads the method's own fields through fingerprint().
   */
  protected startLikelihoodPhase(): void {
    this.startPhase(this.#phaseSets);
  }

  /**
   * The grid, SDE window and tail of the prompt group `group` of the run: group g of epoch e is e·groups + g, and
   * sample s of the run belongs to group ⌊s / groupSize⌋. A plan depends on the group alone, never on how the samples
   * are split into chunks or over ranks.
   */
  protected abstract plan(group: number): RolloutPlan;

  /**
   * The transitions trained of a sample rolled out with `plan`: [first, first + count). Default: the window's.
   */
  protected trained(plan: RolloutPlan): [number, number] {
    return [plan.window[0], plan.window[1] - plan.window[0]];
  }

  /** The initial noise of a chunk, or undefined to draw it per sample from the seed. */
  protected initialNoise(_rows: number, _firstSample: number): Tensor | undefined {
    return undefined;
  }

  /** The method's own statistics of the epoch, from the plans of its groups (in order). */
  protected methodStats(_plans: readonly RolloutPlan[]): Record<string, number> {
    return {};
  }

  protected fingerprint(): Record<string, unknown> {
    // The defaults of options added later are left out, so that checkpoints from before them resume.
    const everywhere = this.native.cfgTMin === 0 && this.native.cfgTMax === 1;
    const interval = everywhere ? { cfgTMin: undefined, cfgTMax: undefined } : {};
    const sde = this.native.sde === 'flow-grpo' ? { sde: undefined } : {};
    return {
      advClipMax: this.#advClipMax,
      filter: this.#filter,
      native: { ...this.native, grid: undefined, ...interval, ...sde },
    };
  }

  /**
   * Rolls out a chunk: each run of consecutive samples whose groups share a plan in one call (a chunk holds several
   * runs only where a method's plan varies between groups, Flow-GRPO-Fast's window). A sample's noise is keyed on its
   * index, so it rolls out alike in any run.
   */
  protected async rolloutChunk(tokens: Int32Array, rows: number, firstSample: number) {
    const L = this.net.config.condSlots;
    const D = this.net.config.dataDim;
    const { groupSize } = this.common;
    const runs: { from: number; to: number; plan: RolloutPlan }[] = [];
    for (let row = 0; row < rows; ) {
      const group = Math.floor((firstSample + row) / groupSize);
      const plan = this.plan(group);
      const last = runs[runs.length - 1];
      const to = Math.min(rows, (group + 1) * groupSize - firstSample);
      if (last !== undefined && samePlan(last.plan, plan)) last.to = to;
      else runs.push({ from: row, to, plan });
      row = to;
    }
    const x = new Float32Array(rows * D);
    const parts: Recorded[] = [];
    for (const { from, to, plan } of runs) {
      const r = await sampleSde(this.net, {
        cond: Tensor.fromInt32(tokens.subarray(from * L, to * L), [to - from, L]),
        grid: plan.grid,
        a: this.native.sdeA,
        sde: this.native.sde,
        window: plan.window,
        tail: plan.tail,
        means: this.#guard,
        noise: this.initialNoise(to - from, firstSample + from),
        cfgScale: this.native.cfgScale,
        cfgInterval: [this.native.cfgTMin, this.native.cfgTMax],
        seed: this.common.seed,
        firstSample: firstSample + from,
        chunk: this.common.chunk,
        logpSum: this.native.logpSum,
      });
      x.set(r.x.storage, from * D);
      parts.push({
        plan,
        trajectory: r.trajectory.storage,
        logp: r.logp.storage,
        means: r.means?.storage,
        rows: to - from,
      });
    }
    return { x: Tensor.from(x, [rows, D]), data: parts };
  }

  protected async train(data: EpochData<P>) {
    const { dataDim: D, condSlots: L } = this.net.config;
    // Clipped once, here: the advantages the loss sees are A_c of docs/algorithms.md §3.3.
    const { clipped: advantages } = groupAdvantages(data.rewards, data.groupIds, {
      advClipMax: this.#advClipMax,
      std: this.common.std,
    });
    // Where each sample's recorded states live: its run of a chunk and its row in it.
    const where: [Recorded, number][] = [];
    for (const chunk of data.chunks) {
      for (const recorded of chunk.data as Recorded[]) {
        for (let row = 0; row < recorded.rows; row++) where.push([recorded, row]);
      }
    }
    // The plans of all the epoch's groups, the same on every rank (this one rolled out a share of them).
    const { groups } = this.common;
    const plans = Array.from({ length: groups }, (_, g) => this.plan(this.epochCount * groups + g));
    const grid = (plans[0] as RolloutPlan).grid;
    const count = this.trained(plans[0] as RolloutPlan)[1];
    if (plans.some((p) => !sameGrid(p.grid, grid) || this.trained(p)[1] !== count)) {
      throw new RangeError('the groups of an epoch must share the grid and the number of trained transitions');
    }
    const N = grid.length - 1;
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
      const means = this.#guard ? new Float32Array(N * B * D) : null;
      const logpOld = new Float32Array(N * B);
      const tokens = new Int32Array(B * L);
      const adv = new Float32Array(B);
      const firstStep = new Int32Array(B);
      part.forEach((sample, b) => {
        const [recorded, row] = where[sample - data.from] as [Recorded, number];
        firstStep[b] = this.trained(recorded.plan)[0];
        for (let n = 0; n <= N; n++) {
          const from = (n * recorded.rows + row) * D;
          trajectory.set(recorded.trajectory.subarray(from, from + D), (n * B + b) * D);
          if (n < N) {
            logpOld[n * B + b] = recorded.logp[n * recorded.rows + row] as number;
            means?.set((recorded.means as Float32Array).subarray(from, from + D), (n * B + b) * D);
          }
        }
        tokens.set(data.tokens.subarray(sample * L, (sample + 1) * L), b * L);
        adv[b] = advantages[sample] as number;
      });
      const options = { ...this.native, grid, trainSteps: count, firstStep, guard: this.#guard };
      const stats = await this.net.enqueue(() =>
        this.net.model.grpoStep(trajectory, tokens, adv, logpOld, B, options, means),
      );
      totals.loss += stats.loss / S;
      totals.gradNorm += stats.gradNorm / S;
      totals.clipFraction += stats.clipFraction / S;
      totals.approxKl += stats.approxKl / S;
      totals.ratioMean += stats.ratioMean / S;
      totals.lr = stats.lr;
    }
    const { lr, loss, gradNorm, ...extra } = totals;
    const own = this.methodStats(plans);
    return {
      loss,
      gradNorm,
      lr,
      extra: { ...extra, trainedSamples: kept.length, ...own } as unknown as Omit<S, keyof EpochStats>,
    };
  }
}

/** Options of the whole-grid methods (FlowGRPO, GRPO-Guard): the likelihood options and the fraction trained. */
export interface WholeGridOptions<P extends Prompt = Prompt> extends LikelihoodOptions<P> {
  /** Fraction of the N transitions trained, the first ones in order (0.99: 9 of 10). */
  trainFraction?: number;
}

/** The whole-grid methods' option rules beyond LIKELIHOOD_SCHEMA. */
export const WHOLE_GRID_RULES = { trainFraction: TRAIN_FRACTION } as const;

/**
 * A likelihood method that rolls out the SDE over the whole grid and trains its leading transitions (FlowGRPO,
 * GRPO-Guard); the number trained is part of the run's fingerprint.
 */
export abstract class WholeGridTrainer<P extends Prompt> extends LikelihoodTrainer<P, LikelihoodEpochStats> {
  readonly #trained: [number, number];

  protected constructor(
    net: VelocityNet,
    opts: Resolved<typeof LIKELIHOOD_SCHEMA> & { trainFraction: number },
    guard: boolean,
  ) {
    super(net, opts, guard);
    this.#trained = leadingTransitions(this.common.grid.length - 1, opts.trainFraction);
    this.startLikelihoodPhase();
  }

  protected override fingerprint(): Record<string, unknown> {
    const { native, ...rest } = super.fingerprint();
    return { ...rest, native: { ...(native as object), trainSteps: this.#trained[1] } };
  }

  protected override plan(): RolloutPlan {
    return wholeGrid(this.common.grid);
  }

  protected override trained(): [number, number] {
    return this.#trained;
  }
}
