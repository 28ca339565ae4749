/// <reference lib="dom" />
// The sampling page's script (runs in the browser, served as /lib/dashboard/sampler.js): loads a run's model.onnx
// into onnxruntime-web (WebAssembly, one thread), integrates the server's noise for the chosen prompt with the
// package's own solvers (lib/sampling/solver-steps.ts and SA-Solver's steps of lib/sampling/sa-solver.ts, served
// beside it) and draws the samples. The last samples stay readable as `window.dnftSamples` (the browser test compares
// them with Node's).
import type * as OrtWeb from 'onnxruntime-web';
import { runSaPlan } from '../sampling/sa-solver.js';
import { type FlatVelocity, guide, SOLVER_STEPS } from '../sampling/solver-steps.js';

type SolverName = keyof typeof SOLVER_STEPS | 'sa-solver';

interface Setup {
  models: { id: number; name: string }[];
  prompts: { index: number; text: string; category: string }[];
  runtime: boolean;
}

interface Inputs {
  cond: number[];
  noise: number[];
  grid: number[];
  dataDim: number;
  condSlots: number;
  imageSize: number;
  channels: number;
  /** With SA-Solver: its plan and, by step, the base64 little-endian float32 noise of its stochastic steps. */
  saSolver?: { plan: number[]; noise: Record<string, string> };
}

declare global {
  interface Window {
    dnftSamples?: number[];
  }
}

const ORT_MODULE = '/assets/ort/ort.wasm.min.mjs';
const SCALE = 6; // screen pixels per image pixel

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');

function say(text: string, kind: '' | 'live' | 'error' = '') {
  status.textContent = text;
  status.className = `status ${kind}`;
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status} ${(await response.text()).trim()}`);
  return (await response.json()) as T;
}

// The velocity of the exported network (inputs x, t, cond; output v) for rows of flat samples, guided when asked.
function velocityOf(
  ort: typeof OrtWeb,
  session: OrtWeb.InferenceSession,
  tokens: Int32Array,
  inputs: Inputs,
  cfgScale: number,
): FlatVelocity {
  const { dataDim: dim, condSlots: slots } = inputs;
  const run = async (x: Float32Array, t: number, cond: Int32Array) => {
    const rows = x.length / dim;
    const out = await session.run({
      x: new ort.Tensor('float32', x, [rows, dim]),
      t: new ort.Tensor('float32', new Float32Array(rows).fill(t), [rows]),
      cond: new ort.Tensor('int32', cond, [rows, slots]),
    });
    return out.v?.data as Float32Array;
  };
  if (cfgScale === 1) return (x, t) => run(x, t, tokens);
  // One call over [x; x] with [c; null], as sample() does.
  const both = new Int32Array(2 * tokens.length);
  both.set(tokens);
  return async (x, t) => {
    const stacked = new Float32Array(2 * x.length);
    stacked.set(x);
    stacked.set(x, x.length);
    return guide(await run(stacked, t, both), x.length / dim, dim, cfgScale);
  };
}

// Float32 values from base64 of their little-endian bytes (lib/dashboard/sampling.ts writes them).
function float32s(base64: string): Float32Array {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer);
  return Float32Array.from({ length: bytes.length / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

// Integrates `x` in place with the chosen solver: SA-Solver runs the server's plan with the server's step noise.
async function integrate(solver: SolverName, x: Float32Array, inputs: Inputs, velocity: FlatVelocity) {
  if (solver !== 'sa-solver') return SOLVER_STEPS[solver](x, inputs.grid, velocity, () => {});
  const sa = inputs.saSolver;
  if (sa === undefined) throw new Error('the server sent no SA-Solver plan');
  const noise = (step: number, out: Float32Array) => {
    const values = sa.noise[step];
    if (values === undefined) throw new Error(`the server sent no noise for SA-Solver's step ${step}`);
    out.set(float32s(values));
  };
  await runSaPlan(x, inputs.grid, Float64Array.from(sa.plan), velocity, noise, () => {});
}

