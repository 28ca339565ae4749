// The report of a sweep over seeds: per run and evaluation view (CFG-free, and each guidance it was scored with)
// the mean curve with every seed's value, each seed's time to each threshold, the speed-ups with their spread over
// seed pairs, the per-category curves; written as report.md, results.json and charts (SVG and PNG).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../lib/core/files.js';
import { lineChart } from '../../lib/images/chart.js';
import { svgToPng } from '../../lib/images/png.js';
import type { PointScores, RunPoint } from '../../lib/jobs/shapes/curves.js';
import { guidanceLabel } from '../../lib/jobs/shapes/guidance.js';
import { methodName } from '../../lib/jobs/shapes/train.js';
import { CATEGORIES } from '../../lib/tasks/shapes/index.js';
import {
  type BestSpeedup,
  type MeanPoint,
  mean,
  meanCurve,
  type Reach,
  type SeedEnds,
  type SeedPoint,
  type Speedup,
  seedEnds,
  speedup,
  speedupToBest,
  timeToThreshold,
} from './aggregate.js';
import { type RunResult, type SeedEpochs, type Trained, trainedLabel } from './harness.js';
import { asUsedLabel, forwardsPerEpoch, type RunSpec, type Sweep } from './spec.js';

const NO_CFG = 'no CFG';
type Metric = 'strict' | 'testReward';
const METRICS: readonly Metric[] = ['strict', 'testReward'];

/** The scores of a point in a view: the CFG-free evaluation, or the guided one of that label. */
function scoresIn(p: RunPoint, view: string): PointScores | undefined {
  return view === NO_CFG ? p : p.guided[view];
}

/** The views a run was evaluated in: CFG-free, then each guidance. */
function viewsOf(r: RunResult): string[] {
  return [NO_CFG, ...(r.spec.evalGuidance ?? []).map(guidanceLabel)];
}

/** Each seed's points of a value in a view. */
function seedSeries(r: RunResult, view: string, value: (s: PointScores) => number | undefined): SeedPoint[][] {
  return r.points.map((points) =>
    points.flatMap((p) => {
      const s = scoresIn(p, view);
      const v = s === undefined ? undefined : value(s);
      return v === undefined || !Number.isFinite(v) ? [] : [{ epoch: p.epoch, seconds: p.seconds, value: v }];
    }),
  );
}

/** What the report computes, also written as results.json. */
export interface SweepReport {
  runs: {
    name: string;
    method: string;
    seeds: number[];
    forwardsPerEpoch: number;
    trainedSeconds: number[];
    threads: (number | null)[];
    /** Each seed's epochs and mean seconds per epoch by phase. */
    epochs: SeedEpochs[];
    trained?: Trained;
    asUsed: string;
    views: {
      view: string;
      curves: Record<Metric, MeanPoint[]>;
      /** Each seed's best and last evaluation of each metric. */
      ends: Record<Metric, (SeedEnds | null)[]>;
      categories: Record<string, MeanPoint[]>;
      reach: { metric: Metric; threshold: number; seeds: (Reach | null)[] }[];
    }[];
  }[];
  speedups: { a: string; b: string; view: string; metric: Metric; threshold: number; speedup: Speedup }[];
  /** Each pair's speed-up to b's best mean value, per view and metric. */
  toBest: { a: string; b: string; view: string; metric: Metric; speedup: BestSpeedup }[];
}

