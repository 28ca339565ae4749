// Scoring a shapes model: GenEval-style strict scores of fresh samples, and PNG grids of samples a row per prompt.
import { Tensor } from '../../core/tensor.js';
import { gridSize, imageGrid } from '../../images/png.js';
import { checkSamples, type VelocityNet } from '../../model/net.js';
import { type Rule, resolveOptions } from '../../options/schema.js';
import { ROLLOUT_RULES, type SolverName, sample } from '../../sampling/solvers.js';
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
  solver: { type: 'enum', values: ['euler', 'heun', 'dpm2'], default: 'euler' },
  seed: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, default: 12345 },
  params: { type: 'enum', values: ['theta', 'ema', 'old'], default: 'theta' },
} as const satisfies Record<keyof EvalOptions, Rule>;

/** GenEval-style strict scores of fresh samples (default: the test prompts, 8 each, 40-step Euler, no CFG). */
export async function evaluateShapes(net: VelocityNet, options: EvalOptions = {}): Promise<shapes.ShapesEvaluation> {
  const o = resolveOptions('evaluateShapes options', options, EVAL_SCHEMA);
  const chosen = options.prompts ?? shapes.TEST_PROMPTS;
  checkSamples('evaluateShapes', chosen.length * o.samplesPerPrompt, net.config.dataDim);
  const prompts = chosen.flatMap((p) => Array.from({ length: o.samplesPerPrompt }, () => p));
  const { x } = await sample(net, {
    cond: Tensor.fromInt32(tokensOf(prompts), [prompts.length, shapes.SLOTS]),
    solver: o.solver,
    steps: o.steps,
    cfgScale: o.cfgScale,
    cfgInterval: options.cfgInterval,
    seed: o.seed,
    params: o.params,
  });
  return shapes.evaluate(x, prompts);
}

function tokensOf(prompts: readonly shapes.ShapesPrompt[]): Int32Array {
  return Int32Array.from(prompts.flatMap((p) => [...p.tokens]));
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
): Promise<Buffer> {
  const o = resolveOptions('sampleGrid options', options, GRID_SCHEMA);
  checkSamples('sampleGrid', prompts.length * o.perPrompt, net.config.dataDim);
  gridSize(prompts.length * o.perPrompt, gridLayout(o.perPrompt));
  const list = prompts.flatMap((p) => Array.from({ length: o.perPrompt }, () => p));
  const { x } = await sample(net, {
    cond: Tensor.fromInt32(tokensOf(list), [list.length, shapes.SLOTS]),
    solver: 'euler',
    steps: o.steps,
    cfgScale: o.cfgScale,
    cfgInterval: options.cfgInterval,
    seed: o.seed,
    params: o.params,
  });
  return imageGrid(x, { ...gridLayout(o.perPrompt), rowLabels: prompts.map((p) => p.text) });
}

/** The sample grid of gridPrompts() that runs and the demo write: 8 samples a row, the same noise every time. */
export function runGrid(net: VelocityNet, guidance: Guidance = {}): Promise<Buffer> {
  return sampleGrid(net, gridPrompts(), guidance);
}
