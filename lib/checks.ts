// Checks of tensors at the API edge, shared by every entry point: each failure names the argument.
import { DisposedError, NumericError } from './errors.js';
import { Tensor } from './tensor.js';

/** Throws NumericError at the first NaN or infinity in `data`. */
export function checkFinite(what: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]))
      throw new NumericError(`${what} contains a non-finite value (${data[i]}) at index ${i}`);
  }
}

/** Throws unless `tensor` is a live Tensor of this dtype and shape. */
export function checkTensor(what: string, tensor: unknown, dtype: 'float32' | 'int32', shape: readonly number[]): void {
  if (!(tensor instanceof Tensor)) throw new TypeError(`${what} must be a Tensor`);
  if (tensor.dtype !== dtype) throw new TypeError(`${what} must be a ${dtype} tensor, got ${tensor.dtype}`);
  if (tensor.disposed) throw new DisposedError(what);
  if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
    throw new RangeError(`${what} must have shape [${shape.join(', ')}], got [${tensor.shape.join(', ')}]`);
  }
}
