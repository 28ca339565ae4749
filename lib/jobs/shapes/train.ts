// An RL run on the shapes benchmark (DiffusionNFT, FlowGRPO, AWM, DGPO, Flow-GRPO-Fast, MixGRPO or GRPO-Guard): training from a base checkpoint with evaluations
// every few epochs, the metrics stream, a checkpoint and the curves.
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MetricsLog } from '../../metrics/log.js';
import type { Phase } from '../../metrics/records.js';
import { loadCheckpoint } from '../../model/checkpoint.js';
import { saveAdapter } from '../../model/lora.js';
import type { VelocityNet } from '../../model/net.js';
import { pick, type Rule, resolveOptions } from '../../options/schema.js';
import * as shapes from '../../tasks/shapes/index.js';
import { AWM, type AWMOptions } from '../../training/awm.js';
import { DGPO, type DGPOOptions } from '../../training/dgpo.js';
import { DiffusionNFT, type DiffusionNFTOptions } from '../../training/diffusion-nft.js';
import { currentWorld } from '../../training/distributed.js';
import { FlowGRPO, type FlowGRPOOptions } from '../../training/flowgrpo.js';
import { FlowGRPOFast, type FlowGRPOFastOptions } from '../../training/grpo-fast.js';
import { GRPOGuard, type GRPOGuardOptions } from '../../training/grpo-guard.js';
import { MixGRPO, type MixGRPOOptions } from '../../training/mixgrpo.js';
import type { OnlineTrainer } from '../../training/online.js';
import type { EpochStats, OnlineOptions } from '../../training/online-options.js';
import { MINUTES } from '../pretrain.js';
import { formatSeconds, Progress, progressReporter } from '../progress.js';
import { type RunPoint, runPoints, writeCurves } from './curves.js';
import { evaluateShapes, runGrid } from './evaluate.js';
import { checkGuidance, type Guidance, guidanceLabel } from './guidance.js';
import { gridPrompts } from './prompts.js';

