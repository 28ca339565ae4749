// The main job (`npm run demo`): DiffusionNFT from the shipped shapes base model for a few minutes on the CPU, with
// the score curves, sample grids before and after (same prompts, same noise) and a summary table in one folder.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/files.js';
import { packageRoot } from '../core/native.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import * as shapes from '../tasks/shapes/index.js';
import { evaluateShapes, runGrid } from './shapes/evaluate.js';
import { guidanceLabel, SHAPES_GUIDANCE } from './shapes/guidance.js';
import { gridPrompts } from './shapes/prompts.js';
import { trainShapes } from './shapes/train.js';

/**
 * The base model shipped in the package (how it was made: its metadata, and docs/science.md, "The shipped base
 * model").
 */
export const SHAPES_BASE = join(packageRoot(), 'models', 'shapes-base.safetensors');

/** Options of runShapesDemo. */
export interface ShapesDemoOptions {
  base: string;
  minutes: number;
  out: string;
  /** Samples per test prompt in each evaluation. */
  samplesPerPrompt: number;
  /** DiffusionNFT's rows per forward/backward (its microBatch option; default: the option's). */
  microBatch?: number;
  /** Aborting ends DiffusionNFT early; the demo still scores the model and writes its results. */
  signal?: AbortSignal;
  log: (line: string) => void;
}

function tableRow(name: string, e: shapes.ShapesEvaluation): string {
  const cells = shapes.CATEGORIES.map((c) => (e.byCategory[c] ?? Number.NaN).toFixed(2));
  return `| ${name} | **${e.overall.toFixed(3)}** | ${cells.join(' | ')} | ${e.reward.toFixed(3)} |`;
}

/** Runs the demo; returns the summary table (Markdown). */
export async function runShapesDemo(o: ShapesDemoOptions): Promise<string> {
  await mkdir(o.out, { recursive: true });
  const { net: base } = await loadCheckpoint(o.base);
  const prompts = gridPrompts();
  o.log(`base model ${o.base}: ${base.paramCount} parameters (${base.config.arch})`);
  await writeFileAtomic(join(o.out, 'samples-before.png'), await runGrid(base));
  await writeFileAtomic(join(o.out, 'samples-before-cfg.png'), await runGrid(base, SHAPES_GUIDANCE));
  o.log('evaluating the base model on the test prompts (strict GenEval-style score, without and with CFG)');
  const samplesPerPrompt = o.samplesPerPrompt;
  const before = await evaluateShapes(base, { samplesPerPrompt });
  const beforeCfg = await evaluateShapes(base, { samplesPerPrompt, ...SHAPES_GUIDANCE });
  base.dispose();
  o.log(`DiffusionNFT for ${o.minutes} minutes (no CFG anywhere, as the paper)`);
  const { points, net } = await trainShapes({
    method: 'nft',
    base: o.base,
    minutes: o.minutes,
    evalEvery: 5,
    evalSamplesPerPrompt: Math.max(1, Math.floor(samplesPerPrompt / 2)),
    out: join(o.out, 'run'),
    trainer: o.microBatch === undefined ? {} : { microBatch: o.microBatch },
    signal: o.signal,
    log: o.log,
  });
  await writeFileAtomic(join(o.out, 'samples-after.png'), await runGrid(net));
  const after = await evaluateShapes(net, { samplesPerPrompt });
  const last = points.at(-1);
  const table = [
    `| model | strict (test prompts) | ${shapes.CATEGORIES.join(' | ')} | reward |`,
    `| --- | --- | ${shapes.CATEGORIES.map(() => '---').join(' | ')} | --- |`,
    tableRow('base, no CFG', before),
    tableRow(`base, ${guidanceLabel(SHAPES_GUIDANCE)}`, beforeCfg),
    tableRow(`DiffusionNFT (${last?.epoch ?? 0} epochs, ${(last?.seconds ?? 0).toFixed(0)} s), no CFG`, after),
  ].join('\n');
  const summary = `# diffusion-nft demo: DiffusionNFT on shapes\n\n${table}\n\n${after.samples} samples per evaluation (${samplesPerPrompt} per test prompt, 40-step Euler). Grids: samples-before.png, samples-before-cfg.png (${guidanceLabel(SHAPES_GUIDANCE)}), samples-after.png (rows: ${prompts.map((p) => `'${p.text}'`).join(', ')}; same noise). Curves: run/strict-vs-*.png, run/reward-vs-*.png, run/testReward-vs-*.png.\n`;
  await writeFileAtomic(join(o.out, 'summary.md'), summary);
  net.dispose();
  return table;
}
