// The jobs of the `shapes` benchmark that the CLI and the demo run: pre-training a base model, evaluating it
// GenEval-style, sample grids, and RL runs (DiffusionNFT or FlowGRPO) with curves and reports.
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { loadCheckpoint } from '../checkpoint.js';
import { currentWorld } from '../distributed.js';
import { writeFileAtomic } from '../files.js';
import { imageGrid, svgToPng } from '../images.js';
import { saveAdapter } from '../lora.js';
import { type EvaluationScores, MetricsLog } from '../metrics/log.js';
import type { MetricsRecord } from '../metrics/records.js';
import type { VelocityNet } from '../net.js';
import { resolveOptions } from '../options.js';
import { ROLLOUT_RULES, resolveInterval, type SolverName, sample } from '../solvers.js';
import * as shapes from '../tasks/shapes/index.js';
import { Tensor } from '../tensor.js';
import { DiffusionNFT, type DiffusionNFTOptions } from '../trainers/diffusion-nft.js';
import { FlowGRPO, type FlowGRPOOptions } from '../trainers/flowgrpo.js';
import type { EpochStats } from '../trainers/online.js';
import { lineChart } from './chart.js';
import { type PretrainOptions, type PretrainResult, pretrainLoop } from './pretrain.js';
import { formatSeconds, Progress } from './progress.js';

/** The prompt of a text, e.g. "a red circle left of a blue square"; the error lists close matches. */
export function findPrompt(text: string): shapes.ShapesPrompt {
  const wanted = text.trim().toLowerCase().replace(/\s+/g, ' ');
  const found = shapes.ALL_PROMPTS.find((p) => p.text === wanted);
  if (found) return found;
  const close = shapes.ALL_PROMPTS.map((p) => ({ p, distance: editDistance(p.text, wanted) }))
    .sort((a, b) => a.distance - b.distance)
    .slice(0, 3)
    .map(({ p }) => `'${p.text}'`);
  throw new RangeError(`no shapes prompt '${text}'; close ones: ${close.join(', ')}`);
}

// Levenshtein distance, for suggesting prompts.
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (previous[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length] as number;
}

/** Flow-matching pre-training on rendered caption–image pairs of the training prompts, with condition dropout. */
export function pretrainShapes(net: VelocityNet, o: PretrainOptions): Promise<PretrainResult> {
  return pretrainLoop(net, o, (index) => shapes.batch(o.batch, o.seed, index));
}

/** Classifier-free guidance of an evaluation or a grid: the scale, and the times t it applies at (see `sample`). */
export interface Guidance {
  cfgScale?: number;
  cfgInterval?: readonly [number, number];
}

/**
 * The guidance the shapes benchmark reports as "with CFG": scale 5 at t ≤ 0.6 only. Plain CFG over the whole
 * trajectory erases lone objects (the null condition's average scene has more objects than "a triangle", so guiding
 * away from it at high noise empties the image); limited to t ≤ 0.6 it keeps them and raises the strict score (README).
 */
export const SHAPES_GUIDANCE = { cfgScale: 5, cfgInterval: [0, 0.6] } as const satisfies Guidance;

const GUIDANCE_SCHEMA = { cfgScale: ROLLOUT_RULES.cfgScale, cfgInterval: { type: 'value' } } as const;

/** A guidance checked (scale as `sample` takes it, interval [lo, hi] within [0, 1]), with its defaults. */
export function checkGuidance(g: Guidance, what: string): Required<Guidance> {
  const { cfgScale, cfgInterval } = resolveOptions(what, g, GUIDANCE_SCHEMA);
  return { cfgScale, cfgInterval: resolveInterval(cfgInterval, `${what}.cfgInterval`) };
}

/** "no CFG", "CFG 3", "CFG 5 at t ≤ 0.6", "CFG 5 at 0.2 ≤ t ≤ 0.6". */
export function guidanceLabel(g: Guidance): string {
  const scale = g.cfgScale ?? 1;
  if (scale === 1) return 'no CFG';
  const [lo, hi] = g.cfgInterval ?? [0, 1];
  if (lo === 0 && hi === 1) return `CFG ${scale}`;
  if (lo === 0) return `CFG ${scale} at t ≤ ${hi}`;
  return hi === 1 ? `CFG ${scale} at t ≥ ${lo}` : `CFG ${scale} at ${lo} ≤ t ≤ ${hi}`;
}

/** Options of evaluateShapes. */
export interface EvalOptions extends Guidance {
  prompts?: readonly shapes.ShapesPrompt[];
  samplesPerPrompt?: number;
  steps?: number;
  solver?: SolverName;
  seed?: number;
  params?: 'theta' | 'ema' | 'old';
}

