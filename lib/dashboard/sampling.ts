// The dashboard's sampling page (docs/onnx.md): a run's exported model (model.onnx in its folder, written by
// `diffusion-nft export`) runs in the browser in onnxruntime-web, under the solvers of lib/sampling/solver-steps.ts and
// SA-Solver's steps (lib/sampling/sa-solver.ts). The server gives the page what only this package computes: the shapes
// prompts' tokens, the initial noise of a seed (exactly what sample() draws), the time grid and, for SA-Solver, its
// plan and the noise of its stochastic steps; and it serves onnxruntime-web's files from its installed package.
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SAMPLE_STREAM } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import { SA_PLAN_WIDTH, SA_SOLVER_SCHEMA, type SaSolverConfig, saSolverPlan } from '../sampling/sa-solver.js';
import { resolveSaSolver, SOLVER_NAMES, stepNoise, timeGrid } from '../sampling/solvers.js';
import { ALL_PROMPTS, SLOTS } from '../tasks/shapes/prompts.js';
import { CHANNELS, DATA_DIM, IMAGE_SIZE } from '../tasks/shapes/world.js';
import { SAMPLE_PAGE, SAMPLE_STYLE } from './sample-page.js';

/** The file of a run folder that the sampling page loads. */
export const MODEL_FILE = 'model.onnx';

/** What a sampling route answers. */
export interface SamplingResponse {
  status: number;
  type: string;
  body: string | Buffer;
  /** The page's Content-Security-Policy: WebAssembly needs 'wasm-unsafe-eval'. */
  csp?: string;
}

/** The page's policy: the dashboard's, plus compiling onnxruntime-web's WebAssembly. */
const SAMPLE_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; frame-ancestors 'none'";

// The browser modules the page loads from this package, by their path under dist/lib (the URL mirrors it so that
// their relative imports resolve).
const MODULES = new Set(['dashboard/sampler.js', 'sampling/solver-steps.js', 'sampling/sa-solver.js']);
// onnxruntime-web's WebAssembly build: the module the page imports, the Emscripten glue and the binary it loads.
const ORT_FILES: Record<string, string> = {
  'ort.wasm.min.mjs': 'text/javascript; charset=utf-8',
  'ort-wasm-simd-threaded.mjs': 'text/javascript; charset=utf-8',
  'ort-wasm-simd-threaded.wasm': 'application/wasm',
};
const MAX_SAMPLES = 64;
const MAX_STEPS = 200;

const require = createRequire(import.meta.url);
const json = (value: unknown): SamplingResponse => ({
  status: 200,
  type: 'application/json',
  body: JSON.stringify(value),
});
const problem = (status: number, text: string): SamplingResponse => ({
  status,
  type: 'text/plain; charset=utf-8',
  body: `${text}\n`,
});

// onnxruntime-web's dist folder, or undefined when the optional peer is not installed.
function ortDist(): string | undefined {
  try {
    return dirname(require.resolve('onnxruntime-web'));
  } catch {
    return undefined;
  }
}

// An integer query parameter in [min, max].
function integer(query: URLSearchParams, name: string, min: number, max: number): number | string {
  const value = Number(query.get(name));
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    return `${name} must be an integer in [${min}, ${max}], got ${query.get(name)}`;
  }
  return value;
}

/** Float32 values as base64 of their little-endian bytes (what the page decodes: 4 bytes a value, not 20 in JSON). */
function float32Base64(values: Float32Array): string {
  const bytes = Buffer.alloc(values.length * 4);
  for (const [i, v] of values.entries()) bytes.writeFloatLE(v, i * 4);
  return bytes.toString('base64');
}

/**
 * What the page runs SA-Solver with for `count` samples from `seed` on `grid`: the plan (saSolverPlan's coefficients,
 * which JSON carries exactly) and, by step, the noise of each stochastic step (those whose noise coefficient is not 0),
 * sample()'s for the same seed and samples (stepNoise).
 */
function saSolverInputs(config: SaSolverConfig, grid: Float64Array, seed: number, count: number) {
  const plan = saSolverPlan(grid, config);
  const noise: Record<number, string> = {};
  for (let step = 1; step < grid.length; step++) {
    if (plan[(step - 1) * SA_PLAN_WIDTH + 1] !== 0) {
      noise[step] = float32Base64(stepNoise(seed, step, 0, count, DATA_DIM).storage as Float32Array);
    }
  }
  return { plan: Array.from(plan), noise };
}

/**
 * The initial noise, condition tokens and time grid of `count` samples of shapes prompt `prompt` from `seed`: the
 * noise is sample()'s (Philox stream SAMPLE_STREAM of the seed), so the page's samples can be compared with Node's.
 * With `saSolver`, also SA-Solver's plan and step noise (saSolverInputs).
 */
