// The DiffusionNFT epoch loop (algorithms.md 2 and 4.1): roll out θ_old with any solver, score the clean samples,
// turn rewards into optimality probabilities, train θ with the fused NFT loss, soft-update θ_old.
import { type Checkpoint, loadCheckpoint, writeCheckpoint } from '../checkpoint.js';
import { VelocityNet } from '../net.js';
import { type NftLossOptions, optimalityProbability, resolveNftLoss } from '../nft.js';
import { numberOption, objectOption, rejectUnknown } from '../options.js';
import { type OptimizerOptions, resolveOptimizer, type StepStats } from '../pretrain.js';
import { type SolverName, sample, timeGrid } from '../solvers.js';
import { Tensor } from '../tensor.js';
import {
  checkPrompts,
  drawGroups,
  histogram,
  meanStd,
  type Prompt,
  promptTokens,
  type ResolvedRewards,
  type Rewards,
  resolveRewards,
  score,
} from './common.js';

/** The η schedule of the soft update θ_old ← η·θ_old + (1 − η)·θ, as a function of the optimiser step i. */
export type EtaSchedule = 'default' | 'delayed' | 'on-policy' | number | ((step: number) => number);

/** η_i of a schedule (algorithms.md 2.6): 'default' min(0.001·i, 0.5); 'delayed' (OCR) 0 before step 75, then
 * min(0.0075·(i − 75), 0.999); 'on-policy' 0 (hard copy); a number: constant; a function: yours. */
export function etaAt(schedule: EtaSchedule, step: number): number {
  if (typeof schedule === 'function') return schedule(step);
  if (typeof schedule === 'number') return schedule;
  if (schedule === 'default') return Math.min(0.001 * step, 0.5);
  if (schedule === 'delayed') return step < 75 ? 0 : Math.min(0.0075 * (step - 75), 0.999);
  return 0;
}

/** Options of a DiffusionNFT trainer; defaults follow the official code where they make sense at this scale. */
export interface DiffusionNFTOptions<P extends Prompt = Prompt> extends OptimizerOptions, NftLossOptions {
  /** Training prompts; each epoch draws `groups` of them. */
  prompts: readonly P[];
  /** One reward function, a named one, or several summed with weights. */
  rewards: Rewards<P>;
  /** Prompts per epoch, M (default 16; the code: 48). */
  groups?: number;
  /** Samples per prompt, K ≥ 2 (default 8; the code: 24). */
  groupSize?: number;
  /** Rollout solver (default 'dpm2', deterministic, no CFG, as the code). */
  solver?: SolverName;
  /** Rollout steps N (default 10). */
  steps?: number;
  /** Rollout time grid (default 'uniform'; 'sd3' is the code's shifted grid), see timeGrid. */
  gridSchedule?: 'uniform' | 'sd3';
  /** Shift of the rollout grid (see timeGrid). */
  shift?: number;
  /** Training times: 'grid' (default) draws distinct times of the rollout grid per sample, as the code; 'uniform'
   * draws t ~ U(0, 1). */
  timeSampling?: 'grid' | 'uniform';
  /** Fraction of the N grid times each sample is trained at (default 0.99: 9 of 10), or the count for 'uniform'. */
  timeFraction?: number;
  /** Optimiser steps per epoch (default 1; the code uses 2 for OCR): the epoch's samples are split between them. */
  optimizerSteps?: number;
  /** (sample, time) rows per forward/backward: gradient accumulation bounds memory (default 0: all at once). */
  microBatch?: number;
  /** Soft-update schedule of θ_old (default 'default'). */
  eta?: EtaSchedule;
  /** Reward normaliser: global std (default, as the code) or per group. */
  std?: 'global' | 'group';
  /** Keep an EMA of θ for evaluation, with decay min((1 + s)/(10 + s), ema) (default 0.9 as the code; 0 = off). */
  ema?: number;
  /** Seed of every draw: prompts, rollout noise, training times and noise (default 0). */
  seed?: number;
  /** Samples per native rollout call (default 1024). */
  chunk?: number;
}