/** Options of trainShapes. */
export interface TrainShapesOptions {
  /** The RL method ('nft'). */
  method?: Method;
  /**
   * The base checkpoint, or with `resume` a checkpoint of a run of the same method to continue (its curve too, from
   * the metrics beside it).
   */
  base: string;
  resume?: boolean;
  /** Stop at this many epochs since the run's start, or after this many minutes of training in this call. */
  epochs?: number;
  minutes?: number;
  /** Evaluate every this many epochs (5) on the test prompts, with this many samples of each (4). */
  evalEvery?: number;
  evalSamplesPerPrompt?: number;
  /**
   * Output folder ('shapes-run'): checkpoint.safetensors, the metrics stream (metrics.jsonl, config.json, a sample
   * grid per evaluation in samples/; docs/dashboard.md) and the curves (SVG and PNG).
   */
  out?: string;
  /** Trainer options beyond the task's prompts and reward. */
  trainer?: Record<string, unknown>;
  /** The reward trained on ('partial'), each sample's scaled by its category's weight (default 1). */
  reward?: shapes.RewardKind;
  categoryWeights?: Partial<Record<shapes.Category, number>>;
  /**
   * Guidance of further evaluations at each point, beside the CFG-free one that always runs (default: none). A
   * FlowGRPO run trained with guidance is meant to be scored with it too.
   */
  evalGuidance?: readonly Guidance[];
  /**
   * The scores the run is measured against, written to its stream at a fresh start (the dashboard draws them as
   * lines): default, the base's own first evaluation, without guidance and with each `evalGuidance`.
   */
  references?: readonly { label: string; evaluation: shapes.ShapesEvaluation }[];
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/**
 * The default trainer settings on shapes for each method: the best of each in the B4 sweeps (docs/science.md, "B4 of
 * 2026-12-01"; bench/results/2026-11-23-B4-AMD-EPYC, 2026-12-01-B4-Intel-Xeon-20min). Every weight trains here, so
 * lr is a third of the codes' LoRA 3e-4.
 */
export const SHAPES_TRAINER_DEFAULTS = {
  nft: { groups: 16, groupSize: 8, lr: 1e-4, beta: 1 },
  flowgrpo: { groups: 16, groupSize: 8, lr: 1e-4, clipRange: 0.2, klCoef: 0.04 },
  // Not swept yet: the official settings with the same group sizes and lr as the two above.
  awm: { groups: 16, groupSize: 8, lr: 1e-4 },
  dgpo: { groups: 16, groupSize: 8, lr: 1e-4 },
  // The likelihood methods without a KL term take FlowGRPO's batch and lr, and their official ε (their only trust
  // region) times √(65536 / 768) ≈ 9.2, rounded to 10: the official latents' dimensions over shapes' (docs/algorithms.md
  // §9.5). FlowGRPO's ε = 0.2 never clips here, and without a KL term Fast and MixGRPO collapse at it.
  'grpo-fast': { groups: 16, groupSize: 8, lr: 1e-4, clipRange: 1e-4 },
  mixgrpo: { groups: 16, groupSize: 8, lr: 1e-4, clipRange: 1e-3 },
  'grpo-guard': { groups: 16, groupSize: 8, lr: 1e-4, clipRange: 2e-5 },
} as const;

/** The RL methods of trainShapes. */
export type Method = keyof typeof SHAPES_TRAINER_DEFAULTS;

/**
 * The table of TrainShapesOptions whose values are plain (the others are checked where they are used), which the
 * CLI's `train` flags and its --config file take too.
 */
export const TRAIN_SHAPES_SCHEMA = {
  method: { type: 'enum', values: Object.keys(SHAPES_TRAINER_DEFAULTS) as Method[], default: 'nft' },
  base: { type: 'string' },
  resume: { type: 'boolean' },
  epochs: { type: 'int', min: 1, max: 1e9 },
  minutes: MINUTES,
  evalEvery: { type: 'int', min: 1, max: 1e9, default: 5 },
  evalSamplesPerPrompt: { type: 'int', min: 1, max: 1 << 16, default: 4 },
  out: { type: 'string', default: 'shapes-run' },
  reward: { type: 'enum', values: shapes.REWARD_KINDS, default: 'partial' },
} as const satisfies Record<
  Exclude<keyof TrainShapesOptions, 'trainer' | 'categoryWeights' | 'evalGuidance' | 'references' | 'signal' | 'log'>,
  Rule
>;

type ShapesTrainer = OnlineTrainer<shapes.ShapesPrompt, EpochStats>;
type Options = OnlineOptions<shapes.ShapesPrompt> & Record<string, unknown>;

/** Each method's trainer: its name in the curves, a new one on a network, one resumed from a checkpoint. */
const METHODS: Record<
  Method,
  {
    name: string;
    make: (net: VelocityNet, o: Options) => ShapesTrainer;
    resume: (path: string, o: Options) => Promise<ShapesTrainer>;
  }
> = {
  nft: {
    name: 'DiffusionNFT',
    make: (net, o) => new DiffusionNFT(net, o as DiffusionNFTOptions<shapes.ShapesPrompt>),
    resume: (path, o) => DiffusionNFT.resume(path, o as DiffusionNFTOptions<shapes.ShapesPrompt>),
  },
  flowgrpo: {
    name: 'FlowGRPO',
    make: (net, o) => new FlowGRPO(net, o as FlowGRPOOptions<shapes.ShapesPrompt>),
    resume: (path, o) => FlowGRPO.resume(path, o as FlowGRPOOptions<shapes.ShapesPrompt>),
  },
  awm: {
    name: 'AWM',
    make: (net, o) => new AWM(net, o as AWMOptions<shapes.ShapesPrompt>),
    resume: (path, o) => AWM.resume(path, o as AWMOptions<shapes.ShapesPrompt>),
  },
  dgpo: {
    name: 'DGPO',
    make: (net, o) => new DGPO(net, o as DGPOOptions<shapes.ShapesPrompt>),
    resume: (path, o) => DGPO.resume(path, o as DGPOOptions<shapes.ShapesPrompt>),
  },
  'grpo-fast': {
    name: 'Flow-GRPO-Fast',
    make: (net, o) => new FlowGRPOFast(net, o as FlowGRPOFastOptions<shapes.ShapesPrompt>),
    resume: (path, o) => FlowGRPOFast.resume(path, o as FlowGRPOFastOptions<shapes.ShapesPrompt>),
  },
  mixgrpo: {
    name: 'MixGRPO',
    make: (net, o) => new MixGRPO(net, o as MixGRPOOptions<shapes.ShapesPrompt>),
    resume: (path, o) => MixGRPO.resume(path, o as MixGRPOOptions<shapes.ShapesPrompt>),
  },
  'grpo-guard': {
    name: 'GRPO-Guard',
    make: (net, o) => new GRPOGuard(net, o as GRPOGuardOptions<shapes.ShapesPrompt>),
    resume: (path, o) => GRPOGuard.resume(path, o as GRPOGuardOptions<shapes.ShapesPrompt>),
  },
};

/** A method's name on the curves and in the reports ('DiffusionNFT', 'FlowGRPO', 'Flow-GRPO-Fast', …). */
export function methodName(method: Method): string {
  return METHODS[method].name;
}

/**
 * Whether another epoch fits a budget of training seconds: while the budget left is more than half the mean epoch so
 * far (the first epoch runs whenever some budget is left), so that a run ends within half an epoch of its budget,
 * over or under, rather than up to a whole epoch over.
 */
export function epochFits(trainedSeconds: number, budgetSeconds: number, epochs: number): boolean {
  if (epochs === 0) return trainedSeconds < budgetSeconds;
  return budgetSeconds - trainedSeconds > trainedSeconds / epochs / 2;
}

/**
 * An RL run on shapes from the network's current weights: the method's epochs with the task's partial-credit reward
 * on the training prompts, evaluated every few epochs on the test prompts (strict score, CFG-free), a checkpoint and
 * the metrics written to `out` as it goes. Aborting stops after the current epoch and saves.
 */
export async function trainShapes(options: TrainShapesOptions): Promise<{ points: RunPoint[]; net: VelocityNet }> {
  // The table's fields checked, with their defaults (the CLI passes its other flags too: they are ignored).
  const resolved = resolveOptions('trainShapes options', pick(options, TRAIN_SHAPES_SCHEMA), TRAIN_SHAPES_SCHEMA);
  const o = { ...options, ...resolved, base: options.base };
  const evalGuidance = (o.evalGuidance ?? []).map((g, i) => checkGuidance(g, `evalGuidance[${i}]`));
  const common = {
    prompts: shapes.TRAIN_PROMPTS,
    rewards: shapes.rewardOf(o.reward, o.categoryWeights),
    seed: 1,
    ...SHAPES_TRAINER_DEFAULTS[o.method],
    ...o.trainer,
  };
  const method = METHODS[o.method];
  let trainer: ShapesTrainer;
  if (o.resume) {
    trainer = await method.resume(o.base, common);
  } else {
    const { net } = await loadCheckpoint(o.base);
    trainer = method.make(net, common);
  }
  const net = trainer.net;
  // Distributed (docs/distributed.md), every rank computes the same run and rank 0 alone writes and reports it.
  const lead = currentWorld().rank === 0;
  if (lead) await mkdir(o.out, { recursive: true });
  const log = (lead ? o.log : undefined) ?? (() => {});
  const { evalEvery, evalSamplesPerPrompt } = o;
  // A resumed run continues the stream of the run it came from (the metrics beside its checkpoint), epochs and
  // training seconds included.
  const metrics = await MetricsLog.open({
    dir: lead ? o.out : undefined,
    from: o.resume ? dirname(o.base) : undefined,
    epoch: trainer.epochCount,
    trainer: trainer.constructor.name,
    onUnreadable: (error) => log(error.message),
    config: {
      method: o.method,
      base: o.base,
      resume: o.resume === true,
      epochs: o.epochs,
      minutes: o.minutes,
      evalEvery,
      evalSamplesPerPrompt,
      evalGuidance,
      reward: o.reward,
      categoryWeights: o.categoryWeights,
      trainer: trainer.resolvedOptions,
    },
  });
  try {
    // --minutes bounds this call's training (evaluations excluded, as they are part of neither method); --epochs
    // counts from the run's start.
    const limitSeconds = (o.minutes ?? Number.POSITIVE_INFINITY) * 60;
    const epochs = o.epochs ?? Number.POSITIVE_INFINITY;
    const byEpoch = Number.isFinite(epochs);
    const progress = lead
      ? new Progress(o.method, byEpoch ? epochs : limitSeconds, byEpoch ? 'epochs' : 'seconds')
      : undefined;
    let trainingSeconds = 0;
    let trainedEpochs = 0;
    // The run's target and how far it is, for the progress records.
    const target = () =>
      byEpoch
        ? { unit: 'epochs' as const, done: trainer.epochCount, total: epochs }
        : { unit: 'seconds' as const, done: trainingSeconds, total: limitSeconds };
    const phase = (name: Phase, secondsLeft?: number) =>
      metrics.progress(trainer.epochCount, {
        phase: name,
        ...(Number.isFinite(target().total) ? { target: target() } : {}),
        ...(secondsLeft !== undefined && Number.isFinite(secondsLeft) ? { secondsLeft } : {}),
      });

    // The time left to the target as of the last epoch (none before the first).
    let secondsLeft: number | undefined;
    // Scores the current weights at the current epoch, with a sample grid, and logs the point.
    const evaluatePoint = async (reward: number) => {
      const epoch = trainer.epochCount;
      await phase('evaluating', secondsLeft);
      const shown = (what: string) =>
        lead ? progressReporter(`evaluating epoch ${epoch}${what}`, 'samples') : undefined;
      const e = await evaluateShapes(net, { samplesPerPrompt: evalSamplesPerPrompt }, shown(''));
      const guided: Record<string, shapes.ShapesEvaluation> = {};
      for (const g of evalGuidance) {
        const label = guidanceLabel(g);
        guided[label] = await evaluateShapes(
          net,
          { ...g, samplesPerPrompt: evalSamplesPerPrompt },
          shown(`, ${label}`),
        );
      }
      const png = await runGrid(net);
      const guidedScores = Object.entries(guided).map(([label, ge]) => [
        label,
        { strict: ge.overall, reward: ge.reward, categories: ge.byCategory },
      ]);
      await metrics.evaluation(
        epoch,
        {
          reward: e.reward,
          rewards: { shapes: e.reward },
          samples: e.samples,
          strict: e.overall,
          categories: e.byCategory,
          standardError: e.standardError,
          ...(evalGuidance.length > 0 ? { guided: Object.fromEntries(guidedScores) } : {}),
        },
        { png, prompts: gridPrompts().map((p) => p.text) },
      );
      const withGuidance = Object.entries(guided).map(([label, g]) => `  strict (${label}) ${g.overall.toFixed(3)}`);
      log(
        `epoch ${String(epoch).padStart(4)}  ${formatSeconds(metrics.elapsed)}  reward ${Number.isNaN(reward) ? '  -  ' : reward.toFixed(3)}  strict (test, no CFG) ${e.overall.toFixed(3)}  test reward ${e.reward.toFixed(3)}${withGuidance.join('')}`,
      );
      return { plain: e, guided };
    };
    const evaluated = () => metrics.evaluations().at(-1)?.epoch === trainer.epochCount;
    const started = performance.now();
    if (!evaluated()) {
      const fresh = trainer.epochCount === 0;
      const first = await evaluatePoint(Number.NaN);
      // A fresh run is measured against its base: the first evaluation's scores, unless the caller gives its own.
      const own = [
        { label: 'base, no CFG', evaluation: first.plain },
        ...Object.entries(first.guided).map(([label, evaluation]) => ({ label: `base, ${label}`, evaluation })),
      ];
      for (const { label, evaluation: r } of fresh ? (o.references ?? own) : []) {
        await metrics.reference(0, {
          label,
          reward: r.reward,
          strict: r.overall,
          samples: r.samples,
          standardError: r.standardError,
        });
      }
    }
    let last: EpochStats | undefined;
    while (
      trainer.epochCount < epochs &&
      epochFits(trainingSeconds, limitSeconds, trainedEpochs) &&
      !o.signal?.aborted
    ) {
      // Each epoch samples its rollouts, then trains on them.
      await phase('sampling', secondsLeft);
      last = await trainer.epoch(undefined, () => phase('training', secondsLeft).then(() => {}));
      trainingSeconds += last.seconds.total;
      trainedEpochs += 1;
      await metrics.epoch(last);
      secondsLeft = progress?.update(
        byEpoch ? trainer.epochCount : trainingSeconds,
        `reward ${last.reward.toFixed(3)}`,
      );
      if (trainer.epochCount % evalEvery === 0) await evaluatePoint(last.reward);
    }
    progress?.done();
    if (last && !evaluated()) await evaluatePoint(last.reward);
    await trainer.save(join(o.out, 'checkpoint.safetensors'));
    const points = runPoints(metrics.records);
    if (lead) {
      if (net.lora !== null) await saveAdapter(join(o.out, 'adapter.safetensors'), net, { optimizer: false });
      await writeCurves(o.out, [{ name: method.name, points }]);
    }
    await phase('finished');
    log(`done in ${formatSeconds((performance.now() - started) / 1000)}; wrote ${o.out}`);
    return { points, net };
  } finally {
    await metrics.close();
  }
}
