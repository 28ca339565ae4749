import { isFloat32Array, isInt32Array } from 'node:util/types';
import { DisposedError } from './errors.js';
import { native } from './native.js';
import { USER_STREAM } from './random.js';

/** Where a tensor's data lives. */
export type Device = 'cpu' | 'cuda';
/** Element types: float32 for data, int32 for condition tokens. */
export type DType = 'float32' | 'int32';
/** The typed array that holds a tensor's elements of type D. */
export type ArrayOf<D extends DType> = D extends 'int32' ? Int32Array : Float32Array;

/** Options of the random factories. */
export interface RandomOptions {
  /** Seed of the Philox4x32-10 generator; the same seed gives the same tensor. */
  seed: number | bigint;
  /** Independent sub-stream of the seed (default 16, the first user stream). */
  stream?: number;
  /** Start position in the stream, in elements. */
  offset?: number;
}

let live = 0;
// Safety net only: a tensor that is garbage-collected without dispose() is still counted as freed.
const registry = new FinalizationRegistry<void>(() => {
  live -= 1;
});

function checkShape(shape: readonly number[]): number {
  if (!Array.isArray(shape)) throw new TypeError('shape must be an array of non-negative integers');
  let size = 1;
  for (const [i, dim] of shape.entries()) {
    if (!Number.isInteger(dim) || dim < 0) {
      throw new RangeError(`shape[${i}] must be a non-negative integer, got ${String(dim)}`);
    }
    size *= dim;
  }
  return size;
}

/**
 * A dense row-major tensor: float32 (data) or int32 (condition tokens). On the CPU its storage is a typed array
 * that native calls read without copying. `dispose()` (also `Symbol.dispose`) releases it; using a disposed tensor
 * throws a DisposedError.
 */
export class Tensor<D extends DType = 'float32'> {
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: D;
  /** Where the data lives. */
  readonly device: Device;
  #data: ArrayOf<D> | null;
  readonly #token = {};

  private constructor(data: ArrayOf<D>, shape: readonly number[], dtype: D) {
    const size = checkShape(shape);
    if (data.length !== size) {
      throw new RangeError(`data has ${data.length} elements but shape [${shape.join(', ')}] needs ${size}`);
    }
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
    this.device = 'cpu';
    this.#data = data;
    live += 1;
    registry.register(this, undefined, this.#token);
  }

  /** A float32 tensor over `data` (no copy: later writes to `data` show in the tensor), or a copy of a number array. */
  static from(data: Float32Array | readonly number[], shape?: readonly number[]): Tensor<'float32'> {
    if (!isFloat32Array(data) && !Array.isArray(data)) {
      throw new TypeError('Tensor.from expects a Float32Array or an array of numbers');
    }
    const array = isFloat32Array(data) ? data : Float32Array.from(data);
    return new Tensor<'float32'>(array, shape ?? [array.length], 'float32');
  }

  /** An int32 tensor (condition tokens) over `data` (no copy), or a copy of a number array. */
  static fromInt32(data: Int32Array | readonly number[], shape?: readonly number[]): Tensor<'int32'> {
    if (!isInt32Array(data) && !Array.isArray(data)) {
      throw new TypeError('Tensor.fromInt32 expects an Int32Array or an array of integers');
    }
    if (Array.isArray(data)) {
      for (const [i, v] of data.entries()) {
        if (!Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31) {
          throw new RangeError(`element ${i} is not a 32-bit integer: ${String(v)}`);
        }
      }
    }
    const array = isInt32Array(data) ? data : Int32Array.from(data);
    return new Tensor<'int32'>(array, shape ?? [array.length], 'int32');
  }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], dtype?: 'float32'): Tensor<'float32'>;
  static zeros(shape: readonly number[], dtype: 'int32'): Tensor<'int32'>;
  static zeros(shape: readonly number[], dtype: DType = 'float32'): Tensor<'float32'> | Tensor<'int32'> {
    const size = checkShape(shape);
    return dtype === 'int32'
      ? new Tensor<'int32'>(new Int32Array(size), shape, 'int32')
      : new Tensor<'float32'>(new Float32Array(size), shape, 'float32');
  }

  /** Standard normal draws from the Philox stream (seed, stream, offset). */
  static randn(shape: readonly number[], options: RandomOptions): Tensor<'float32'> {
    return Tensor.random(shape, options, 'normal');
  }

  /** Uniform draws in (0, 1) from the Philox stream (seed, stream, offset). */
  static rand(shape: readonly number[], options: RandomOptions): Tensor<'float32'> {
    return Tensor.random(shape, options, 'uniform');
  }

  private static random(shape: readonly number[], options: RandomOptions, kind: 'normal' | 'uniform') {
    if (options === null || typeof options !== 'object') throw new TypeError('options.seed is required');
    const data = new Float32Array(checkShape(shape));
    native().randomFill(data, options.seed, options.stream ?? USER_STREAM, options.offset ?? 0, kind);
    return new Tensor<'float32'>(data, shape, 'float32');
  }

  /** Number of elements. */
  get size(): number {
    return this.storage.length;
  }

  /** Whether dispose() was called. */
  get disposed(): boolean {
    return this.#data === null;
  }

  /** The storage itself (no copy); throws DisposedError after dispose(). */
  get storage(): ArrayOf<D> {
    if (this.#data === null) throw new DisposedError(`Tensor(${this.dtype}, [${this.shape.join(', ')}])`);
    return this.#data;
  }

  /** A copy of the data as a typed array. */
  async data(): Promise<ArrayOf<D>> {
    return this.dataSync();
  }

  /** A copy of the data as a typed array, synchronously (CPU tensors). */
  dataSync(): ArrayOf<D> {
    return this.storage.slice() as ArrayOf<D>;
  }

  /** The data as a plain number array. */
  toArray(): number[] {
    return Array.from(this.storage);
  }

  /** The same data under another shape with the same number of elements (no copy). */
  reshape(shape: readonly number[]): Tensor<D> {
    return new Tensor<D>(this.storage, shape, this.dtype);
  }

  /** A deep copy. */
  clone(): Tensor<D> {
    return new Tensor<D>(this.dataSync(), this.shape, this.dtype);
  }

  /** Releases the data. Idempotent. */
  dispose(): void {
    if (this.#data === null) return;
    this.#data = null;
    live -= 1;
    registry.unregister(this.#token);
  }

  /** Releases the tensor, as `dispose()` does: for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** The dtype, shape and device in a line, e.g. `Tensor(float32, [2, 3], cpu)`; no values. */
  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

/** How many tensors are alive (created and neither disposed nor garbage-collected): for leak checks. */
export function liveTensors(): number {
  return live;
}
