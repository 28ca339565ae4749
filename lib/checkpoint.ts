import { resolveNetConfig } from './config.js';
import { CheckpointError } from './errors.js';
import { adapterTensors, readAdapterTensors } from './lora.js';
import type { ParamSetName } from './native.js';
import { type CreateOptions, VelocityNet } from './net.js';
import { objectOption, rejectUnknown } from './options.js';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from './safetensors.js';

const FORMAT = 'diffusion-nft/1';
const M_PREFIX = 'optimizer.m.';
const V_PREFIX = 'optimizer.v.';
// The parameter sets besides θ, saved under these prefixes when the network has them.
const EXTRA_SETS: readonly ParamSetName[] = ['old', 'ref', 'ema'];
// With LoRA adapters (docs/lora.md) those sets and the optimiser state are the adapters', saved under this prefix.
const LORA_PREFIX = 'lora.';

/** Options of saveCheckpoint. */
export interface SaveOptions {
  /** Include the AdamW moments and step, so training resumes exactly (default: when the model has them). */
  optimizer?: boolean;
  /** Extra string metadata stored in the file's `__metadata__` (keys must not start with `dnft.`). */
  metadata?: Record<string, string>;
}

/** Options of loadCheckpoint. */
export interface LoadOptions extends CreateOptions {
  /** Load into this network (same config) instead of creating one; it is unchanged if loading fails. */
  into?: VelocityNet;
}

/** A loaded checkpoint. */
export interface Checkpoint {
  net: VelocityNet;
  /** Optimiser steps recorded in the file. */
  step: number;
  /** The user metadata saved with the file. */
  metadata: Record<string, string>;
  /** The state a trainer saved with the file (DiffusionNFT, FlowGRPO), if any. @internal */
  trainer?: string;
}

/**
 * Writes the network's parameters (and by default its optimiser state) as a safetensors file, with the config and
 * step in `__metadata__`; a network a DiffusionNFT trainer has worked on also keeps its θ_old, θ_ref and EMA sets
 * (prefixes `old.`, `ref.`, `ema.`). The write is atomic: a temporary file renamed over `path`.
 */
export async function saveCheckpoint(path: string, net: VelocityNet, options: SaveOptions = {}): Promise<void> {
  const opts = objectOption('options', options);
  rejectUnknown('saveCheckpoint options', opts, ['optimizer', 'metadata']);
  const user = objectOption('options.metadata', opts.metadata);
  for (const [key, value] of Object.entries(user)) {
    if (typeof value !== 'string') throw new TypeError(`metadata.${key} must be a string`);
    if (key.startsWith('dnft.')) throw new RangeError(`metadata key '${key}' is reserved`);
  }
  const withOptimizer = opts.optimizer === undefined ? net.model.hasOptimizerState() : opts.optimizer === true;
  if (withOptimizer && !net.model.hasOptimizerState()) {
    throw new CheckpointError('saveCheckpoint: optimizer state requested but the model has not been trained yet');
  }
  await writeCheckpoint(path, net, withOptimizer, user as Record<string, string>);
}

/** saveCheckpoint without the checks of user options, for trainers that add their own `dnft.trainer` state. @internal */
export async function writeCheckpoint(
  path: string,
  net: VelocityNet,
  withOptimizer: boolean,
  metadata: Record<string, string>,
): Promise<void> {
  const flat = net.getParameters();
  const tensors: Record<string, SafeTensor> = {};
  const add = (prefix: string, source: Float32Array) => {
    for (const p of net.params) {
      tensors[prefix + p.name] = {
        dtype: 'F32',
        shape: [...p.shape],
        data: source.subarray(p.offset, p.offset + p.size),
      };
    }
  };
  add('', flat);
  const lora = net.lora === null ? undefined : adapterTensors(net, withOptimizer, LORA_PREFIX);
  if (lora !== undefined) Object.assign(tensors, lora.tensors);
  for (const set of EXTRA_SETS) {
    if (lora !== undefined || !net.model.hasParams(set)) continue;
    const values = new Float32Array(flat.length);
    net.model.getParams(values, set);
    add(`${set}.`, values);
  }
  if (withOptimizer && lora === undefined) {
    const m = new Float32Array(flat.length);
    const v = new Float32Array(flat.length);
    net.model.getOptimizerState(m, v);
    add(M_PREFIX, m);
    add(V_PREFIX, v);
  }
  await writeSafetensorsFile(path, tensors, {
    ...metadata,
    ...lora?.metadata,
    'dnft.format': FORMAT,
    'dnft.arch': net.config.arch,
    'dnft.config': JSON.stringify(net.config),
    'dnft.step': String(net.step),
  });
}

