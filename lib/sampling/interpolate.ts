// The forward (noising) process of rectified flow, exposed for verification: the draw of x_t and the velocity
// target that the trainers make inside their native steps.
import { NumericError } from '../core/errors.js';
import { native } from '../core/native.js';
import { Tensor } from '../core/tensor.js';
import { seedOption } from '../options/schema.js';

/**
 * The forward (noising) process of rectified flow: x_t = (1 − t)·x0 + t·ε and the velocity target ε − x0, with
 * ε drawn from NOISE_STREAM (lib/core/random.ts) of `seed` starting at element `offset` (the draw the trainers make).
 */
export function interpolate(
  x0: Tensor,
  t: Tensor,
  options: { seed: number | bigint; offset?: number },
): {
  /** The noised samples x_t (B, D). */
  xt: Tensor;
  /** The velocity target ε − x0 (B, D). */
  target: Tensor;
} {
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
