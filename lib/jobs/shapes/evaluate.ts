// Scoring a shapes model: GenEval-style strict scores of fresh samples, and PNG grids of samples a row per prompt.
import { Tensor } from '../../core/tensor.js';
import { gridSize, imageGrid } from '../../images/png.js';
import { checkSamples, type VelocityNet } from '../../model/net.js';
import { type Rule, resolveOptions } from '../../options/schema.js';
import { ROLLOUT_RULES, type SampleOptions, SOLVER_NAMES, type SolverName, sample } from '../../sampling/solvers.js';
import * as shapes from '../../tasks/shapes/index.js';
import { GUIDANCE_SCHEMA, type Guidance } from './guidance.js';
import { gridPrompts } from './prompts.js';

/** Options of evaluateShapes. */
export interface EvalOptions extends Guidance {
  /** The prompts (the test prompts), and samples of each (8). */
  prompts?: readonly shapes.ShapesPrompt[];
  samplesPerPrompt?: number;
  /** Solver steps (40) and solver ('euler'). */
  steps?: number;
  solver?: SolverName;
  /** Seed of the noise (12345, the same every time so that evaluations compare). */
  seed?: number;
  /** The parameter set sampled ('theta'). */
  params?: 'theta' | 'ema' | 'old';
}

/** The table of EvalOptions, whose defaults the CLI's `eval` flags take too. */
export const EVAL_SCHEMA = {
  ...GUIDANCE_SCHEMA,
  prompts: { type: 'value' },
  samplesPerPrompt: { type: 'int', min: 1, max: 1 << 16, default: 8 },
  steps: { ...ROLLOUT_RULES.steps, default: 40 },
  solver: { type: 'enum', values: SOLVER_NAMES, default: 'euler' },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 12345 },
  params: { type: 'enum', values: ['theta', 'ema', 'old'], default: 'theta' },
} as const satisfies Record<keyof EvalOptions, Rule>;

/** Receives the samples drawn so far and their total, as an evaluation or a grid goes (lib/jobs/progress.ts). */
export type OnSampled = (done: number, total: number) => void;

/** GenEval-style strict scores of fresh samples (default: the test prompts, 8 each, 40-step Euler, no CFG). */
export async function evaluateShapes(
  net: VelocityNet,
  options: EvalOptions = {},
  onSampled?: OnSampled,
): Promise<shapes.ShapesEvaluation> {
  const o = resolveOptions('evaluateShapes options', options, EVAL_SCHEMA);
  const chosen = options.prompts ?? shapes.TEST_PROMPTS;
  checkSamples('evaluateShapes', chosen.length * o.samplesPerPrompt, net.config.dataDim);
  const prompts = chosen.flatMap((p) => Array.from({ length: o.samplesPerPrompt }, () => p));
  const { solver, steps, cfgScale, seed, params } = o;
  const x = await samplePrompts(
    net,
    prompts,
    { solver, steps, cfgScale, cfgInterval: options.cfgInterval, seed, params },
    onSampled,
  );
  return shapes.evaluate(x, prompts);
}

function tokensOf(prompts: readonly shapes.ShapesPrompt[]): Int32Array {
  return Int32Array.from(prompts.flatMap((p) => [...p.tokens]));
}

// A long sampling is split into about ten parts to report its progress, each of at least 64 samples: smaller
// batches cost more per sample (each solver step has a fixed cost).
const PARTS = 10;
const MIN_PART = 64;

/**
 * Samples of `prompts` (a row each), drawn in parts with `onSampled` told after each (and at 0 first). Each part
 * starts at its first row's place in the noise stream, so the samples are those of a single call.
 */
async function samplePrompts(
  net: VelocityNet,
  prompts: readonly shapes.ShapesPrompt[],
  options: Omit<SampleOptions, 'cond' | 'firstSample'>,
  onSampled?: OnSampled,
): Promise<Tensor> {
  const n = prompts.length;
  const dim = net.config.dataDim;
  const part = Math.max(MIN_PART, Math.ceil(n / PARTS));
  const out = new Float32Array(n * dim);
  onSampled?.(0, n);
  for (let start = 0; start < n; start += part) {
    const rows = prompts.slice(start, start + part);
    const cond = Tensor.fromInt32(tokensOf(rows), [rows.length, shapes.SLOTS]);
    const { x } = await sample(net, { ...options, cond, firstSample: start });
    out.set(x.storage, start * dim);
    cond.dispose();
    x.dispose();
    onSampled?.(start + rows.length, n);
  }
  return Tensor.from(out, [n, dim]);
}

/** Options of sampleGrid. */
export interface GridOptions extends Guidance {
  /** Samples of each prompt, a row (8). */
  perPrompt?: number;
  /** Euler steps (40). */
  steps?: number;
  /** Seed of the noise (7). */
  seed?: number;
  /** The parameter set sampled ('theta'). */
  params?: 'theta' | 'ema';
}

/** The table of GridOptions, whose defaults the CLI's `sample` flags take too. */
export const GRID_SCHEMA = {
  ...GUIDANCE_SCHEMA,
  perPrompt: { type: 'int', min: 1, max: 1 << 16, default: 8 },
  steps: { ...ROLLOUT_RULES.steps, default: 40 },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 7 },
  params: { type: 'enum', values: ['theta', 'ema'], default: 'theta' },
} as const satisfies Record<keyof GridOptions, Rule>;

/** The layout of sampleGrid's PNG: a row of `perPrompt` images for each prompt. */
const gridLayout = (perPrompt: number) => ({ size: shapes.IMAGE_SIZE, columns: perPrompt, scale: 4 });

/** A PNG grid of samples: `perPrompt` samples of each prompt in a row labelled with the prompt, the same noise for every call. */
export async function sampleGrid(
  net: VelocityNet,
  prompts: readonly shapes.ShapesPrompt[],
  options: GridOptions = {},
  onSampled?: OnSampled,
): Promise<Buffer> {
  const o = resolveOptions('sampleGrid options', options, GRID_SCHEMA);
  checkSamples('sampleGrid', prompts.length * o.perPrompt, net.config.dataDim);
  gridSize(prompts.length * o.perPrompt, gridLayout(o.perPrompt));
  const list = prompts.flatMap((p) => Array.from({ length: o.perPrompt }, () => p));
  const { steps, cfgScale, seed, params } = o;
  const sampling = { solver: 'euler', steps, cfgScale, cfgInterval: options.cfgInterval, seed, params } as const;
  const x = await samplePrompts(net, list, sampling, onSampled);
  return imageGrid(x, { ...gridLayout(o.perPrompt), rowLabels: prompts.map((p) => p.text) });
}

/** The sample grid of gridPrompts() that runs and the demo write: 8 samples a row, the same noise every time. */
export function runGrid(net: VelocityNet, guidance: Guidance = {}, onSampled?: OnSampled): Promise<Buffer> {
  return sampleGrid(net, gridPrompts(), guidance, onSampled);
}