/** Statistics of one epoch. */
export interface NftEpochStats {
  epoch: number;
  /** Optimiser steps taken so far. */
  step: number;
  /** Mean and standard deviation of the total reward of the epoch's samples (from θ_old). */
  reward: number;
  rewardStd: number;
  /** Mean of each named reward. */
  rewards: Record<string, number>;
  /** Counts of r in 10 equal bins of [0, 1]. */
  rHistogram: number[];
  /** Mean NFT loss, gradient norm (before clipping) and learning rate of the epoch's optimiser steps. */
  loss: number;
  gradNorm: number;
  lr: number;
  /** η of the soft update applied after the epoch. */
  eta: number;
  /** Seconds spent sampling (rewards overlap with it), scoring, training, and in total. */
  seconds: { sample: number; reward: number; train: number; total: number };
}

/** Options of run(). */
export interface RunOptions {
  epochs: number;
  /** Called after every epoch (and evaluation). */
  onProgress?: (stats: NftEpochStats, evaluation?: Evaluation) => void;
  /** Stops before the next epoch once aborted; an epoch in flight finishes (or, if still sampling, is discarded). */
  signal?: AbortSignal;
  /** Saves a checkpoint to `path` every `every` epochs (default 1) and at the end. */
  checkpoint?: { path: string; every?: number };
  /** Evaluates every `every` epochs and at the end. */
  evaluate?: EvaluateOptions<Prompt> & { every?: number };
}

/** Options of evaluate(). */
export interface EvaluateOptions<P extends Prompt = Prompt> {
  /** Held-out prompts (default: the training prompts). */
  prompts?: readonly P[];
  /** Samples per prompt (default 4). */
  samplesPerPrompt?: number;
  /** Deterministic ODE steps (default 40, Euler, as the code's evaluation). */
  steps?: number;
  solver?: SolverName;
  /** Parameters: 'ema' when kept (default), else 'theta'. */
  params?: 'theta' | 'ema' | 'old';
  /** Seed of the evaluation noise (default 12345, the same every time so evaluations compare). */
  seed?: number;
}

/** Mean rewards of an evaluation. */
export interface Evaluation {
  reward: number;
  rewards: Record<string, number>;
  samples: number;
}

const OPTION_FIELDS = [
  'prompts',
  'rewards',
  'groups',
  'groupSize',
  'solver',
  'steps',
  'gridSchedule',
  'shift',
  'timeSampling',
  'timeFraction',
  'optimizerSteps',
  'microBatch',
  'eta',
  'std',
  'ema',
  'seed',
  'chunk',
  'beta',
  'advClipMax',
  'adaptive',
  'positiveOnly',
  'klCoef',
  'lr',
  'beta1',
  'beta2',
  'eps',
  'weightDecay',
  'maxGradNorm',
  'warmupSteps',
  'schedule',
  'totalSteps',
  'minLr',
];
const PROMPT_STREAM = 6;
const FORMAT = 'DiffusionNFT/1';

/**
 * DiffusionNFT (Zheng et al., 2025) on a VelocityNet: `await nft.epoch()` runs one sampling round and its optimiser
 * steps; `run()` loops with progress, abort and checkpoints. Creating the trainer adds the network's θ_old (and,
 * for the KL term, θ_ref) as copies of θ; `resume()` continues from a checkpoint exactly.
 */