function gather(tensors: Record<string, SafeTensor>, prefix: string, net: VelocityNet, path: string): Float32Array {
  const flat = new Float32Array(net.paramCount);
  for (const p of net.params) {
    const name = prefix + p.name;
    const t = tensors[name];
    if (t === undefined) throw new CheckpointError(`${path}: tensor '${name}' is missing`);
    if (t.dtype !== 'F32') throw new CheckpointError(`${path}: tensor '${name}' has dtype ${t.dtype}, expected F32`);
    if (t.shape.length !== p.shape.length || t.shape.some((d: number, i: number) => d !== p.shape[i])) {
      throw new CheckpointError(
        `${path}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`,
      );
    }
    const data = t.data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw new CheckpointError(`${path}: tensor '${name}' holds a non-finite value`);
    }
    flat.set(data, p.offset);
  }
  return flat;
}

/** The stored config with the architecture of `dnft.arch` (files from before the DiT have none: 'mlp'). */
function withArch(config: unknown, arch: string | undefined): unknown {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) return config;
  const stored = (config as { arch?: unknown }).arch;
  if (arch !== undefined && stored !== undefined && stored !== arch)
    throw new RangeError(`dnft.arch '${arch}' contradicts the config's arch '${String(stored)}'`);
  return { arch: stored ?? arch ?? 'mlp', ...config };
}

/**
 * Reads a checkpoint written by saveCheckpoint (or any safetensors file with the same names, e.g. one written from
 * PyTorch with `dnft.config` metadata). Validates names, shapes, dtypes and values; a corrupt file is a
 * CheckpointError and nothing is changed.
 */
export async function loadCheckpoint(path: string, options: LoadOptions = {}): Promise<Checkpoint> {
  const opts = objectOption('options', options);
  rejectUnknown('loadCheckpoint options', opts, ['into', 'seed', 'device', 'precision']);
  let file: Awaited<ReturnType<typeof readSafetensorsFile>>;
  try {
    file = await readSafetensorsFile(path);
  } catch (error) {
    throw new CheckpointError(`cannot read checkpoint: ${(error as Error).message}`, { cause: error });
  }
  const meta = file.metadata;
  if (meta['dnft.format'] !== FORMAT) {
    throw new CheckpointError(
      `${path}: not a diffusion-nft checkpoint (dnft.format is ${meta['dnft.format'] ?? 'missing'})`,
    );
  }
  let config: ReturnType<typeof resolveNetConfig>;
  try {
    config = resolveNetConfig(withArch(JSON.parse(meta['dnft.config'] ?? 'null'), meta['dnft.arch']));
  } catch (error) {
    throw new CheckpointError(`${path}: invalid dnft.config: ${(error as Error).message}`, { cause: error });
  }
  const step = Number(meta['dnft.step'] ?? '0');
  if (!Number.isSafeInteger(step) || step < 0) throw new CheckpointError(`${path}: invalid dnft.step`);

  const into = opts.into as VelocityNet | undefined;
  if (into !== undefined && JSON.stringify(into.config) !== JSON.stringify(config)) {
    throw new CheckpointError(
      `${path}: config ${meta['dnft.config']} does not match the network's ${JSON.stringify(into.config)}`,
    );
  }
  const net =
    into ??
    VelocityNet.create(config, {
      seed: opts.seed as CreateOptions['seed'],
      device: opts.device as CreateOptions['device'],
      precision: opts.precision as CreateOptions['precision'],
    });
  const params = gather(file.tensors, '', net, path);
  const hasOptimizer = Object.keys(file.tensors).some((k) => k.startsWith(M_PREFIX));
  const moments = hasOptimizer
    ? [gather(file.tensors, M_PREFIX, net, path), gather(file.tensors, V_PREFIX, net, path)]
    : [];
  const sets = EXTRA_SETS.filter((set) => Object.keys(file.tensors).some((k) => k.startsWith(`${set}.`)));
  const extra = sets.map((set) => [set, gather(file.tensors, `${set}.`, net, path)] as const);
  const prefixes = ['', M_PREFIX, V_PREFIX, ...sets.map((set) => `${set}.`)];
  const known = new Set(net.params.flatMap((p) => prefixes.map((prefix) => prefix + p.name)));
  const lora = meta['dnft.lora'] === undefined ? undefined : readAdapterTensors(path, net, file, LORA_PREFIX, step);
  for (const name of lora?.names ?? []) known.add(name);
  const unknown = Object.keys(file.tensors).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new CheckpointError(`${path}: unexpected tensors: ${unknown.slice(0, 5).join(', ')}`);

  net.setParameters(params);
  lora?.apply();
  for (const [set, values] of extra) net.model.setParams(values, set);
  if (moments.length === 2) net.model.setOptimizerState(moments[0] as Float32Array, moments[1] as Float32Array, step);
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta)) if (!k.startsWith('dnft.')) metadata[k] = String(v);
  const trainer = meta['dnft.trainer'];
  return trainer === undefined ? { net, step, metadata } : { net, step, metadata, trainer };
}