// The samples side by side, each an S×S image of C channels in HWC order with values in [-1, 1].
function draw(samples: Float32Array, inputs: Inputs) {
  const { imageSize: s, channels: c, dataDim: dim } = inputs;
  const count = samples.length / dim;
  const canvas = $<HTMLCanvasElement>('samples');
  canvas.width = count * (s + 1) * SCALE;
  canvas.height = s * SCALE;
  const context = canvas.getContext('2d') as CanvasRenderingContext2D;
  const byte = (v: number) => Math.max(0, Math.min(255, Math.round(((v + 1) / 2) * 255)));
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        const at = n * dim + (y * s + x) * c;
        const rgb = [0, 1, 2].map((k) => byte(samples[at + Math.min(k, c - 1)] as number));
        context.fillStyle = `rgb(${rgb.join(',')})`;
        context.fillRect((n * (s + 1) + x) * SCALE, y * SCALE, SCALE, SCALE);
      }
    }
  }
}

async function main() {
  const setup = await getJson<Setup>('/sample/setup');
  if (!setup.runtime)
    throw new Error('onnxruntime-web is not installed beside diffusion-nft (npm install onnxruntime-web)');
  if (setup.models.length === 0)
    throw new Error('no run folder holds a model.onnx (diffusion-nft export --out <run>/model.onnx)');
  const ort = (await import(ORT_MODULE)) as typeof OrtWeb;
  ort.env.wasm.wasmPaths = '/assets/ort/';
  ort.env.wasm.numThreads = 1;
  const models = $<HTMLSelectElement>('model');
  for (const m of setup.models) models.add(new Option(m.name, String(m.id)));
  const prompts = $<HTMLSelectElement>('prompt');
  for (const p of setup.prompts) prompts.add(new Option(`${p.text} (${p.category})`, String(p.index)));
  const sessions = new Map<string, Promise<OrtWeb.InferenceSession>>();
  const button = $<HTMLButtonElement>('run');
  const value = (id: string) => $<HTMLInputElement>(id).value;
  const solvers = $<HTMLSelectElement>('solver');
  const showSaOptions = () => {
    $('sa-solver-options').hidden = solvers.value !== 'sa-solver';
  };
  solvers.addEventListener('change', showSaOptions);
  showSaOptions();

  const sampleOnce = async () => {
    const model = models.value;
    let session = sessions.get(model);
    if (session === undefined) {
      session = fetch(`/runs/${model}/model.onnx`)
        .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`model.onnx: ${r.status}`))))
        .then((bytes) => ort.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ['wasm'] }));
      sessions.set(model, session);
    }
    const solver = solvers.value as SolverName;
    const query = new URLSearchParams({
      prompt: prompts.value,
      seed: value('seed'),
      count: value('count'),
      steps: value('steps'),
      solver,
    });
    if (solver === 'sa-solver') {
      for (const name of ['predictorOrder', 'correctorOrder', 'tau']) query.set(name, value(name));
      query.set('tauInterval', `${value('tauLo')},${value('tauHi')}`);
    }
    const inputs = await getJson<Inputs>(`/sample/inputs?${query}`);
    const start = performance.now();
    const x = Float32Array.from(inputs.noise);
    const velocity = velocityOf(ort, await session, Int32Array.from(inputs.cond), inputs, Number(value('cfg')));
    await integrate(solver, x, inputs, velocity);
    const ms = performance.now() - start;
    draw(x, inputs);
    window.dnftSamples = Array.from(x);
    $('timing').textContent =
      `${x.length / inputs.dataDim} samples, ${solver}, ${inputs.grid.length - 1} steps: ${ms.toFixed(0)} ms`;
  };

  button.addEventListener('click', () => {
    button.disabled = true;
    say('sampling…');
    sampleOnce()
      .then(() => say('done', 'live'))
      .catch((error: unknown) => say(`error: ${(error as Error).message}`, 'error'))
      .finally(() => {
        button.disabled = false;
      });
  });
  button.disabled = false;
  say('ready');
}

main().catch((error: unknown) => say(`error: ${(error as Error).message}`, 'error'));
