// SA-Solver (Xue et al. 2023), the stochastic Adams predictor–corrector that AWM rolls out with, for rectified flow
// (docs/algorithms.md §2.8): its options, its coefficients (computed once per grid in float64, a "plan"), and the
// plan's steps over float32 arrays. The native sampler runs the same plan with the same rounding
// (native/core/sampler.cpp), so the coefficients are derived in this file only.
import type { Rule } from '../options/schema.js';
import { type FlatVelocity, lincomb } from './solver-steps.js';

/** Options of SA-Solver; the defaults are those AWM's rollouts use. */
export interface SaSolverOptions {
  /** Data predictions the predictor interpolates, 1 to 3 (default 2): its order. */
  predictorOrder?: number;
  /** Data predictions the corrector interpolates, the new one included, 0 (no corrector) to 3 (default 2). */
  correctorOrder?: number;
  /** Noise scale τ of the steps that start inside `tauInterval` (default 0.4); 0 is the deterministic Adams method. */
  tau?: number;
  /** The times [lo, hi] at whose start a step is stochastic (default [0.3, 0.9]); the others have τ = 0. */
  tauInterval?: readonly [number, number];
}

/** The option table of SA-Solver (the interval is checked by resolveSaSolver). */
export const SA_SOLVER_SCHEMA = {
  predictorOrder: { type: 'int', min: 1, max: 3, default: 2 },
  correctorOrder: { type: 'int', min: 0, max: 3, default: 2 },
  tau: { type: 'number', min: 0, max: 10, default: 0.4 },
  tauInterval: { type: 'value' },
} as const satisfies Record<keyof SaSolverOptions, Rule>;

/** The default of `tauInterval`. */
export const SA_TAU_INTERVAL: readonly [number, number] = [0.3, 0.9];

/** Resolved SA-Solver options. */
export interface SaSolverConfig {
  predictorOrder: number;
  correctorOrder: number;
  tau: number;
  tauInterval: readonly [number, number];
}

/** Coefficients per step in a plan: x, noise, predictor (3 history slots), corrector (new, 2 history slots). */
export const SA_PLAN_WIDTH = 8;

// log-SNR of rectified flow, λ(t) = log((1 − t)/t).
const logSnr = (t: number) => Math.log((1 - t) / t);

// J_m(a) = ∫_{−1}^0 e^{a·w} w^m dw for m = 0 … 3: a power series below a = 1 (the recursion would cancel), else the
// recursion J_0 = (1 − e^{−a})/a, J_m = (−(−1)^m e^{−a} − m·J_{m−1})/a.
function expMoments(a: number): number[] {
  const moments = [0, 0, 0, 0];
  if (a < 1) {
    for (let m = 0; m < 4; m++) {
      let term = 1; // aⁿ/n!
      let sum = 0;
      for (let n = 0; n < 30; n++) {
        sum += (term * ((n + m) % 2 === 0 ? 1 : -1)) / (n + m + 1);
        term *= a / (n + 1);
      }
      moments[m] = sum;
    }
    return moments;
  }
  const decay = Math.exp(-a);
  moments[0] = -Math.expm1(-a) / a;
  for (let m = 1; m < 4; m++) moments[m] = (-(m % 2 === 0 ? 1 : -1) * decay - m * (moments[m - 1] as number)) / a;
  return moments;
}

// The weights of data predictions at log-SNRs λ_t + u_j (u_j ≤ 0) in
// (1 − t)·k·∫_{λ_s}^{λ_t} e^{k(λ − λ_t)} P(λ) dλ, P the Lagrange polynomial through them, k = 1 + τ², h = λ_t − λ_s:
// with λ = λ_t + h·w, weight_j = (1 − t)·k·h·Σ_m c_jm·J_m(k·h), c_jm the monomial coefficients of the j-th Lagrange
// basis polynomial in w.
function adamsWeights(offsets: readonly number[], h: number, k: number, t: number): number[] {
  const nodes = offsets.map((u) => u / h);
  const moments = expMoments(k * h);
  return nodes.map((wj, j) => {
    let poly = [1]; // coefficients of w⁰, w¹, …
    for (const [m, wm] of nodes.entries()) {
      if (m === j) continue;
      const next = new Array<number>(poly.length + 1).fill(0);
      for (const [d, c] of poly.entries()) {
        next[d + 1] = (next[d + 1] as number) + c / (wj - wm);
        next[d] = (next[d] as number) - (c * wm) / (wj - wm);
      }
      poly = next;
    }
    let integral = 0;
    for (const [d, c] of poly.entries()) integral += c * (moments[d] as number);
    return (1 - t) * k * h * integral;
  });
}

/**
 * The SA-Solver plan of a grid (docs/algorithms.md §2.8): per step (s = t_{i−1} → t = t_i) the coefficients of
 * x_t = a·x_s + Σ_j b_j·x̂0_j + n·ξ for the predictor, and for the corrector (which shares a and n and ξ) those of the
 * data prediction at the predicted point and of the history. A step into t = 0 returns the last data prediction.
 */