/** GenEval-style strict scores of fresh samples (default: the test prompts, 8 each, 40-step Euler, no CFG). */
export async function evaluateShapes(net: VelocityNet, o: EvalOptions = {}): Promise<shapes.ShapesEvaluation> {
  const prompts = (o.prompts ?? shapes.TEST_PROMPTS).flatMap((p) =>
    Array.from({ length: o.samplesPerPrompt ?? 8 }, () => p),
  );
  const cond = Tensor.fromInt32(tokensOf(prompts), [prompts.length, shapes.SLOTS]);
  const { x } = await sample(net, {
    cond,
    solver: o.solver ?? 'euler',
    steps: o.steps ?? 40,
    cfgScale: o.cfgScale ?? 1,
    cfgInterval: o.cfgInterval,
    seed: o.seed ?? 12345,
    params: o.params ?? 'theta',
  });
  return shapes.evaluate(x, prompts);
}

function tokensOf(prompts: readonly shapes.ShapesPrompt[]): Int32Array {
  return Int32Array.from(prompts.flatMap((p) => [...p.tokens]));
}

/** A PNG grid of samples: `perPrompt` samples of each prompt in a row labelled with the prompt, the same noise for every call. */
export async function sampleGrid(
  net: VelocityNet,
  prompts: readonly shapes.ShapesPrompt[],
  o: Guidance & { perPrompt?: number; steps?: number; seed?: number; params?: 'theta' | 'ema' } = {},
): Promise<Buffer> {
  const perPrompt = o.perPrompt ?? 8;
  const list = prompts.flatMap((p) => Array.from({ length: perPrompt }, () => p));
  const { x } = await sample(net, {
    cond: Tensor.fromInt32(tokensOf(list), [list.length, shapes.SLOTS]),
    solver: 'euler',
    steps: o.steps ?? 40,
    cfgScale: o.cfgScale ?? 1,
    cfgInterval: o.cfgInterval,
    seed: o.seed ?? 7,
    params: o.params ?? 'theta',
  });
  return imageGrid(x, { size: shapes.IMAGE_SIZE, columns: perPrompt, scale: 4, rowLabels: prompts.map((p) => p.text) });
}

/** The scores of one evaluation on the test prompts: strict score, mean reward, strict score per category. */
export interface PointScores {
  strict: number;
  testReward: number;
  categories: Record<string, number>;
}

/** One evaluated point of an RL run. */
export interface RunPoint extends PointScores {
  epoch: number;
  seconds: number;
  /** Mean reward of the epoch's rollouts (training prompts); NaN before training. */
  reward: number;
  /** The evaluation with guidance beside the CFG-free one (the fields above), by guidanceLabel. */
  guided: Record<string, PointScores>;
}

/** The evaluated points of a run's metrics records, each with the training reward of its epoch. */
export function runPoints(records: readonly MetricsRecord[]): RunPoint[] {
  const rewards = new Map(records.flatMap((r) => (r.kind === 'epoch' ? [[r.epoch, r.reward] as const] : [])));
  return records.flatMap((r) =>
    r.kind === 'evaluation'
      ? [
          {
            epoch: r.epoch,
            seconds: r.elapsed,
            reward: rewards.get(r.epoch) ?? Number.NaN,
            strict: r.strict ?? Number.NaN,
            testReward: r.reward,
            categories: r.categories ?? {},
            guided: Object.fromEntries(
              Object.entries(r.guided ?? {}).map(([label, g]) => [
                label,
                { strict: g.strict, testReward: g.reward, categories: g.categories },
              ]),
            ),
          },
        ]
      : [],
  );
}

/** The prompts of the sample grids: the first test prompt of each category and two unseen compositions. */
export function gridPrompts(): shapes.ShapesPrompt[] {
  const picked = shapes.CATEGORIES.map((c) => shapes.TEST_PROMPTS.find((p) => p.category === c) as shapes.ShapesPrompt);
  const unseen = shapes.TEST_PROMPTS.filter((p) => !shapes.TRAIN_PROMPTS.includes(p) && !picked.includes(p));
  return [...picked, ...unseen.slice(0, 2)];
}

/** The sample grid of gridPrompts() that runs and the demo write: 8 samples a row, the same noise every time. */
export function runGrid(net: VelocityNet, guidance: Guidance = {}): Promise<Buffer> {
  return sampleGrid(net, gridPrompts(), { ...guidance, perPrompt: 8, seed: 7 });
}