/** The report's numbers. */
export function summarise(sweep: Sweep, results: readonly RunResult[]): SweepReport {
  const thresholds: Record<Metric, readonly number[]> = {
    strict: sweep.thresholds,
    testReward: sweep.rewardThresholds,
  };
  const runs = results.map((r) => ({
    name: r.spec.name,
    method: r.spec.method,
    seeds: r.seeds,
    forwardsPerEpoch: forwardsPerEpoch(r.spec),
    trainedSeconds: r.trainedSeconds,
    threads: r.threads,
    epochs: r.epochs,
    trained: r.trained,
    asUsed: asUsedLabel(r.spec),
    views: viewsOf(r).map((view) => {
      const series = {
        strict: seedSeries(r, view, (s) => s.strict),
        testReward: seedSeries(r, view, (s) => s.testReward),
      };
      const categories = Object.fromEntries(
        CATEGORIES.map((c) => [c, meanCurve(seedSeries(r, view, (s) => s.categories[c]))]),
      );
      return {
        view,
        curves: { strict: meanCurve(series.strict), testReward: meanCurve(series.testReward) },
        ends: { strict: series.strict.map(seedEnds), testReward: series.testReward.map(seedEnds) },
        categories,
        reach: METRICS.flatMap((metric) =>
          thresholds[metric].map((threshold) => ({
            metric,
            threshold,
            seeds: series[metric].map((points) => timeToThreshold(points, threshold)),
          })),
        ),
      };
    }),
  }));
  const speedups: SweepReport['speedups'] = [];
  const toBest: SweepReport['toBest'] = [];
  for (const [aName, bName] of sweep.compare) {
    const a = runs.find((r) => r.name === aName);
    const b = runs.find((r) => r.name === bName);
    if (a === undefined || b === undefined) continue; // an aborted sweep: the run never started
    // Each as it is meant to be used, then both CFG-free.
    const aLimit = mean(a.trainedSeconds);
    const pairs = new Set([`${a.asUsed}\u0000${b.asUsed}`, `${NO_CFG}\u0000${NO_CFG}`]);
    for (const pair of pairs) {
      const [va, vb] = pair.split('\u0000') as [string, string];
      const view = va === vb ? va : `${va} / ${vb}`;
      const ra = a.views.find((v) => v.view === va);
      const rb = b.views.find((v) => v.view === vb);
      for (const metric of METRICS) {
        const best = speedupToBest(ra?.curves[metric] ?? [], rb?.curves[metric] ?? [], aLimit);
        toBest.push({ a: aName, b: bName, view, metric, speedup: best });
        for (const threshold of thresholds[metric]) {
          const find = (v: typeof ra) =>
            v?.reach.find((x) => x.metric === metric && x.threshold === threshold)?.seeds ?? [];
          speedups.push({
            a: aName,
            b: bName,
            view,
            metric,
            threshold,
            speedup: speedup(find(ra), find(rb), b.trainedSeconds),
          });
        }
      }
    }
  }
  return { runs, speedups, toBest };
}

/**
 * The largest ratio of host yardsticks (SeedEpochs.hostSeconds) that still counts as one host: the seeds of one host
 * differ by up to 10 % here, the hosts of two sessions by 60 %.
 */
export const HOST_TOLERANCE = 1.25;

/** The slowest seed's host yardstick over the fastest's, over the seeds of the given runs (null: none timed). */
export function hostSpread(runs: readonly { epochs: readonly SeedEpochs[] }[]): number | null {
  const seconds = runs.flatMap((r) => r.epochs.flatMap((e) => (e.hostSeconds === null ? [] : [e.hostSeconds])));
  return seconds.length === 0 ? null : Math.max(...seconds) / Math.min(...seconds);
}

const fixed = (x: number, d = 3) => x.toFixed(d);
const reachText = (r: Reach | null) => (r === null ? 'not reached' : `${r.seconds.toFixed(0)} s (epoch ${r.epoch})`);

export function speedupText(s: Speedup): string {
  if (s.untrained) return `${s.untrained} meets it untrained`;
  if (s.ratio === null) return 'not on every seed of a';
  const bound = s.bound === '>' ? '> ' : '';
  return `${bound}${s.ratio.toFixed(2)}× (${bound}${(s.min as number).toFixed(2)}–${(s.max as number).toFixed(2)}×)`;
}

/** The cells of a speed-up to b's best: the level, b's time, a's time, the ratio. */
export function bestText(s: BestSpeedup): string {
  if ('none' in s) return `${s.none} | – | – | no figure`;
  const reached = s.aSeconds === null ? 'not reached' : `${s.aSeconds.toFixed(0)} s`;
  return `${fixed(s.level)} | ${s.bSeconds.toFixed(0)} s | ${reached} | ${s.bound === '<' ? '< ' : ''}${s.ratio.toFixed(2)}×`;
}

/** '1 thread each', '2 threads each', or each seed's ('1, 2 threads'; '? ' where a seed's record lacks it). */
export function threadsText(threads: readonly (number | null)[]): string {
  const first = threads[0];
  if (first !== undefined && first !== null && threads.every((t) => t === first)) {
    return `${first} thread${first === 1 ? '' : 's'} each`;
  }
  return `${threads.map((t) => t ?? '?').join(', ')} threads`;
}

