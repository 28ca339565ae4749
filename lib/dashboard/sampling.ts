// The dashboard's sampling page (docs/onnx.md): a run's exported model (model.onnx in its folder, written by
// `diffusion-nft export`) runs in the browser in onnxruntime-web, under the solvers of lib/sampling/solver-steps.ts.
// The server gives the page what only this package computes: the shapes prompts' tokens, the initial noise of a seed
// (exactly what sample() draws) and the time grid; and it serves onnxruntime-web's files from its installed package.
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SAMPLE_STREAM } from '../core/random.js';
import { Tensor } from '../core/tensor.js';
import { timeGrid } from '../sampling/solvers.js';
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
const MODULES = new Set(['dashboard/sampler.js', 'sampling/solver-steps.js']);
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

/**
 * The initial noise, condition tokens and time grid of `count` samples of shapes prompt `prompt` from `seed`: the
 * noise is sample()'s (Philox stream SAMPLE_STREAM of the seed), so the page's samples can be compared with Node's.
 */
export function samplingInputs(prompt: number, seed: number, count: number, steps: number) {
  const tokens = ALL_PROMPTS[prompt]?.tokens;
  if (tokens === undefined) throw new RangeError(`no shapes prompt ${prompt}`);
  const noise = Tensor.randn([count, DATA_DIM], { seed, stream: SAMPLE_STREAM });
  return {
    cond: Array.from({ length: count * SLOTS }, (_, i) => tokens[i % SLOTS] as number),
    noise: Array.from(noise.storage),
    grid: Array.from(timeGrid(steps)),
    dataDim: DATA_DIM,
    condSlots: SLOTS,
    imageSize: IMAGE_SIZE,
    channels: CHANNELS,
  };
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
    const error = values.find((v) => typeof v === 'string');
    if (error !== undefined) return problem(400, error as string);
    const [prompt, seed, count, steps] = values as number[];
    return json(samplingInputs(prompt as number, seed as number, count as number, steps as number));
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
