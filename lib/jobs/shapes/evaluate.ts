// Scoring a shapes model: GenEval-style strict scores of fresh samples, and PNG grids of samples a row per prompt.
import { Tensor } from '../../core/tensor.js';
import { imageGrid } from '../../images/png.js';
import type { VelocityNet } from '../../model/net.js';
import { type SolverName, sample } from '../../sampling/solvers.js';
import * as shapes from '../../tasks/shapes/index.js';
import type { Guidance } from './guidance.js';
import { gridPrompts } from './prompts.js';

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

/** The sample grid of gridPrompts() that runs and the demo write: 8 samples a row, the same noise every time. */
export function runGrid(net: VelocityNet, guidance: Guidance = {}): Promise<Buffer> {
  return sampleGrid(net, gridPrompts(), { ...guidance, perPrompt: 8, seed: 7 });
}
