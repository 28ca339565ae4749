import { NumericError } from './errors.js';
import { native } from './native.js';
import { seedOption } from './options.js';
import { Tensor } from './tensor.js';

/**
 * The forward (noising) process of rectified flow: x_t = (1 − t)·x0 + t·ε and the velocity target ε − x0, with
 * ε drawn from NOISE_STREAM (lib/streams.ts) of `seed` starting at element `offset` (the draw the trainers make).
 */
export function interpolate(
  x0: Tensor,
  t: Tensor,
  options: { seed: number | bigint; offset?: number },
): { xt: Tensor; target: Tensor } {
  if (!(x0 instanceof Tensor) || !(t instanceof Tensor)) throw new TypeError('x0 and t must be Tensors');
  if (x0.shape.length !== 2 || t.shape.length !== 1 || t.shape[0] !== x0.shape[0]) {
    throw new RangeError(`x0 must be (B, D) and t (B), got [${x0.shape.join(', ')}] and [${t.shape.join(', ')}]`);
  }
  if (x0.dtype !== 'float32' || t.dtype !== 'float32') throw new TypeError('x0 and t must be float32 tensors');
  for (const v of t.storage) if (!(v >= 0 && v <= 1)) throw new RangeError(`t must be in [0, 1], got ${v}`);
  for (const v of x0.storage) if (!Number.isFinite(v)) throw new NumericError('x0 contains a non-finite value');
  const seed = seedOption('options.seed', options?.seed);
  const r = native().interpolate(x0.storage, t.storage, x0.shape[1] as number, seed, options.offset ?? 0);
  return { xt: Tensor.from(r.xt, x0.shape), target: Tensor.from(r.target, x0.shape) };
}

/** The Philox4x32-10 block function (counter: 4 words, key: 2 words), exposed for verification. */
export function philox4x32(counter: readonly number[], key: readonly number[]): number[] {
  if (counter.length !== 4 || key.length !== 2) throw new RangeError('counter must have 4 words and key 2');
  return Array.from(native().philox4x32(Uint32Array.from(counter), Uint32Array.from(key)));
}