/** The report as Markdown. */
export function reportMarkdown(report: SweepReport, header: string[]): string {
  const lines = [...header, ''];
  const spread = hostSpread(report.runs);
  if (spread !== null && spread > HOST_TOLERANCE) {
    lines.push(
      `**The seeds were timed on hosts of different speed**: an evaluation, the same work in every seed, took up to ${spread.toFixed(2)}× longer on one than on another (the median of each seed's, in its run's first table). Times, and the speed-ups below, compare only seeds within ${Math.round((HOST_TOLERANCE - 1) * 100)} % of each other; the speed-ups of pairs beyond it are marked.`,
      '',
    );
  }
  for (const run of report.runs) {
    lines.push(`## ${run.name}`, '');
    lines.push(
      `${methodName(run.method as RunSpec['method'])}, seeds ${run.seeds.join(', ')}; ${run.forwardsPerEpoch} network evaluations per epoch; ${run.trained ? `trains ${trainedLabel(run.trained)} floats; ` : ''}trained ${run.trainedSeconds.map((s) => `${s.toFixed(0)} s`).join(', ')} with ${threadsText(run.threads)} (native CPU threads); judged by its evaluation "${run.asUsed}".`,
      '',
    );
    lines.push(
      '| seed | epochs | s / epoch: sampling | scoring | training | total | s / evaluation (host) |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...run.seeds.map((seed, i) => {
        const e = run.epochs[i] as SeedEpochs;
        const { sample, reward, train, total } = e.perEpoch;
        const host = e.hostSeconds === null ? '–' : e.hostSeconds.toFixed(1);
        return `| ${seed} | ${e.epochs} | ${[sample, reward, train, total].map((x) => x.toFixed(2)).join(' | ')} | ${host} |`;
      }),
      '',
    );
    for (const view of run.views) {
      lines.push(`### ${view.view}`, '');
      const seedCols = run.seeds.map((s) => `seed ${s}`);
      lines.push(
        `| epoch | mean s | strict mean | ${seedCols.join(' | ')} | test reward mean | ${seedCols.join(' | ')} |`,
      );
      lines.push(
        `| --- | --- | --- | ${seedCols.map(() => '---').join(' | ')} | --- | ${seedCols.map(() => '---').join(' | ')} |`,
      );
      const reward = new Map(view.curves.testReward.map((p) => [p.epoch, p]));
      for (const p of view.curves.strict) {
        const r = reward.get(p.epoch);
        lines.push(
          `| ${p.epoch} | ${p.seconds.toFixed(0)} | ${fixed(p.value)} | ${p.values.map((v) => fixed(v)).join(' | ')} | ${r ? fixed(r.value) : '–'} | ${r ? r.values.map((v) => fixed(v)).join(' | ') : seedCols.map(() => '–').join(' | ')} |`,
        );
      }
      lines.push(
        '',
        '| seed | best strict (epoch) | best test reward (epoch) | final epoch | final strict | final test reward |',
        '| --- | --- | --- | --- | --- | --- |',
        ...run.seeds.map((seed, i) => {
          const strict = view.ends.strict[i];
          const reward = view.ends.testReward[i];
          const best = (e: SeedEnds | null | undefined) => (e ? `${fixed(e.best.value)} (${e.best.epoch})` : '–');
          const final = (e: SeedEnds | null | undefined) => (e ? fixed(e.final.value) : '–');
          return `| ${seed} | ${best(strict)} | ${best(reward)} | ${strict?.final.epoch ?? '–'} | ${final(strict)} | ${final(reward)} |`;
        }),
      );
      lines.push('', `| threshold | ${seedCols.join(' | ')} |`, `| --- | ${seedCols.map(() => '---').join(' | ')} |`);
      for (const r of view.reach)
        lines.push(`| ${r.metric} ≥ ${r.threshold} | ${r.seeds.map(reachText).join(' | ')} |`);
      const last = (curve: MeanPoint[]) => curve.at(-1);
      lines.push(
        '',
        `| category | at epoch | mean strict | ${seedCols.join(' | ')} |`,
        `| --- | --- | --- | ${seedCols.map(() => '---').join(' | ')} |`,
      );
      for (const [c, curve] of Object.entries(view.categories)) {
        const p = last(curve);
        if (p)
          lines.push(`| ${c} | ${p.epoch} | ${fixed(p.value, 2)} | ${p.values.map((v) => fixed(v, 2)).join(' | ')} |`);
      }
      lines.push('');
    }
  }
  if (report.speedups.length > 0) {
    const runsOf = (pair: { a: string; b: string }) =>
      report.runs.filter((r) => r.name === pair.a || r.name === pair.b);
    const hostsDiffer = (pair: { a: string; b: string }) => {
      const pairSpread = hostSpread(runsOf(pair));
      return pairSpread !== null && pairSpread > HOST_TOLERANCE ? ' (hosts differ)' : '';
    };
    lines.push('## Speed-ups', '');
    lines.push(
      "Training wall-clock to each threshold: b's mean time over a's, and in brackets the least and greatest ratio over the pairs of seeds. '>' marks a lower bound: some seed of b never reached the threshold, and its whole training time stands in for its time.",
      '',
      '| a | b | evaluation | threshold | speed-up of a over b |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const s of report.speedups)
      lines.push(
        `| ${s.a} | ${s.b} | ${s.view} | ${s.metric} ≥ ${s.threshold} | ${speedupText(s.speedup)}${hostsDiffer(s)} |`,
      );
    lines.push(
      '',
      "Training wall-clock to b's best: the highest value of b's mean curve, b's mean time to it over the time a's mean curve first reaches it (the measure the methods' papers quote). '<' marks an upper bound: a's mean curve never reached it, and a's whole mean training time stands in.",
      '',
      "| a | b | evaluation | metric | b's best (mean) | b reaches it | a reaches it | speed-up of a over b |",
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const s of report.toBest)
      lines.push(`| ${s.a} | ${s.b} | ${s.view} | ${s.metric} | ${bestText(s.speedup)}${hostsDiffer(s)} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

async function chart(
  dir: string,
  file: string,
  series: { name: string; points: [number, number][] }[],
  o: { title: string; xLabel: string; yLabel: string },
) {
  const svg = lineChart(series, { ...o, yMin: 0 });
  await writeFileAtomic(join(dir, `${file}.svg`), svg);
  await writeFileAtomic(join(dir, `${file}.png`), svgToPng(svg));
}

/**
 * Writes report.md, results.json (the sweep, every seed's points and the report's numbers) and the charts of
 * writeSweepCharts.
 */
export async function writeSweepReport(
  dir: string,
  sweep: Sweep,
  results: readonly RunResult[],
  header: string[],
  meta: Record<string, unknown>,
): Promise<SweepReport> {
  const report = summarise(sweep, results);
  await writeFile(join(dir, 'report.md'), reportMarkdown(report, header));
  await writeFile(join(dir, 'results.json'), `${JSON.stringify({ ...meta, sweep, results, report }, null, 2)}\n`);
  await writeSweepCharts(dir, report);
  return report;
}

/**
 * The mean curves over seeds of a sweep's report, as SVG and PNG: strict and test reward against epochs and seconds,
 * and the strict score of each category against epochs.
 */
export async function writeSweepCharts(dir: string, report: SweepReport): Promise<void> {
  const series = (pick: (v: SweepReport['runs'][number]['views'][number]) => MeanPoint[], axis: 'epoch' | 'seconds') =>
    report.runs.flatMap((run) =>
      run.views.map((v) => ({
        name: v.view === NO_CFG ? run.name : `${run.name} (${v.view})`,
        points: pick(v).map((p) => [p[axis], p.value] as [number, number]),
      })),
    );
  const axes = { epoch: 'epoch', seconds: 'training wall-clock (s)' } as const;
  const means = ` (mean of ${[...new Set(report.runs.map((r) => r.seeds.length))].join('/')} seeds)`;
  for (const metric of METRICS) {
    for (const axis of ['epoch', 'seconds'] as const) {
      const title =
        metric === 'strict' ? 'shapes: strict score on test prompts' : 'shapes: mean reward on test prompts';
      await chart(
        dir,
        `${metric}-vs-${axis}`,
        series((v) => v.curves[metric], axis),
        {
          title: title + means,
          xLabel: axes[axis],
          yLabel: metric === 'strict' ? 'strict score' : 'reward',
        },
      );
    }
  }
  for (const c of CATEGORIES) {
    await chart(
      dir,
      `category-${c}-vs-epoch`,
      series((v) => v.categories[c] ?? [], 'epoch'),
      {
        title: `shapes: strict score of '${c}' prompts${means}`,
        xLabel: 'epoch',
        yLabel: 'strict score',
      },
    );
  }
}
