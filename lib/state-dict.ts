// Plain state dicts: the parameters of a network as safetensors without our `dnft.*` metadata, e.g. a PyTorch
// `state_dict()` of a reference/ network. The config comes from the caller; every tensor is checked against the
// network's layout and all the problems are reported together (README, "Weights from and to PyTorch").

import { withLoad } from './checkpoint.js';
import { type NetConfig, type NetPreset, resolveNetConfig } from './config.js';
import { CheckpointError, StateDictError, type StateDictProblem } from './errors.js';
import { type NativeParamSpec, native } from './native.js';
import { type CreateOptions, VelocityNet } from './net.js';
import type { TensorEntry } from './safetensors.js';

/** Options of loadStateDict. */
export interface LoadStateDictOptions {
  /** Load into this network (same config) instead of creating one; it is unchanged if loading fails. */
  into?: VelocityNet;
  device?: CreateOptions['device'];
  precision?: CreateOptions['precision'];
}

const DTYPES: readonly string[] = ['F32', 'F16', 'BF16'];
const shape = (dims: readonly number[]) => `[${dims.join(', ')}]`;

/** Every way the header's tensors differ from the layout: missing, unexpected, wrong dtype, wrong shape. */
function headerProblems(tensors: Record<string, TensorEntry>, layout: readonly NativeParamSpec[]): StateDictProblem[] {
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
    const detail = `'${name}' ${t.dtype} ${shape(t.shape)} is not a parameter of this network`;
    problems.push({ name, kind: 'unexpected', detail });
  }
  return problems;
}

/**
 * Reads a plain state dict (parameters under their `params` names, e.g. `torch`'s `state_dict()` of the reference/
 * networks saved with safetensors; F32, or F16/BF16 widened) into a network of `config` (fields over a preset, as
 * VelocityNet.create). Every tensor is checked before anything is allocated: a StateDictError lists each missing,
 * unexpected, mis-shaped, mistyped or non-finite tensor; any other problem with the file is a CheckpointError; a
 * file with `dnft.format` metadata is one of our checkpoints, for loadCheckpoint. Nothing changes on failure.
 */
export async function loadStateDict(
  path: string,
  config: Partial<NetConfig> & { preset?: NetPreset },
  options: LoadStateDictOptions = {},
): Promise<VelocityNet> {
  const resolved = resolveNetConfig(config);
  const into = (options as LoadStateDictOptions | null)?.into;
  if (into instanceof VelocityNet && JSON.stringify(into.config) !== JSON.stringify(resolved)) {
    throw new RangeError(
      `config ${JSON.stringify(resolved)} does not match the network's ${JSON.stringify(into.config)}`,
    );
  }
  return withLoad('loadStateDict', 'state dict', path, options, ['into', 'device', 'precision'], async (file, load) => {
    const format = file.metadata['dnft.format'];
    if (format !== undefined) {
      throw new CheckpointError(`${path} is a diffusion-nft file (dnft.format ${format}): load it with loadCheckpoint`);
    }
    const layout = native().paramLayout({ ...resolved });
    const problems = headerProblems(file.tensors, layout);
    if (problems.length > 0) throw new StateDictError(path, problems);
    const tensors = await file.readTensors();
    const flat = new Float32Array(layout.reduce((sum, p) => sum + p.size, 0));
    for (const p of layout) {
      const data = tensors[p.name]?.data as Float32Array;
      const i = data.findIndex((v) => !Number.isFinite(v));
      if (i >= 0) problems.push({ name: p.name, kind: 'value', detail: `'${p.name}' holds ${data[i]} at index ${i}` });
      else flat.set(data, p.offset);
    }
    if (problems.length > 0) throw new StateDictError(path, problems);
    const net = load.target(resolved);
    net.setParameters(flat);
    return net;
  });
}