/** Options of trainShapes. */
export interface TrainShapesOptions {
  method: 'nft' | 'flowgrpo';
  /**
   * The base checkpoint, or with `resume` a checkpoint of a run of the same method to continue (its curve too, from
   * the metrics beside it).
   */
  base: string;
  resume?: boolean;
  /** Stop at this many epochs since the run's start, or after this many minutes of training in this call. */
  epochs?: number;
  minutes?: number;
  /** Evaluate every this many epochs (default 5) on the test prompts. */
  evalEvery?: number;
  evalSamplesPerPrompt?: number;
  /**
   * Output folder: checkpoint.safetensors, the metrics stream (metrics.jsonl, config.json, a sample grid per
   * evaluation in samples/; docs/dashboard.md) and the curves (SVG and PNG).
   */
  out: string;
  /** Trainer options beyond the task's prompts and reward. */
  trainer?: Record<string, unknown>;
  /** The reward trained on (default 'partial'), each sample's scaled by its category's weight (default 1). */
  reward?: shapes.RewardKind;
  categoryWeights?: Partial<Record<shapes.Category, number>>;
  /**
   * Guidance of further evaluations at each point, beside the CFG-free one that always runs (default: none). A
   * FlowGRPO run trained with guidance is meant to be scored with it too.
   */
  evalGuidance?: readonly Guidance[];
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/**
 * The default trainer settings on shapes for each method: the best of each in the B4 sweeps (README;
 * bench/results/2026-11-23-B4-AMD-EPYC, 2026-12-01-B4-Intel-Xeon-20min). Every weight trains here, so lr is a third
 * of the codes' LoRA 3e-4.
 */
export const SHAPES_TRAINER_DEFAULTS = {
  nft: { groups: 16, groupSize: 8, lr: 1e-4, beta: 1 },
  flowgrpo: { groups: 16, groupSize: 8, lr: 1e-4, clipRange: 0.2, klCoef: 0.04 },
} as const;

/**
 * An RL run on shapes from the network's current weights: the method's epochs with the task's partial-credit reward
 * on the training prompts, evaluated every few epochs on the test prompts (strict score, CFG-free), a checkpoint and
 * the metrics written to `out` as it goes. Aborting stops after the current epoch and saves.
 */
export async function trainShapes(o: TrainShapesOptions): Promise<{ points: RunPoint[]; net: VelocityNet }> {
  const evalGuidance = (o.evalGuidance ?? []).map((g, i) => checkGuidance(g, `evalGuidance[${i}]`));
  const common = {
    prompts: shapes.TRAIN_PROMPTS,
    rewards: shapes.rewardOf(o.reward ?? 'partial', o.categoryWeights),
    seed: 1,
    ...SHAPES_TRAINER_DEFAULTS[o.method],
    ...o.trainer,
  };
  const nftOptions = common as DiffusionNFTOptions<shapes.ShapesPrompt>;
  const grpoOptions = common as FlowGRPOOptions<shapes.ShapesPrompt>;
  let trainer: DiffusionNFT<shapes.ShapesPrompt> | FlowGRPO<shapes.ShapesPrompt>;
  if (o.resume) {
    trainer =
      o.method === 'nft' ? await DiffusionNFT.resume(o.base, nftOptions) : await FlowGRPO.resume(o.base, grpoOptions);
  } else {
    const { net } = await loadCheckpoint(o.base);
    trainer = o.method === 'nft' ? new DiffusionNFT(net, nftOptions) : new FlowGRPO(net, grpoOptions);
  }
  const net = trainer.net;
  // Distributed (docs/distributed.md), every rank computes the same run and rank 0 alone writes and reports it.
  const lead = currentWorld().rank === 0;
  if (lead) await mkdir(o.out, { recursive: true });
  const log = (lead ? o.log : undefined) ?? (() => {});
  const evalEvery = o.evalEvery ?? 5;
  const evalSamplesPerPrompt = o.evalSamplesPerPrompt ?? 4;
  // A resumed run continues the stream of the run it came from (the metrics beside its checkpoint), epochs and
  // training seconds included.
  const metrics = await MetricsLog.open({
    dir: lead ? o.out : undefined,
    from: o.resume ? dirname(o.base) : undefined,
    epoch: trainer.epochCount,
    trainer: trainer.constructor.name,
    onUnreadable: (error) => log(`ignoring ${error.message}: the curve starts at epoch ${trainer.epochCount}`),
    config: {
      method: o.method,
      base: o.base,
      resume: o.resume === true,
      epochs: o.epochs,
      minutes: o.minutes,
      evalEvery,
      evalSamplesPerPrompt,
      evalGuidance,
      reward: o.reward ?? 'partial',
      categoryWeights: o.categoryWeights,
      trainer: trainer.resolvedOptions,
    },
  });
  // Scores the current weights at the current epoch, with a sample grid, and logs the point.
  const evaluatePoint = async (reward: number) => {
    const epoch = trainer.epochCount;
    const e = await evaluateShapes(net, { samplesPerPrompt: evalSamplesPerPrompt });
    const guided: NonNullable<EvaluationScores['guided']> = {};
    for (const g of evalGuidance) {
      const ge = await evaluateShapes(net, { ...g, samplesPerPrompt: evalSamplesPerPrompt });
      guided[guidanceLabel(g)] = { strict: ge.overall, reward: ge.reward, categories: ge.byCategory };
    }
    const png = await runGrid(net);
    await metrics.evaluation(
      epoch,
      {
        reward: e.reward,
        rewards: { shapes: e.reward },
        samples: e.samples,
        strict: e.overall,
        categories: e.byCategory,
        ...(evalGuidance.length > 0 ? { guided } : {}),
      },
      { png, prompts: gridPrompts().map((p) => p.text) },
    );
    const withGuidance = Object.entries(guided).map(([label, g]) => `  strict (${label}) ${g.strict.toFixed(3)}`);
    log(
      `epoch ${String(epoch).padStart(4)}  ${formatSeconds(metrics.elapsed)}  reward ${Number.isNaN(reward) ? '  -  ' : reward.toFixed(3)}  strict (test, no CFG) ${e.overall.toFixed(3)}  test reward ${e.reward.toFixed(3)}${withGuidance.join('')}`,
    );
  };
  const evaluated = () => metrics.evaluations().at(-1)?.epoch === trainer.epochCount;
  const started = performance.now();
  if (!evaluated()) await evaluatePoint(Number.NaN);
  // --minutes bounds this call's training (evaluations excluded, as they are part of neither method); --epochs
  // counts from the run's start.
  const limitSeconds = (o.minutes ?? Number.POSITIVE_INFINITY) * 60;
  const epochs = o.epochs ?? Number.POSITIVE_INFINITY;
  const byEpoch = Number.isFinite(epochs);
  const progress = lead
    ? new Progress(o.method, byEpoch ? epochs : limitSeconds, byEpoch ? 'epochs' : 'seconds')
    : undefined;
  let trainingSeconds = 0;
  let last: EpochStats | undefined;
  while (trainer.epochCount < epochs && trainingSeconds < limitSeconds && !o.signal?.aborted) {
    last = await trainer.epoch();
    trainingSeconds += last.seconds.total;
    await metrics.epoch(last);
    progress?.update(byEpoch ? trainer.epochCount : trainingSeconds, `reward ${last.reward.toFixed(3)}`);
    if (trainer.epochCount % evalEvery === 0) await evaluatePoint(last.reward);
  }
  progress?.done();
  if (last && !evaluated()) await evaluatePoint(last.reward);
  await trainer.save(join(o.out, 'checkpoint.safetensors'));
  const points = runPoints(metrics.records);
  if (lead) {
    if (net.lora !== null) await saveAdapter(join(o.out, 'adapter.safetensors'), net, { optimizer: false });
    await writeCurves(o.out, [{ name: o.method === 'nft' ? 'DiffusionNFT' : 'FlowGRPO', points }]);
  }
  log(`done in ${formatSeconds((performance.now() - started) / 1000)}; wrote ${o.out}`);
  return { points, net };
}

/**
 * The strict score and reward on the test prompts (no CFG) and the training reward, each against epochs and against
 * wall-clock, as SVG and PNG: `strict-vs-epoch`, `strict-vs-seconds`, `reward-vs-…`, `testReward-vs-…`.
 */
export async function writeCurves(out: string, runs: { name: string; points: RunPoint[] }[]): Promise<void> {
  const metrics = [
    ['strict', 'shapes: strict score on test prompts (no CFG)', 'strict score'],
    ['reward', 'shapes: mean training reward of the rollouts', 'reward'],
    ['testReward', 'shapes: mean reward on the test prompts (no CFG)', 'reward'],
  ] as const;
  const axes = [
    ['epoch', 'epoch'],
    ['seconds', 'training wall-clock (s)'],
  ] as const;
  for (const [metric, title, yLabel] of metrics) {
    for (const [axis, xLabel] of axes) {
      const series = runs.map((r) => ({
        name: r.name,
        points: r.points.filter((p) => Number.isFinite(p[metric])).map((p) => [p[axis], p[metric]] as const),
      }));
      // From 0 to a round value above the best point: at this scale the scores differ by hundredths.
      const svg = lineChart(series, { title, xLabel, yLabel, yMin: 0 });
      await writeFileAtomic(join(out, `${metric}-vs-${axis}.svg`), svg);
      await writeFileAtomic(join(out, `${metric}-vs-${axis}.png`), svgToPng(svg));
    }
  }
}
