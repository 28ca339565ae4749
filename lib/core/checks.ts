// Every check of tensors in one place: the tensor arguments at the API edge (each failure names the argument), and
// named tensors against a parameter layout with every problem collected, for plain state dicts
// (lib/model/state-dict.ts) and PEFT adapters (lib/model/lora.ts), reported as one StateDictError.
import { DisposedError, excerpt, NumericError, StateDictError, type StateDictProblem } from './errors.js';
import type { NativeParamSpec } from './native.js';
import type { SafeTensor, TensorEntry } from './safetensors.js';
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

const DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];
const shape = (dims: readonly number[]) => `[${dims.join(', ')}]`;

/**
 * Every way the header's tensors differ from the layout: missing, unexpected (`outside` says what the layout is),
 * wrong dtype, wrong shape.
 */
export function headerProblems(
  tensors: Record<string, TensorEntry>,
  layout: readonly NativeParamSpec[],
  outside = 'a parameter of this network',
): StateDictProblem[] {
  const problems: StateDictProblem[] = [];
  const known = new Set(layout.map((p) => p.name));
  for (const p of layout) {
    const t = Object.hasOwn(tensors, p.name) ? tensors[p.name] : undefined;
    if (t === undefined) {
      problems.push({ name: p.name, kind: 'missing', detail: `'${p.name}' ${shape(p.shape)} is missing` });
      continue;
    }
    if (!DTYPES.includes(t.dtype)) {
      const detail = `'${p.name}' has dtype ${t.dtype}, expected F32 (F16 and BF16 are widened)`;
      problems.push({ name: p.name, kind: 'dtype', detail });
    }
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      const detail = `'${p.name}' has shape ${shape(t.shape)}, expected ${shape(p.shape)}`;
      problems.push({ name: p.name, kind: 'shape', detail });
    }
  }
  for (const [name, t] of Object.entries(tensors)) {
    if (known.has(name)) continue;
    const detail = `'${excerpt(name)}' ${t.dtype} ${shape(t.shape)} is not ${outside}`;
    problems.push({ name, kind: 'unexpected', detail });
  }
  return problems;
}

/**
 * The tensors of a layout whose header headerProblems passed, as one flat buffer; a StateDictError lists each
 * tensor that holds a non-finite value.
 */
export function flatten(
  path: string,
  tensors: Record<string, SafeTensor>,
  layout: readonly NativeParamSpec[],
): Float32Array {
  const problems: StateDictProblem[] = [];
  const flat = new Float32Array(layout.reduce((sum, p) => sum + p.size, 0));
  for (const p of layout) {
    const data = tensors[p.name]?.data as Float32Array;
    const i = data.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) problems.push({ name: p.name, kind: 'value', detail: `'${p.name}' holds ${data[i]} at index ${i}` });
    else flat.set(data, p.offset);
  }
  if (problems.length > 0) throw new StateDictError(path, problems);
  return flat;
}
