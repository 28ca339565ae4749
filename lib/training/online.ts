// The epoch loop the online RL trainers share (docs/algorithms.md §4): draw prompt groups, roll out in chunks while the
// previous chunk's rewards are scored, train, and the run/evaluate/checkpoint/resume contract around it.

import { BusyError, CheckpointError, DistributedError } from '../core/errors.js';
import { limits, type NativeOptimizerOptions } from '../core/native.js';
import { PROMPT_STREAM } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import { MetricsLog, type RecordHook } from '../metrics/log.js';
import { type Checkpoint, loadCheckpoint, writeCheckpoint } from '../model/checkpoint.js';
import { useLora } from '../model/lora.js';
import { VelocityNet } from '../model/net.js';
import { loraOptions } from '../options/lora.js';
import { OPTIMIZER_SCHEMA } from '../options/optimizer.js';
import { objectOption, pick, rejectUnknown, resolveOptions } from '../options/schema.js';
import { sampleSde } from '../sampling/sde.js';
import { sample, timeGrid } from '../sampling/solvers.js';
import type { CleanRollout } from './clean-rollout.js';
import {
  checkPrompts,
  drawGroups,
  meanStd,
  type Prompt,
  promptText,
  promptTokens,
  type ResolvedRewards,
  type RewardPolicy,
  resolveRewards,
  type Scores,
  score,
} from './common.js';
import { allgather, checkSameRun, distributeModel, openWorld, type World } from './distributed.js';
import {
  type EpochStats,
  EVALUATE_SCHEMA,
  type EvaluateOptions,
  type Evaluation,
  type OnlineResolved,
  type ResumePlacement,
  RUN_SCHEMA,
  type RunOptions,
} from './online-options.js';
import { runDifference } from './resume-check.js';

/** One chunk of an epoch's rollouts: the clean samples and whatever the trainer keeps for training. */
export interface RolloutChunk {
  x: Tensor;
  data?: unknown;
}

/** What training sees of an epoch. */
export interface EpochData<P extends Prompt> {
  prompts: readonly P[];
  groupIds: Int32Array;
  tokens: Int32Array;
  samples: Float32Array;
  rewards: Float64Array;
  chunks: RolloutChunk[];
  /** The samples this rank rolled out, [from, to) (all of them in one process); `samples` holds only these. */
  from: number;
  to: number;
}

/** The resolved common options. */
interface Common {
  groups: number;
  groupSize: number;
  grid: Float64Array;
  optimizerSteps: number;
  microBatch: number;
  std: 'global' | 'group';
  ema: number;
  seed: number;
  chunk: number;
  reward: RewardPolicy;
}

/**
 * The shared online RL loop. Subclasses say how a chunk is rolled out, how an epoch trains, and which options
 * define a run (for checking a resume).
 */
export abstract class OnlineTrainer<P extends Prompt, S extends EpochStats> {
  /** The network being trained. */
  readonly net: VelocityNet;
  protected readonly prompts: readonly P[];
  protected readonly rewardFns: ResolvedRewards<P>;
  protected readonly common: Common;
  protected readonly optimizer: NativeOptimizerOptions;
  #epoch = 0;
  #busy = false;
  /** Undefined in one process. */
  protected readonly world: World | undefined;
  readonly #lora: ReturnType<typeof loraOptions> | undefined;

