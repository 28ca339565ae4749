// The velocity function of an exported network (lib/model/onnx.ts) running in an ONNX Runtime session, so that
// sample() and its solvers run over onnxruntime-node, onnxruntime-web or any runtime with the same JavaScript API.
// The runtime is passed in, not imported: it is the user's dependency, not this package's (docs/onnx.md).
import { checkTensor } from '../core/checks.js';
import { Tensor } from '../core/tensor.js';
import type { VelocityFn } from './solvers.js';

/** What onnxModel needs of a runtime's tensor: onnxruntime's `new Tensor(type, data, dims)`. */
export type OnnxTensorConstructor = new (
  type: 'float32' | 'int32',
  data: Float32Array | Int32Array,
  dims: readonly number[],
) => unknown;

/** What onnxModel needs of an inference session: onnxruntime's `InferenceSession.run`. */
export interface OnnxSession {
  /** Runs the model on named input tensors and resolves to its named outputs. */
  run(feeds: Record<string, unknown>): Promise<Record<string, OnnxOutput | undefined>>;
}

/** What onnxModel reads of an output tensor. */
export interface OnnxOutput {
  /** The values, a Float32Array for the exported model's `v`. */
  data: unknown;
  /** The dimensions, outermost first. */
  dims: readonly number[];
}

/**
 * The velocity function of a model written by exportOnnx, running in `session` (an `InferenceSession` of
 * onnxruntime-node or onnxruntime-web, whose module is `runtime`), for `sample(model, { dataDim, … })` with any
 * solver, guidance and guidance interval.
 */
export function onnxModel(session: OnnxSession, runtime: { Tensor: OnnxTensorConstructor }): VelocityFn {
  if (typeof session?.run !== 'function') throw new TypeError('onnxModel: session must be an ONNX Runtime session');
  if (typeof runtime?.Tensor !== 'function') throw new TypeError('onnxModel: runtime must be the onnxruntime module');
  const OrtTensor = runtime.Tensor;
  return async (x, t, cond) => {
    const [batch = 0, dim = 0] = x.shape;
    checkTensor('x', x, 'float32', [batch, dim]);
    checkTensor('cond', cond, 'int32', [batch, cond.shape[1] ?? 0]);
    const out = await session.run({
      x: new OrtTensor('float32', x.storage, [batch, dim]),
      t: new OrtTensor('float32', new Float32Array(batch).fill(t), [batch]),
      cond: new OrtTensor('int32', cond.storage, [...cond.shape]),
    });
    const v = out.v;
    if (v === undefined || !(v.data instanceof Float32Array)) {
      throw new TypeError('onnxModel: the session has no float32 output v (is it a model written by exportOnnx?)');
    }
    if (v.dims.length !== 2 || v.dims[0] !== batch || v.dims[1] !== dim) {
      throw new RangeError(`onnxModel: output v has dims [${v.dims.join(', ')}], expected [${batch}, ${dim}]`);
    }
    return Tensor.from(v.data, [batch, dim]);
  };
}
