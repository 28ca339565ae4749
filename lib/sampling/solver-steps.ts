// The built-in solvers' arithmetic over plain float32 arrays, importing nothing: lib/sampling/solvers.ts runs them
// over Tensors in Node, and the dashboard's sampling page (lib/dashboard/sampler.ts) loads this file unchanged in the
// browser. Every update rounds like the native float32 loop (native/core/math/lincomb.h), so all paths agree.

/** The velocity at (x, t) of a chunk of samples: x is (rows·D) row-major, as is the result. */
export type FlatVelocity = (x: Float32Array, t: number) => Promise<Float32Array>;

/** A solver's steps: updates `x` from t = grid[0] = 1 to t = 0 in place, calling `record` after each step. */
export type FlatSolver = (
  x: Float32Array,
  grid: ArrayLike<number>,
  velocity: FlatVelocity,
  record: () => void,
) => Promise<void>;

const f32 = Math.fround;

/** out = a·x + b·y (+ c·z), rounding like the native float32 loop (core/math/lincomb.h). */
export function lincomb(
  out: Float32Array,
  a: number,
  x: Float32Array,
  b: number,
  y: Float32Array,
  c = 0,
  z?: Float32Array,
): void {
  const fa = f32(a),
    fb = f32(b),
    fc = f32(c);
  if (z === undefined) {
    for (let i = 0; i < out.length; i++) out[i] = f32(fa * (x[i] as number)) + f32(fb * (y[i] as number));
  } else {
    for (let i = 0; i < out.length; i++) {
      out[i] = f32(f32(fa * (x[i] as number)) + f32(fb * (y[i] as number))) + f32(fc * (z[i] as number));
    }
  }
}

// log-SNR of rectified flow, λ(t) = log((1 − t)/t).
const logSnr = (t: number) => Math.log((1 - t) / t);

/** First-order Euler: x ← x + (t_i − t_{i−1})·v(x, t_{i−1}). One velocity evaluation per step. */
async function euler(x: Float32Array, grid: ArrayLike<number>, velocity: FlatVelocity, record: () => void) {
  for (let i = 1; i < grid.length; i++) {
    const s = grid[i - 1] as number;
    const v = await velocity(x, s);
    lincomb(x, 1, x, (grid[i] as number) - s, v);
    record();
  }
}

/** Heun (second order, two evaluations per step, including the step into t = 0, where v is defined). */
async function heun(x: Float32Array, grid: ArrayLike<number>, velocity: FlatVelocity, record: () => void) {
  const predictor = new Float32Array(x.length);
  for (let i = 1; i < grid.length; i++) {
    const s = grid[i - 1] as number,
      t = grid[i] as number,
      dt = t - s;
    const v1 = await velocity(x, s);
    lincomb(predictor, 1, x, dt, v1);
    const v2 = await velocity(predictor, t);
    lincomb(x, 1, x, dt / 2, v1, dt / 2, v2);
    record();
  }
}

/**
 * DPM-Solver++(2M) in data-prediction form (docs/algorithms.md §2.7): with x0 = x − s·v, h = λ(t) − λ(s), r = h_prev/h,
 * x_t = (t/s)·x − (1 − t)(e^{−h} − 1)·[(1 + 1/2r)·x0 − 1/2r·x0_prev]. The first step and the step into t = 0 are
 * first order (DDIM, which for rectified flow equals Euler); after a first step from t = 1, h_prev = ∞ and the
 * second step is first order too.
 */
async function dpm2(x: Float32Array, grid: ArrayLike<number>, velocity: FlatVelocity, record: () => void) {
  let x0 = new Float32Array(x.length);
  let x0Prev = new Float32Array(x.length);
  for (let i = 1; i < grid.length; i++) {
    const s = grid[i - 1] as number,
      t = grid[i] as number;
    const v = await velocity(x, s);
    lincomb(x0, 1, x, -s, v);
    let halfInvR = 0;
    if (i > 1 && t > 0) {
      const h = logSnr(t) - logSnr(s),
        hPrev = logSnr(s) - logSnr(grid[i - 2] as number);
      if (Number.isFinite(hPrev)) halfInvR = h / (2 * hPrev);
    }
    // −(1 − t)(e^{−h} − 1) = (1 − t) − t(1 − s)/s, finite at t = 0 and s = 1.
    const dataCoef = 1 - t - (t * (1 - s)) / s;
    if (halfInvR !== 0) {
      lincomb(x, t / s, x, dataCoef * (1 + halfInvR), x0, -dataCoef * halfInvR, x0Prev);
    } else {
      lincomb(x, t / s, x, dataCoef, x0);
    }
    [x0, x0Prev] = [x0Prev, x0];
    record();
  }
}

/** The built-in solvers' steps by name. */
export const SOLVER_STEPS = Object.freeze({ euler, heun, dpm2 }) satisfies Readonly<Record<string, FlatSolver>>;

/**
 * Classifier-free guidance of `rows` samples from one model call over [x; x] and [c; null]: the velocities `both`
 * (2·rows·D) give v = s·v_cond + (1 − s)·v_null.
 */
export function guide(both: Float32Array, rows: number, dim: number, cfgScale: number): Float32Array {
  const v = new Float32Array(rows * dim);
  lincomb(v, cfgScale, both.subarray(0, rows * dim), 1 - cfgScale, both.subarray(rows * dim));
  return v;
}
