// Named tensors against a parameter layout, every problem collected: the checks of plain state dicts
// (lib/state-dict.ts) and PEFT adapters (lib/lora.ts), reported as one StateDictError.

import { StateDictError, type StateDictProblem } from './errors.js';
import type { NativeParamSpec } from './native.js';
import type { SafeTensor, TensorEntry } from './safetensors.js';

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
    const detail = `'${name}' ${t.dtype} ${shape(t.shape)} is not ${outside}`;
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