export class DiffusionNFT<P extends Prompt = Prompt> {
  readonly net: VelocityNet;
  readonly #prompts: readonly P[];
  readonly #rewards: ResolvedRewards<P>;
  readonly #o: {
    groups: number;
    groupSize: number;
    solver: SolverName;
    grid: Float64Array;
    timesPerSample: number;
    optimizerSteps: number;
    eta: EtaSchedule;
    std: 'global' | 'group';
    ema: number;
    seed: number;
    chunk: number;
  };
  readonly #native: Record<string, unknown>;
  #epoch = 0;
  #busy = false;

  constructor(net: VelocityNet, options: DiffusionNFTOptions<P>) {
    if (!(net instanceof VelocityNet)) throw new TypeError('net must be a VelocityNet');
    const opts = objectOption('options', options);
    rejectUnknown('DiffusionNFT options', opts, OPTION_FIELDS);
    const { condSlots, vocabSize } = net.config;
    this.#prompts = checkPrompts<P>('options.prompts', opts.prompts, condSlots, vocabSize);
    this.#rewards = resolveRewards<P>(opts.rewards);
    const int = (field: string, min: number, max: number, fallback: number) =>
      numberOption('options', opts, field, { kind: 'int', min, max }, fallback);
    const groupSize = int('groupSize', 1, 1 << 16, 8);
    if (groupSize < 2) throw new RangeError('options.groupSize must be at least 2: advantages compare a group');
    const solver = (opts.solver ?? 'dpm2') as SolverName;
    if (!['euler', 'heun', 'dpm2'].includes(solver))
      throw new RangeError(`options.solver must be 'euler', 'heun' or 'dpm2'`);
    const steps = int('steps', 1, 10000, 10);
    const grid = timeGrid(steps, {
      schedule: (opts.gridSchedule ?? 'uniform') as 'uniform',
      shift: opts.shift as number | undefined,
    });
    const sampling = opts.timeSampling ?? 'grid';
    if (sampling !== 'grid' && sampling !== 'uniform')
      throw new RangeError(`options.timeSampling must be 'grid' or 'uniform'`);
    const fraction = numberOption('options', opts, 'timeFraction', { kind: 'number', min: 1e-6, max: 1 }, 0.99);
    const timesPerSample = Math.max(1, Math.floor(steps * fraction));
    const eta = (opts.eta ?? 'default') as EtaSchedule;
    const etaOk =
      typeof eta === 'function' ||
      (typeof eta === 'number' && eta >= 0 && eta <= 1) ||
      eta === 'default' ||
      eta === 'delayed' ||
      eta === 'on-policy';
    if (!etaOk)
      throw new RangeError(`options.eta must be 'default', 'delayed', 'on-policy', a number in [0, 1] or a function`);
    const std = opts.std ?? 'global';
    if (std !== 'global' && std !== 'group') throw new RangeError(`options.std must be 'global' or 'group'`);
    const seed = int('seed', 0, Number.MAX_SAFE_INTEGER, 0);
    this.#o = {
      groups: int('groups', 1, 1 << 16, 16),
      groupSize,
      solver,
      grid,
      timesPerSample,
      optimizerSteps: int('optimizerSteps', 1, 1 << 16, 1),
      eta,
      std,
      ema: numberOption('options', opts, 'ema', { kind: 'number', min: 0, max: 1 }, 0.9),
      seed,
      chunk: int('chunk', 1, 1 << 24, 1024),
    };
    if (this.#o.optimizerSteps > this.#o.groups * groupSize) {
      throw new RangeError('options.optimizerSteps must not exceed the samples per epoch');
    }
    const optimizer = resolveOptimizer('options', opts);
    const loss = resolveNftLoss('options', opts);
    this.#native = {
      ...optimizer,
      ...loss,
      seed,
      timesPerSample,
      microBatch: int('microBatch', 0, 1 << 24, 0),
      ...(sampling === 'grid' ? { times: grid.subarray(0, grid.length - 1) } : {}),
    };
    this.net = net;
    // The start of the RL phase: θ_old, θ_ref (the KL term's frozen base) and the EMA are copies of θ, and the
    // optimiser is a new one (as the code's), so η and the learning-rate schedule count this phase's steps.
    net.assertIdle('DiffusionNFT');
    net.model.copyParams('old', 'theta');
    if ((loss.klCoef as number) > 0) net.model.copyParams('ref', 'theta');
    if (this.#o.ema > 0) net.model.copyParams('ema', 'theta');
    net.model.resetOptimizer();
  }

  /**
   * Continues a run saved by `run({ checkpoint })` or `save()`: the network with θ, θ_old, θ_ref, the EMA and the
   * optimiser state, and the epoch count. The options must be given again (functions are not saved); the numeric
   * ones must match those of the saved run.
   */
  static async resume<P extends Prompt>(path: string, options: DiffusionNFTOptions<P>): Promise<DiffusionNFT<P>> {
    const checkpoint: Checkpoint = await loadCheckpoint(path);
    const state = JSON.parse(checkpoint.trainer ?? '{}') as { format?: string; epoch?: number; fingerprint?: string };
    if (state.format !== FORMAT || !Number.isSafeInteger(state.epoch)) {
      checkpoint.net.dispose();
      throw new RangeError(`${path} holds no DiffusionNFT state (save it with run({ checkpoint }) or save())`);
    }
    const trainer = new DiffusionNFT<P>(checkpoint.net, options);
    if (trainer.#fingerprint() !== state.fingerprint) {
      checkpoint.net.dispose();
      throw new RangeError(`${path} was saved with other options: ${state.fingerprint}`);
    }
    // The constructor started a new phase; put back the saved parameter sets and optimiser.
    await loadCheckpoint(path, { into: checkpoint.net });
    trainer.#epoch = state.epoch as number;
    return trainer;
  }

  /** Epochs completed. */
  get epochCount(): number {
    return this.#epoch;
  }

  /** The numeric options that determine a run, to check a resume against. */
  #fingerprint(): string {
    const { grid, eta, ...rest } = this.#o;
    const native = { ...this.#native, times: undefined };
    return JSON.stringify({
      ...rest,
      steps: grid.length - 1,
      eta: typeof eta === 'function' ? 'function' : eta,
      native,
    });
  }

  /** Writes the network (all parameter sets, optimiser state) and the trainer's epoch atomically to `path`. */
  async save(path: string): Promise<void> {
    const trainer = JSON.stringify({ format: FORMAT, epoch: this.#epoch, fingerprint: this.#fingerprint() });
    await writeCheckpoint(path, this.net, this.net.model.hasOptimizerState(), { 'dnft.trainer': trainer });
  }

  /**
   * One epoch: M·K rollouts of θ_old, rewards (scored chunk by chunk while the next chunk samples), r, the
   * optimiser steps and the soft update. If a reward fails, nothing is applied and the error names it.
   */
  async epoch(signal?: AbortSignal): Promise<NftEpochStats> {
    if (this.#busy) throw new Error('DiffusionNFT.epoch: an epoch is already running; await it first');
    this.#busy = true;
    try {
      return await this.#runEpoch(signal);
    } finally {
      this.#busy = false;
    }
  }

  async #runEpoch(signal?: AbortSignal): Promise<NftEpochStats> {
    const o = this.#o;
    const { dataDim: D, condSlots: L } = this.net.config;
    const started = performance.now();
    const drawn = drawGroups(this.#prompts, o.groups, o.groupSize, o.seed, this.#epoch, PROMPT_STREAM);
    const n = drawn.prompts.length;
    const tokens = promptTokens(drawn.prompts, L);
    const samples = new Float32Array(n * D);

    // (a) Rollouts of θ_old, one native call per chunk; (b) each chunk's rewards run while the next one samples.
    const scoring: Promise<Awaited<ReturnType<typeof score<P>>>>[] = [];
    let rewardSeconds = 0;
    for (let start = 0; start < n; start += o.chunk) {
      signal?.throwIfAborted();
      const rows = Math.min(o.chunk, n - start);
      const { x } = await sample(this.net, {
        cond: Tensor.fromInt32(tokens.slice(start * L, (start + rows) * L), [rows, L]),
        solver: o.solver,
        grid: o.grid,
        seed: o.seed,
        firstSample: this.#epoch * n + start,
        chunk: o.chunk,
        params: 'old',
      });
      samples.set(x.storage, start * D);
      const chunkPrompts = drawn.prompts.slice(start, start + rows);
      scoring.push(
        (async () => {
          const t0 = performance.now();
          const result = await score(this.#rewards, x, chunkPrompts);
          rewardSeconds += (performance.now() - t0) / 1000;
          return result;
        })(),
      );
    }
    const sampled = performance.now();
    const parts = await Promise.all(scoring);
    const rewards = new Float64Array(n);
    const named: Record<string, number> = {};
    let offset = 0;
    for (const part of parts) {
      rewards.set(part.total, offset);
      for (const [name, values] of Object.entries(part.parts)) {
        named[name] = (named[name] ?? 0) + values.reduce((s, v) => s + v, 0) / n;
      }
      offset += part.total.length;
    }
    signal?.throwIfAborted();
    const scored = performance.now();

    // (c) Rewards → r, then the optimiser steps, each on its share of the groups.
    const { r } = optimalityProbability(rewards, drawn.groupIds, {
      advClipMax: this.#native.advClipMax as number,
      std: o.std,
    });
    const steps: StepStats[] = [];
    for (let k = 0; k < o.optimizerSteps; k++) {
      const from = Math.floor((k * n) / o.optimizerSteps);
      const to = Math.floor(((k + 1) * n) / o.optimizerSteps);
      steps.push(
        await this.net.enqueue(() =>
          this.net.model.nftStep(
            samples.slice(from * D, to * D),
            tokens.slice(from * L, to * L),
            r.slice(from, to),
            to - from,
            this.#native,
          ),
        ),
      );
    }

    // (d) Soft update of θ_old and the EMA, after the epoch's optimiser steps.
    const step = this.net.step;
    const eta = etaAt(o.eta, step);
    if (!(eta >= 0 && eta <= 1))
      throw new RangeError(`the eta schedule gave ${eta} at step ${step}; it must be in [0, 1]`);
    this.net.model.blendParams('old', eta, 'theta');
    if (o.ema > 0) this.net.model.blendParams('ema', Math.min((1 + step) / (10 + step), o.ema), 'theta');
    this.#epoch += 1;
    const trained = performance.now();
    const { mean, std } = meanStd(rewards);
    const average = (key: 'loss' | 'gradNorm') => steps.reduce((s, x) => s + x[key], 0) / steps.length;
    return {
      epoch: this.#epoch,
      step,
      reward: mean,
      rewardStd: std,
      rewards: named,
      rHistogram: histogram(r),
      loss: average('loss'),
      gradNorm: average('gradNorm'),
      lr: steps[steps.length - 1]?.lr ?? 0,
      eta,
      seconds: {
        sample: (sampled - started) / 1000,
        reward: rewardSeconds,
        train: (trained - scored) / 1000,
        total: (trained - started) / 1000,
      },
    };
  }

  /**
   * Mean rewards of fresh samples on (held-out) prompts with a many-step deterministic ODE, by default from the
   * EMA weights: the code's evaluation protocol.
   */
  async evaluate(options: EvaluateOptions<P> = {}): Promise<Evaluation> {
    const opts = objectOption('evaluate options', options);
    rejectUnknown('evaluate options', opts, ['prompts', 'samplesPerPrompt', 'steps', 'solver', 'params', 'seed']);
    const { condSlots: L, vocabSize } = this.net.config;
    const prompts =
      opts.prompts === undefined ? this.#prompts : checkPrompts<P>('evaluate prompts', opts.prompts, L, vocabSize);
    const perPrompt = numberOption(
      'evaluate options',
      opts,
      'samplesPerPrompt',
      { kind: 'int', min: 1, max: 1 << 16 },
      4,
    );
    const list = prompts.flatMap((p) => Array.from({ length: perPrompt }, () => p));
    const params = (opts.params ?? (this.net.model.hasParams('ema') ? 'ema' : 'theta')) as 'theta' | 'ema' | 'old';
    const { x } = await sample(this.net, {
      cond: Tensor.fromInt32(promptTokens(list, L), [list.length, L]),
      solver: (opts.solver ?? 'euler') as SolverName,
      steps: numberOption('evaluate options', opts, 'steps', { kind: 'int', min: 1, max: 10000 }, 40),
      seed: numberOption(
        'evaluate options',
        opts,
        'seed',
        { kind: 'int', min: 0, max: Number.MAX_SAFE_INTEGER },
        12345,
      ),
      params,
      chunk: this.#o.chunk,
    });
    const { total, parts } = await score(this.#rewards, x, list);
    const rewards: Record<string, number> = {};
    for (const [name, values] of Object.entries(parts)) rewards[name] = meanStd(values).mean;
    return { reward: meanStd(total).mean, rewards, samples: list.length };
  }

  /** Runs epochs with progress, evaluation, checkpoints and cancellation; returns the statistics of each epoch. */
  async run(options: RunOptions): Promise<NftEpochStats[]> {
    const opts = objectOption('run options', options);
    rejectUnknown('run options', opts, ['epochs', 'onProgress', 'signal', 'checkpoint', 'evaluate']);
    const epochs = numberOption('run options', opts, 'epochs', { kind: 'int', min: 1, max: 1e9 }, 1);
    const checkpoint = opts.checkpoint as RunOptions['checkpoint'];
    const evaluation = opts.evaluate as RunOptions['evaluate'];
    const signal = opts.signal as AbortSignal | undefined;
    const onProgress = opts.onProgress as RunOptions['onProgress'];
    const history: NftEpochStats[] = [];
    for (let i = 0; i < epochs && !signal?.aborted; i++) {
      let stats: NftEpochStats;
      try {
        stats = await this.epoch(signal);
      } catch (error) {
        if (signal?.aborted) break;
        throw error;
      }
      history.push(stats);
      const last = i === epochs - 1 || signal?.aborted === true;
      const every = (n: number | undefined) => last || this.#epoch % (n ?? 1) === 0;
      const { every: evalEvery, ...evalOptions } = evaluation ?? {};
      const result =
        evaluation !== undefined && every(evalEvery)
          ? await this.evaluate(evalOptions as EvaluateOptions<P>)
          : undefined;
      onProgress?.(stats, result);
      if (checkpoint !== undefined && every(checkpoint.every)) await this.save(checkpoint.path);
    }
    return history;
  }
}