export function samplingInputs(prompt: number, seed: number, count: number, steps: number, saSolver?: SaSolverConfig) {
  const tokens = ALL_PROMPTS[prompt]?.tokens;
  if (tokens === undefined) throw new RangeError(`no shapes prompt ${prompt}`);
  const noise = Tensor.randn([count, DATA_DIM], { seed, stream: SAMPLE_STREAM });
  const grid = timeGrid(steps);
  return {
    cond: Array.from({ length: count * SLOTS }, (_, i) => tokens[i % SLOTS] as number),
    noise: Array.from(noise.storage),
    grid: Array.from(grid),
    dataDim: DATA_DIM,
    condSlots: SLOTS,
    imageSize: IMAGE_SIZE,
    channels: CHANNELS,
    ...(saSolver === undefined ? {} : { saSolver: saSolverInputs(saSolver, grid, seed, count) }),
  };
}

/**
 * SA-Solver's options from the query (each option by its name; `tauInterval` as "lo,hi"; an absent or empty one takes
 * its default), checked against SA_SOLVER_SCHEMA; a message when the solver is another or an option is wrong.
 */
function querySaSolver(query: URLSearchParams): SaSolverConfig | undefined | string {
  const solver = query.get('solver') ?? 'euler';
  if (!(SOLVER_NAMES as readonly string[]).includes(solver)) {
    return `solver must be one of ${SOLVER_NAMES.join(', ')}, got ${solver}`;
  }
  const given: Record<string, unknown> = {};
  for (const name of Object.keys(SA_SOLVER_SCHEMA)) {
    const text = query.get(name);
    if (text === null || text === '') continue;
    given[name] = name === 'tauInterval' ? text.split(',').map(Number) : Number(text);
  }
  if (solver !== 'sa-solver') {
    return Object.keys(given).length === 0 ? undefined : `${Object.keys(given)[0]} applies to solver sa-solver only`;
  }
  try {
    return resolveSaSolver(given, 'saSolver');
  } catch (error) {
    return (error as Error).message;
  }
}

/** The answer to a sampling route, or undefined when `path` is not one; `models` lists the runs with a model. */
export async function samplingRoute(
  path: string,
  query: URLSearchParams,
  runs: () => Promise<{ id: number; name: string; dir: string }[]>,
): Promise<SamplingResponse | undefined> {
  if (path === '/sample') return { status: 200, type: 'text/html; charset=utf-8', body: SAMPLE_PAGE, csp: SAMPLE_CSP };
  if (path === '/sample/style.css') return { status: 200, type: 'text/css; charset=utf-8', body: SAMPLE_STYLE };
  if (path === '/sample/setup') {
    const models = [];
    for (const run of await runs()) {
      if (await stat(join(run.dir, MODEL_FILE)).catch(() => undefined)) models.push({ id: run.id, name: run.name });
    }
    const prompts = ALL_PROMPTS.map((p, index) => ({ index, text: p.text, category: p.category }));
    return json({ models, prompts, runtime: ortDist() !== undefined });
  }
  if (path === '/sample/inputs') {
    const values = [
      integer(query, 'prompt', 0, ALL_PROMPTS.length - 1),
      integer(query, 'seed', 0, 2 ** 31 - 1),
      integer(query, 'count', 1, MAX_SAMPLES),
      integer(query, 'steps', 1, MAX_STEPS),
    ];
    const saSolver = querySaSolver(query);
    const error = [...values, saSolver].find((v) => typeof v === 'string');
    if (error !== undefined) return problem(400, error as string);
    const [prompt, seed, count, steps] = values as number[];
    const sa = saSolver as SaSolverConfig | undefined;
    return json(samplingInputs(prompt as number, seed as number, count as number, steps as number, sa));
  }
  const module = /^\/lib\/([a-z]+\/[a-z-]+\.js)$/.exec(path)?.[1];
  if (module !== undefined && MODULES.has(module)) {
    const file = fileURLToPath(new URL(`../${module}`, import.meta.url));
    return { status: 200, type: 'text/javascript; charset=utf-8', body: await readFile(file) };
  }
  const ortFile = /^\/assets\/ort\/([a-z.-]+)$/.exec(path)?.[1];
  if (ortFile !== undefined && Object.hasOwn(ORT_FILES, ortFile)) {
    const dist = ortDist();
    if (dist === undefined) {
      return problem(
        404,
        'onnxruntime-web is not installed: npm install onnxruntime-web (an optional peer dependency)',
      );
    }
    return { status: 200, type: ORT_FILES[ortFile] as string, body: await readFile(join(dist, ortFile)) };
  }
  return undefined;
}