  /** `opts` are the trainer's options resolved against its table, which includes ONLINE_SCHEMA. */
  protected constructor(net: VelocityNet, opts: OnlineResolved) {
    if (!(net instanceof VelocityNet)) throw new TypeError('net must be a VelocityNet');
    const { condSlots, vocabSize } = net.config;
    this.prompts = checkPrompts<P>('options.prompts', opts.prompts, condSlots, vocabSize);
    this.rewardFns = resolveRewards<P>(opts.rewards);
    const { groups, groupSize, optimizerSteps } = opts;
    if (groupSize < 2) throw new RangeError('options.groupSize must be at least 2: advantages compare a group');
    this.common = {
      groups,
      groupSize,
      grid: timeGrid(opts.steps, { schedule: opts.gridSchedule, shift: opts.shift }),
      optimizerSteps,
      microBatch: opts.microBatch,
      std: opts.std,
      ema: opts.ema,
      seed: opts.seed,
      chunk: opts.chunk,
      reward: { timeoutMs: opts.rewardTimeout, retries: opts.rewardRetries },
    };
    const perEpoch = groups * groupSize;
    if (optimizerSteps > perEpoch) {
      throw new RangeError('options.optimizerSteps must not exceed the samples per epoch');
    }
    const { maxBatch, maxArrayBytes } = limits();
    if (perEpoch > maxBatch || perEpoch * net.config.dataDim * 4 > maxArrayBytes) {
      throw new RangeError(
        `options.groups × groupSize = ${perEpoch} samples per epoch is above the limit (${maxBatch} rows, ` +
          `${maxArrayBytes} bytes of samples)`,
      );
    }
    this.optimizer = pick(opts, OPTIMIZER_SCHEMA);
    this.#lora = opts.lora === undefined ? undefined : loraOptions('options.lora', opts.lora, net.config.arch);
    this.world = openWorld('options.distributed', opts.distributed);
    if (this.world !== undefined && groups % this.world.size !== 0) {
      throw new RangeError(
        `options.groups = ${groups} prompt groups do not split evenly over ${this.world.size} ranks`,
      );
    }
    this.net = net;
  }

