// The pre-training jobs of the CLI: flow matching on batches of a data source (the shapes world or an image folder),
// with a warm-up, an optional cosine decay, an optional moving average of the weights, and a progress line.
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Tensor } from '../core/tensor.js';
import { type ImageFolderDataset, imageFolderDataset } from '../data/image-folder.js';
import { saveCheckpoint } from '../model/checkpoint.js';
import { checkSamples, type VelocityNet } from '../model/net.js';
import { FLOW_MATCHING_SCHEMA } from '../options/flow-matching.js';
import { MICRO_BATCH, OPTIMIZER_SCHEMA } from '../options/optimizer.js';
import { pick, type Resolved, type Rule, resolveOptions, withDefaults } from '../options/schema.js';
import * as shapes from '../tasks/shapes/index.js';
import { currentWorld } from '../training/distributed.js';
import { FlowMatchingTrainer } from '../training/flow-matching.js';
import { Progress } from './progress.js';

/** How long a job trains, in minutes. */
export const MINUTES = { type: 'number', min: 1e-6, max: 1e7 } as const satisfies Rule;

/** Options of a pre-training job. */
export interface PretrainOptions {
  /** Stop after this many optimiser steps or minutes, whichever comes first. */
  steps?: number;
  minutes?: number;
  /** Samples per step (128). */
  batch?: number;
  /** Rows per forward/backward of a step (FlowMatchingOptions.microBatch). */
  microBatch?: number;
  /** Peak learning rate (1e-3), reached after a warm-up of 100 steps. */
  lr?: number;
  /** Probability of the null condition, for classifier-free guidance (0.1). */
  condDropout?: number;
  /** Seed of the data and of the draws (1). */
  seed?: number;
  /** Learning rate after the warm-up: constant, or a cosine decay to lr/100 at the last step (needs `steps`). */
  schedule?: 'constant' | 'cosine';
  /** Decay of an exponential moving average of the weights, written into the network at the end (0 = none). */
  ema?: number;
  signal?: AbortSignal;
}

/** The table of PretrainOptions, which the CLI's `pretrain` flags and its --config file take too. */
export const PRETRAIN_SCHEMA = {
  minutes: MINUTES,
  steps: { type: 'int', min: 1, max: 1e12 },
  batch: { type: 'int', min: 1, max: 1 << 20, default: 128 },
  microBatch: MICRO_BATCH,
  ...withDefaults(
    { lr: OPTIMIZER_SCHEMA.lr, condDropout: FLOW_MATCHING_SCHEMA.condDropout },
    { lr: 1e-3, condDropout: 0.1 },
  ),
  schedule: { type: 'enum', values: ['constant', 'cosine'], default: 'constant' },
  ema: { type: 'number', min: 0, max: 0.999999, default: 0 },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 1 },
} as const satisfies Record<Exclude<keyof PretrainOptions, 'signal'>, Rule>;

type ResolvedPretrain = Resolved<typeof PRETRAIN_SCHEMA> & { signal?: AbortSignal };

/** The job's fields of `o` (the others are ignored: the CLI passes its flags) checked, with their defaults. */
function resolvePretrain(o: PretrainOptions): ResolvedPretrain {
  return { ...resolveOptions('pretrain options', pick(o, PRETRAIN_SCHEMA), PRETRAIN_SCHEMA), signal: o.signal };
}

/** What a pre-training job did: steps, wall seconds, the smoothed loss at the end and the last learning rate. */
export interface PretrainResult {
  steps: number;
  seconds: number;
  loss: number;
  lr: number;
}

/** The batch of a network step count: `step` is net.step, so a continuation from a checkpoint goes on with new data. */
export type BatchAt = (step: number) => { x0: Tensor; cond: Tensor<'int32'> };

/** Flow-matching pre-training on rendered caption–image pairs of the training prompts, with condition dropout. */
export async function pretrainShapes(net: VelocityNet, options: PretrainOptions): Promise<PretrainResult> {
  const o = resolvePretrain(options);
  return pretrainLoop(net, o, (index) => shapes.batch(o.batch, o.seed, index));
}

/** Flow-matching pre-training on the images of a folder (docs/data.md), epoch after epoch in seeded orders. */
export async function pretrainImages(
  net: VelocityNet,
  data: ImageFolderDataset,
  options: PretrainOptions,
): Promise<PretrainResult> {
  const o = resolvePretrain(options);
  const epoch = (step: number) => ((step * o.batch) / data.length).toFixed(1);
  return pretrainLoop(
    net,
    o,
    (step) => data.batch(o.batch, o.seed, step),
    (step) => `epoch ${epoch(step)}`,
  );
}