export function saSolverPlan(grid: ArrayLike<number>, options: SaSolverConfig): Float64Array {
  const steps = grid.length - 1;
  const plan = new Float64Array(steps * SA_PLAN_WIDTH);
  const [lo, hi] = options.tauInterval;
  for (let i = 1; i <= steps; i++) {
    const s = grid[i - 1] as number,
      t = grid[i] as number;
    const row = plan.subarray((i - 1) * SA_PLAN_WIDTH, i * SA_PLAN_WIDTH);
    if (t === 0) {
      row[2] = 1;
      continue;
    }
    const tau = s >= lo && s <= hi ? options.tau : 0;
    const k = 1 + tau * tau;
    // e^{−h} = t(1 − s)/(s(1 − t)), 0 from s = 1 (h = ∞).
    const decay = (t * (1 - s)) / (s * (1 - t));
    row[0] = tau === 0 ? t / s : (t / s) * decay ** (tau * tau);
    row[1] = tau === 0 ? 0 : decay === 0 ? t : t * Math.sqrt(-Math.expm1(2 * tau * tau * Math.log(decay)));
    // The history's log-SNRs, newest first; the data prediction at t = 1 (λ = −∞) takes part in first-order steps only.
    const offsets: number[] = [];
    for (let j = i - 1; j >= 1 && offsets.length < 3; j--) offsets.push(logSnr(grid[j] as number) - logSnr(t));
    if (offsets.length === 0) {
      row[2] = (1 - t) * (1 - decay ** k);
      continue;
    }
    const h = logSnr(t) - logSnr(s);
    adamsWeights(offsets.slice(0, options.predictorOrder), h, k, t).forEach((w, j) => {
      row[2 + j] = w;
    });
    if (options.correctorOrder > 0) {
      adamsWeights([0, ...offsets.slice(0, options.correctorOrder - 1)], h, k, t).forEach((w, j) => {
        row[5 + j] = w;
      });
    }
  }
  return plan;
}

/** Writes standard normal noise for step i (1-based) of the chunk into `out`. */
export type FlatNoise = (step: number, out: Float32Array) => void;

// out = Σ coef·array over the terms whose coefficient is not 0, in order: the first three in one lincomb, then two at
// a time onto out. The native sampler combines the same terms in the same order.
function combine(out: Float32Array, terms: [number, Float32Array][]): void {
  const used = terms.filter(([c]) => c !== 0);
  const [a, x] = used[0] as [number, Float32Array];
  const [b, y] = used[1] ?? [0, x];
  lincomb(out, a, x, b, y, used[2]?.[0] ?? 0, used[2]?.[1]);
  for (let k = 3; k < used.length; k += 2) {
    const [c, z] = used[k] as [number, Float32Array];
    lincomb(out, 1, out, c, z, used[k + 1]?.[0] ?? 0, used[k + 1]?.[1]);
  }
}

/**
 * Runs a plan on `x` (rows·D) in place, from t = grid[0] = 1 to 0, one velocity evaluation per step ("PEC"): the
 * corrector's evaluation at the predicted point is the next step's data prediction.
 */
export async function runSaPlan(
  x: Float32Array,
  grid: ArrayLike<number>,
  plan: Float64Array,
  velocity: FlatVelocity,
  noise: FlatNoise,
  record: () => void,
): Promise<void> {
  let history: Float32Array[] = [0, 1, 2].map(() => new Float32Array(x.length)); // data predictions, newest first
  const predicted = new Float32Array(x.length);
  const xi = new Float32Array(x.length);
  let evaluated = false; // history[0] is the data prediction at the step's start
  for (let i = 1; i < grid.length; i++) {
    const s = grid[i - 1] as number,
      t = grid[i] as number;
    const row = plan.subarray((i - 1) * SA_PLAN_WIDTH, i * SA_PLAN_WIDTH);
    const at = (j: number) => row[j] as number;
    if (!evaluated) {
      history = [history[2] as Float32Array, history[0] as Float32Array, history[1] as Float32Array];
      lincomb(history[0] as Float32Array, 1, x, -s, await velocity(x, s));
    }
    const [h0, h1, h2] = history as [Float32Array, Float32Array, Float32Array];
    if (at(1) !== 0) noise(i, xi);
    const predictor: [number, Float32Array][] = [
      [at(0), x],
      [at(2), h0],
      [at(3), h1],
      [at(4), h2],
      [at(1), xi],
    ];
    evaluated = at(5) !== 0;
    if (evaluated) {
      combine(predicted, predictor);
      // The new data prediction goes into the oldest slot, which the corrector does not read.
      lincomb(h2, 1, predicted, -t, await velocity(predicted, t));
      combine(x, [
        [at(0), x],
        [at(5), h2],
        [at(6), h0],
        [at(7), h1],
        [at(1), xi],
      ]);
      history = [h2, h0, h1];
    } else {
      combine(x, predictor);
    }
    record();
  }
}
