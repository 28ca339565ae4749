// The curves of shapes runs: the evaluated points of a run's metrics records, drawn against epochs and seconds.
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/files.js';
import { lineChart } from '../../images/chart.js';
import { svgToPng } from '../../images/png.js';
import type { MetricsRecord } from '../../metrics/records.js';

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