/** The `pretrain --images DIR` job: reads the folder, pre-trains on it and writes a checkpoint naming the classes. */
export async function pretrainImageFolderJob(
  net: VelocityNet,
  dir: string,
  o: PretrainOptions & { out: string; withOptimizer?: boolean; command: string; log: (line: string) => void },
): Promise<PretrainResult> {
  let reading: Progress | undefined;
  const onProgress = (done: number, total: number) => {
    if (currentWorld().rank !== 0) return;
    reading ??= new Progress('images', total, 'images');
    reading.update(done);
  };
  const data = await imageFolderDataset(dir, net.config, { onProgress });
  reading?.done();
  const tokens = Object.fromEntries(data.classes.map((name, k) => [name, k + 1]));
  o.log(
    `images: ${data.length} in ${data.classes.length} classes (${data.resized} resized); tokens ${JSON.stringify(tokens)}`,
  );
  const result = await pretrainImages(net, data, o);
  // Distributed (docs/distributed.md), every rank holds the same weights and rank 0 alone writes them.
  if (currentWorld().rank !== 0) return result;
  await mkdir(dirname(o.out), { recursive: true });
  await saveCheckpoint(o.out, net, {
    optimizer: o.withOptimizer === true,
    metadata: {
      'images.command': o.command,
      'images.dir': dir,
      'images.count': String(data.length),
      'images.classes': JSON.stringify(tokens),
      'images.seconds': result.seconds.toFixed(0),
    },
  });
  o.log(`wrote ${o.out}: ${result.steps} steps in ${result.seconds.toFixed(0)} s, loss ${result.loss.toFixed(4)}`);
  return result;
}

/** Pre-trains `net` on the batches of `batchAt` until the steps or minutes of `o` are spent or it is aborted. */
export async function pretrainLoop(
  net: VelocityNet,
  options: PretrainOptions,
  batchAt: BatchAt,
  status: (step: number) => string = (step) => `step ${step}`,
): Promise<PretrainResult> {
  const o = resolvePretrain(options);
  const limitSteps = o.steps ?? Number.POSITIVE_INFINITY;
  const limitMs = (o.minutes ?? Number.POSITIVE_INFINITY) * 60_000;
  if (!Number.isFinite(limitSteps) && !Number.isFinite(limitMs))
    throw new RangeError('pre-training needs steps or minutes');
  const { schedule } = o;
  if (schedule === 'cosine' && !Number.isFinite(limitSteps)) throw new RangeError('a cosine schedule needs steps');
  checkSamples('a pre-training batch', o.batch, net.config.dataDim);
  const trainer = new FlowMatchingTrainer(net, {
    lr: o.lr,
    warmupSteps: 100,
    schedule,
    // The native step counter goes on from a checkpoint saved with its optimiser state.
    totalSteps: schedule === 'cosine' ? net.step + limitSteps : 0,
    minLr: o.lr / 100,
    condDropout: o.condDropout,
    seed: o.seed,
    microBatch: o.microBatch,
  });
  const average = o.ema > 0 ? new MovingAverage(net, o.ema) : undefined;
  const byStep = Number.isFinite(limitSteps);
  const progress =
    trainer.world.rank === 0
      ? new Progress('pretrain', byStep ? limitSteps : limitMs / 1000, byStep ? 'steps' : 'seconds')
      : undefined;
  const started = performance.now();
  let step = 0;
  let recent = 0;
  let lr = Number.NaN;
  while (step < limitSteps && performance.now() - started < limitMs && !o.signal?.aborted) {
    const stats = await trainer.step(batchAt(net.step));
    step += 1;
    average?.update();
    lr = stats.lr;
    recent = step === 1 ? stats.loss : 0.98 * recent + 0.02 * stats.loss;
    const elapsed = performance.now() - started;
    progress?.update(byStep ? step : elapsed / 1000, `${status(net.step)} loss ${recent.toFixed(4)}`);
  }
  progress?.done();
  average?.apply();
  return { steps: step, seconds: (performance.now() - started) / 1000, loss: step > 0 ? recent : Number.NaN, lr };
}

/**
 * An exponential moving average of a network's weights, kept on the JavaScript side so that the network (and the
 * checkpoint written from it) holds one parameter set. The decay ramps up as (1 + n)/(10 + n) over the first updates.
 */
class MovingAverage {
  readonly #net: VelocityNet;
  readonly #decay: number;
  readonly #average: Float32Array;
  readonly #current: Float32Array;
  #updates = 0;

  constructor(net: VelocityNet, decay: number) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`ema must be in (0, 1), got ${decay}`);
    this.#net = net;
    this.#decay = decay;
    this.#average = net.getParameters();
    this.#current = new Float32Array(this.#average.length);
  }

  update(): void {
    this.#net.model.getParams(this.#current, 'theta');
    const d = Math.min((1 + this.#updates) / (10 + this.#updates), this.#decay);
    this.#updates += 1;
    const average = this.#average;
    const current = this.#current;
    for (let i = 0; i < average.length; i++) average[i] = d * (average[i] as number) + (1 - d) * (current[i] as number);
  }

  /** Writes the average into the network. */
  apply(): void {
    this.#net.setParameters(this.#average);
  }
}