  /**
   * The start of an RL phase: the extra parameter sets are copies of θ and the optimiser is a new one (as in the
   * codes), so schedules count this phase's steps. Subclasses call it once their options are checked.
   */
  protected startPhase(sets: readonly ('old' | 'ref' | 'ema')[]): void {
    this.net.assertIdle(this.constructor.name);
    if (this.#lora !== undefined) useLora(this.net, this.#lora);
    for (const set of sets) this.net.model.copyParams(set, 'theta');
    if (this.common.ema > 0) this.net.model.copyParams('ema', 'theta');
    this.net.model.resetOptimizer();
    if (this.world !== undefined) {
      distributeModel(this.constructor.name, this.net.model, this.net.device, this.world);
      checkSameRun(
        this.constructor.name,
        ['the options', this.#state()],
        ['options.prompts', this.prompts.map(promptText)],
        ['options.rewards', this.rewardFns.map(({ name, weight }) => JSON.stringify({ name, weight }))],
        ['the parameters θ', new Uint8Array(this.net.getParameters().buffer)],
      );
    }
  }

  /**
   * How the epoch's n samples split over the optimiser steps: step k trains samples [k·n/S, (k + 1)·n/S) of which
   * this rank holds [from, to) (all of them in one process); `first` is `from`'s index within the step.
   */
  protected stepShares(data: EpochData<P>): { from: number; to: number; first: number }[] {
    const n = data.rewards.length;
    const S = this.common.optimizerSteps;
    return Array.from({ length: S }, (_, k) => {
      const stepFrom = Math.floor((k * n) / S);
      const stepTo = Math.floor(((k + 1) * n) / S);
      const from = Math.max(stepFrom, data.from);
      const to = Math.max(from, Math.min(stepTo, data.to));
      return { from, to, first: from - stepFrom };
    });
  }

  /**
   * A chunk of rollouts of the `params` set with an ODE solver, SA-Solver, or FlowGRPO's SDE of noise level sdeA
   * for 'sde': the forward-noising methods keep only the clean samples.
   */
  protected async rolloutClean(
    tokens: Int32Array,
    rows: number,
    firstSample: number,
    rollout: CleanRollout,
    params: 'theta' | 'old',
  ): Promise<RolloutChunk> {
    const cond = Tensor.fromInt32(tokens, [rows, this.net.config.condSlots]);
    const { grid, seed, chunk } = this.common;
    const { solver, sdeA, saSolver } = rollout;
    if (solver === 'sde') {
      const { x } = await sampleSde(this.net, { cond, grid, a: sdeA, seed, firstSample, chunk, params });
      return { x };
    }
    const { x } = await sample(this.net, { cond, solver, saSolver, grid, seed, firstSample, chunk, params });
    return { x };
  }

  /** Epochs completed. */
  get epochCount(): number {
    return this.#epoch;
  }

  /** The numeric options that define a run: a resume must give the same. */
  protected abstract fingerprint(): Record<string, unknown>;

  /** Rolls out one chunk of the epoch: `rows` samples with these tokens, sample indices from `firstSample`. */
  protected abstract rolloutChunk(tokens: Int32Array, rows: number, firstSample: number): Promise<RolloutChunk>;

  /** Trains on the epoch's rollouts; returns the epoch's statistics beyond the common ones. */
  protected abstract train(
    data: EpochData<P>,
  ): Promise<{ loss: number; gradNorm: number; lr: number; extra: Omit<S, keyof EpochStats> }>;

  #state(): string {
    // The reward policy does not change what a run computes: a resume may set it differently.
    const { reward: _policy, ...rest } = this.common;
    const common = { ...rest, grid: Array.from(this.common.grid) };
    return JSON.stringify({ ...common, optimizer: this.optimizer, lora: this.#lora?.config, ...this.fingerprint() });
  }

  /** The run's numeric options after defaults, as a checkpoint records them (the metrics' config.json). */
  get resolvedOptions(): Record<string, unknown> {
    return JSON.parse(this.#state()) as Record<string, unknown>;
  }

  /** Writes the network (every parameter set, the optimiser) and the trainer's epoch atomically to `path`. */
  async save(path: string): Promise<void> {
    if (this.world !== undefined) {
      // Rank 0 writes; the others wait for it, so that a resume right after finds the file.
      if (this.world.rank === 0) await this.#write(path);
      allgather(new Uint8Array(1));
      return;
    }
    await this.#write(path);
  }

  async #write(path: string): Promise<void> {
    const trainer = JSON.stringify({ format: this.constructor.name, epoch: this.#epoch, options: this.#state() });
    await writeCheckpoint(path, this.net, this.net.model.hasOptimizerState(), { 'dnft.trainer': trainer });
  }

  /**
   * A trainer made by `make` on the network of a checkpoint, with the trainer state the checkpoint holds restored;
   * the network is disposed if that fails. The subclasses' `resume` call this.
   */
  protected static async resumeWith<P extends Prompt, S extends EpochStats, T extends OnlineTrainer<P, S>>(
    what: string,
    path: string,
    placement: ResumePlacement | undefined,
    make: (net: VelocityNet) => T,
  ): Promise<T> {
    const where = objectOption(`${what} placement`, placement);
    rejectUnknown(`${what} placement`, where, ['device', 'precision']);
    const checkpoint = await loadCheckpoint(path, {
      device: where.device as ResumePlacement['device'],
      precision: where.precision as ResumePlacement['precision'],
    });
    try {
      const trainer = make(checkpoint.net);
      await trainer.restore(path, checkpoint);
      return trainer;
    } catch (error) {
      checkpoint.net.dispose();
      throw error;
    }
  }

  /** Restores the epoch count and the saved network state into this trainer's network. */
  private async restore(path: string, checkpoint: Checkpoint): Promise<void> {
    let state: { format?: string; epoch?: number; options?: string } = {};
    try {
      state = JSON.parse(checkpoint.trainer ?? '{}') ?? {};
    } catch (error) {
      throw new CheckpointError(`${path}: dnft.trainer is not valid JSON`, { cause: error });
    }
    if (
      typeof state !== 'object' ||
      state.format !== this.constructor.name ||
      !Number.isSafeInteger(state.epoch) ||
      (state.epoch as number) < 0
    ) {
      throw new CheckpointError(
        `${path} holds no ${this.constructor.name} state (save it with run({ checkpoint }) or save())`,
      );
    }
    const difference = runDifference(state.options, this.#state());
    if (difference !== undefined) throw new RangeError(`${path} was saved with other options: ${difference}`);
    // The constructor started a new phase; put back the saved parameter sets and optimiser.
    await loadCheckpoint(path, { into: this.net });
    this.#epoch = state.epoch as number;
  }

  /**
   * One epoch: M·K rollouts (rewards of a chunk are scored while the next chunk samples), then training. If a reward
   * fails, nothing is applied and the error names it. `onTraining`, when given, is called (and awaited) once the
   * rollouts are scored and the optimiser steps begin: a job reports its phase with it.
   */
  async epoch(signal?: AbortSignal, onTraining?: () => void | Promise<void>): Promise<S> {
    if (this.#busy) throw new BusyError(`${this.constructor.name}.epoch: an epoch is already running; await it first`);
    this.#busy = true;
    try {
      return await this.#runEpoch(signal, onTraining);
    } finally {
      this.#busy = false;
    }
  }

  async #runEpoch(signal?: AbortSignal, onTraining?: () => void | Promise<void>): Promise<S> {
    const c = this.common;
    const { dataDim: D, condSlots: L } = this.net.config;
    const started = performance.now();
    const drawn = drawGroups(this.prompts, c.groups, c.groupSize, c.seed, this.#epoch, PROMPT_STREAM);
    const n = drawn.prompts.length;
    const tokens = promptTokens(drawn.prompts, L);
    const samples = new Float32Array(n * D);
    // This rank's prompt groups: an equal contiguous share of the epoch's samples.
    const size = this.world?.size ?? 1;
    const from = ((this.world?.rank ?? 0) * n) / size;
    const to = from + n / size;
    const chunks: RolloutChunk[] = [];
    const scoring: Promise<Scores>[] = [];
    let rewardSeconds = 0;
    let rewardFailed = false;
    for (let start = from; start < to && !rewardFailed; start += c.chunk) {
      if (this.world === undefined) signal?.throwIfAborted();
      const rows = Math.min(c.chunk, to - start);
      const chunk = await this.rolloutChunk(tokens.slice(start * L, (start + rows) * L), rows, this.#epoch * n + start);
      chunks.push(chunk);
      samples.set(chunk.x.storage, start * D);
      const chunkPrompts = drawn.prompts.slice(start, start + rows);
      const scored = (async () => {
        const t0 = performance.now();
        const result = await score(this.rewardFns, chunk.x, chunkPrompts, c.reward);
        rewardSeconds += (performance.now() - t0) / 1000;
        return result;
      })();
      // Handled now, not only at the Promise.all below: a failure while later chunks sample must not go unhandled.
      scored.catch(() => {
        rewardFailed = true;
      });
      scoring.push(scored);
    }
    const sampled = performance.now();
    const rewards = new Float64Array(n);
    const named: Record<string, number> = {};
    const gathered = await this.#gatherScores(Promise.all(scoring), from, to, signal);
    rewards.set(gathered.total);
    for (const [name, values] of Object.entries(gathered.parts)) {
      named[name] = values.reduce((s, v) => s + v, 0) / n;
    }
    signal?.throwIfAborted();
    await onTraining?.();
    const scored = performance.now();
    const trained = await this.#trainAtomically({
      prompts: drawn.prompts,
      groupIds: drawn.groupIds,
      tokens,
      samples,
      rewards,
      chunks,
      from,
      to,
    });
    const step = this.net.step;
    if (c.ema > 0) this.net.model.blendParams('ema', Math.min((1 + step) / (10 + step), c.ema), 'theta');
    this.#epoch += 1;
    if (this.world !== undefined && this.world.checkEvery > 0 && this.#epoch % this.world.checkEvery === 0) {
      this.#checkParameters();
    }
    const finished = performance.now();
    const { mean, std } = meanStd(rewards);
    const stats: EpochStats = {
      epoch: this.#epoch,
      step,
      samples: n,
      reward: mean,
      rewardStd: std,
      rewards: named,
      loss: trained.loss,
      gradNorm: trained.gradNorm,
      lr: trained.lr,
      seconds: {
        sample: (sampled - started) / 1000,
        reward: rewardSeconds,
        train: (finished - scored) / 1000,
        total: (finished - started) / 1000,
      },
    };
    return { ...stats, ...trained.extra } as S;
  }

  /** The trained parameters: with LoRA the adapters over a frozen base, else every weight. */
  #trainedCount(): number {
    const lora = this.net.model.lora();
    return lora === null ? this.net.model.paramCount() : lora.layout.reduce((n, p) => n + p.size, 0);
  }

  /** Debugging aid: every parameter set must be bit-identical on every rank. */
  #checkParameters(): void {
    const model = this.net.model;
    const lora = model.lora();
    const count = this.#trainedCount();
    const sets = (['theta', 'old', 'ref', 'ema'] as const).filter((set) => model.hasParams(set));
    const bytes = new Uint8Array(sets.length * count * 4);
    sets.forEach((set, k) => {
      const view = new Float32Array(bytes.buffer, k * count * 4, count);
      if (lora === null) model.getParams(view, set);
      else model.getAdapter(view, set);
    });
    checkSameRun(`after epoch ${this.#epoch}`, [`the parameter sets (${sets.join(', ')})`, bytes]);
  }

  /**
   * The scores of every sample of the epoch. Distributed, each rank's are all-gathered with a status, so that a rank
   * whose reward failed (or whose run was aborted) makes every rank stop with a DistributedError naming it.
   */
  async #gatherScores(
    scoring: Promise<Scores[]>,
    from: number,
    to: number,
    signal: AbortSignal | undefined,
  ): Promise<{ total: Float64Array; parts: Record<string, Float64Array> }> {
    const names = this.rewardFns.map((r) => r.name);
    const join = (parts: Scores[]) => {
      const total = new Float64Array(to - from);
      const named = Object.fromEntries(names.map((name) => [name, new Float64Array(to - from)]));
      let offset = 0;
      for (const part of parts) {
        total.set(part.total, offset);
        for (const name of names) named[name]?.set(part.parts[name] as Float64Array, offset);
        offset += part.total.length;
      }
      return { total, parts: named };
    };
    if (this.world === undefined) return join(await scoring);
    const world = this.world;
    const rows = to - from;
    const values = new Float64Array(1 + rows * (1 + names.length));
    let failure: unknown;
    try {
      const mine = join(await scoring);
      values.set(mine.total, 1);
      names.forEach((name, k) => {
        values.set(mine.parts[name] as Float64Array, 1 + rows * (1 + k));
      });
      if (signal?.aborted) values[0] = 2;
    } catch (error) {
      failure = error;
      values[0] = 1;
    }
    const MESSAGE = 512;
    const block = new Uint8Array(values.byteLength + MESSAGE);
    block.set(new Uint8Array(values.buffer));
    if (failure !== undefined) {
      const text = failure instanceof Error ? failure.message : String(failure);
      block.set(new TextEncoder().encode(text).subarray(0, MESSAGE), values.byteLength);
    }
    const blocks = allgather(block);
    const all = blocks.map((b) => new Float64Array(b.slice(0, values.byteLength).buffer));
    const failed = all.findIndex((v) => v[0] === 1);
    if (failed >= 0) {
      const text = new TextDecoder()
        .decode((blocks[failed] as Uint8Array).subarray(values.byteLength))
        .replace(/\0+$/, '');
      throw new DistributedError(`rank ${failed} of ${world.size} failed scoring its samples: ${text}`, failed, {
        cause: failure,
      });
    }
    if (all.some((v) => v[0] === 2)) {
      signal?.throwIfAborted();
      throw new DistributedError('another rank was aborted');
    }
    const total = new Float64Array(rows * world.size);
    const parts = Object.fromEntries(names.map((name) => [name, new Float64Array(rows * world.size)]));
    all.forEach((v, r) => {
      total.set(v.subarray(1, 1 + rows), r * rows);
      names.forEach((name, k) => {
        parts[name]?.set(v.subarray(1 + rows * (1 + k), 1 + rows * (2 + k)), r * rows);
      });
    });
    return { total, parts };
  }

  /**
   * train(), undone if it fails: with several optimiser steps, a failure at a later one (a NumericError) would
   * otherwise keep the earlier ones. (A single step changes nothing when it fails.)
   */
  async #trainAtomically(data: EpochData<P>): ReturnType<OnlineTrainer<P, S>['train']> {
    if (this.common.optimizerSteps === 1) return this.train(data);
    let model = this.net.model;
    // What training changes: θ (the trained adapter with LoRA), θ_old where a trainer updates it between steps,
    // and the AdamW moments, all of the trained size.
    const lora = model.lora();
    const size = this.#trainedCount();
    const sets = (['theta', 'old'] as const).filter((set) => set === 'theta' || model.hasParams(set));
    const saved = sets.map((set) => {
      const values = new Float32Array(size);
      if (lora === null) model.getParams(values, set);
      else model.getAdapter(values, set);
      return values;
    });
    const step = this.net.step;
    const moments = model.hasOptimizerState() ? [new Float32Array(size), new Float32Array(size)] : undefined;
    if (moments !== undefined) model.getOptimizerState(moments[0] as Float32Array, moments[1] as Float32Array);
    try {
      return await this.train(data);
    } catch (error) {
      await this.net.enqueue(async () => undefined);
      if (this.net.disposed) throw error; // nothing left to restore
      model = this.net.model;
      sets.forEach((set, k) => {
        if (lora === null) model.setParams(saved[k] as Float32Array, set);
        else model.setAdapter(saved[k] as Float32Array, set);
      });
      if (moments === undefined) model.resetOptimizer();
      else model.setOptimizerState(moments[0] as Float32Array, moments[1] as Float32Array, step);
      throw error;
    }
  }

  /**
   * Mean rewards of fresh samples on (held-out) prompts with a many-step deterministic ODE, by default from the
   * EMA weights: the codes' evaluation protocol.
   */
  async evaluate(options: EvaluateOptions<P> = {}): Promise<Evaluation> {
    const opts = resolveOptions('evaluate options', options, EVALUATE_SCHEMA);
    const { condSlots: L, vocabSize } = this.net.config;
    const prompts =
      opts.prompts === undefined ? this.prompts : checkPrompts<P>('evaluate prompts', opts.prompts, L, vocabSize);
    const list = prompts.flatMap((p) => Array.from({ length: opts.samplesPerPrompt }, () => p));
    const params = opts.params ?? (this.net.model.hasParams('ema') ? 'ema' : 'theta');
    const { x } = await sample(this.net, {
      cond: Tensor.fromInt32(promptTokens(list, L), [list.length, L]),
      solver: opts.solver,
      steps: opts.steps,
      cfgScale: opts.cfgScale,
      seed: opts.seed,
      params,
      chunk: this.common.chunk,
    });
    const { total, parts } = await score(this.rewardFns, x, list, this.common.reward);
    const rewards: Record<string, number> = {};
    for (const [name, values] of Object.entries(parts)) rewards[name] = meanStd(values).mean;
    return { reward: meanStd(total).mean, rewards, samples: list.length };
  }

  /** Runs epochs with progress, evaluation, checkpoints and cancellation; returns the statistics of each epoch. */
  async run(options: RunOptions<S>): Promise<S[]> {
    const opts = resolveOptions('run options', options, RUN_SCHEMA);
    const epochs = opts.epochs;
    const checkpoint = opts.checkpoint as RunOptions['checkpoint'];
    const evaluation = opts.evaluate as RunOptions['evaluate'];
    const signal = opts.signal as AbortSignal | undefined;
    const onProgress = opts.onProgress as RunOptions<S>['onProgress'];
    if (opts.metrics !== undefined && typeof opts.metrics !== 'string') {
      throw new TypeError('run options.metrics must be a folder');
    }
    if (opts.onRecord !== undefined && typeof opts.onRecord !== 'function') {
      throw new TypeError('run options.onRecord must be a function');
    }
    const log = await MetricsLog.open({
      // Rank 0 writes the metrics; every rank gets the records.
      dir: (this.world?.rank ?? 0) === 0 ? (opts.metrics as string | undefined) : undefined,
      epoch: this.#epoch,
      trainer: this.constructor.name,
      config: this.resolvedOptions,
      onRecord: opts.onRecord as RecordHook | undefined,
    });
    try {
      const history: S[] = [];
      for (let i = 0; i < epochs && !signal?.aborted; i++) {
        let stats: S;
        try {
          stats = await this.epoch(signal);
        } catch (error) {
          if (signal?.aborted) break;
          throw error;
        }
        history.push(stats);
        await log.epoch(stats);
        const last = i === epochs - 1 || signal?.aborted === true;
        const due = (every: number | undefined) => last || this.#epoch % (every ?? 1) === 0;
        const { every: evalEvery, ...evalOptions } = evaluation ?? {};
        const result =
          evaluation !== undefined && due(evalEvery)
            ? await this.evaluate(evalOptions as EvaluateOptions<P>)
            : undefined;
        if (result !== undefined) await log.evaluation(this.#epoch, result);
        onProgress?.(stats, result);
        if (checkpoint !== undefined && due(checkpoint.every)) await this.save(checkpoint.path);
      }
      return history;
    } finally {
      await log.close();
    }
  }
}
