// The charts of a results folder, drawn again from its records (bench/report.ts is the command), so that
// bench/results keeps only records (metrics.jsonl, sweep.json, results.json, report.md, config.json, logs) and git
// ignores the pictures. In every folder under the one given:
//   - a run (metrics.jsonl, or the older metrics.json): its curves, as the train job draws them (writeCurves);
//   - a sweep's report (results.json with `report`): the mean curves over seeds and per category (writeSweepCharts);
//   - the older B4 report (results.json with `results`, each run's spec and points): its runs overlaid;
//   - a folder of runs without a results.json (e.g. B4-LoRA's full/ and lora/): its runs overlaid, named by folder.
// Sample grids are not drawn: each is the model's samples at an evaluation, and the checkpoints are not kept.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readRunRecords } from '../lib/index.js';
import { type RunPoint, runPoints, writeCurves } from '../lib/jobs/shapes/curves.js';
import { type SweepReport, writeSweepCharts } from './sweep/report.js';

/** What was drawn in one folder. */
export interface Drawn {
  dir: string;
  kind: 'run' | 'sweep' | 'runs';
}

const isRun = (dir: string) => existsSync(join(dir, 'metrics.jsonl')) || existsSync(join(dir, 'metrics.json'));

/** A run folder's evaluated points and its name: the trainer its records start with, else the folder's name. */
async function readRun(dir: string): Promise<{ name: string; points: RunPoint[] }> {
  const records = await readRunRecords(dir);
  const start = records.find((r) => r.kind === 'start');
  return { name: start?.trainer ?? basename(dir), points: runPoints(records) };
}

/** The runs overlaid in a folder's results.json, or undefined when it holds none of the known forms. */
async function drawResults(dir: string): Promise<Drawn['kind'] | undefined> {
  const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as {
    report?: SweepReport;
    results?: { spec: { name: string }; points: RunPoint[] }[];
  };
  if (results.report !== undefined) {
    await writeSweepCharts(dir, results.report);
    return 'sweep';
  }
  if (Array.isArray(results.results)) {
    await writeCurves(
      dir,
      results.results.map((r) => ({ name: r.spec.name, points: r.points })),
    );
    return 'runs';
  }
  return undefined;
}

/** Draws the charts of every folder under `root` (itself included) from its records; returns what it drew. */
export async function drawReport(root: string): Promise<Drawn[]> {
  const drawn: Drawn[] = [];
  const visit = async (dir: string) => {
    const children = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(dir, e.name))
      .sort();
    if (isRun(dir)) {
      await writeCurves(dir, [await readRun(dir)]);
      drawn.push({ dir, kind: 'run' });
    } else if (existsSync(join(dir, 'results.json'))) {
      const kind = await drawResults(dir);
      if (kind !== undefined) drawn.push({ dir, kind });
    } else {
      const runs = children.filter(isRun);
      if (runs.length > 1) {
        await writeCurves(
          dir,
          await Promise.all(runs.map(async (run) => ({ ...(await readRun(run)), name: basename(run) }))),
        );
        drawn.push({ dir, kind: 'runs' });
      }
    }
    for (const child of children) await visit(child);
  };
  await visit(root);
  return drawn;
}
