import { CheckpointError, excerpt } from '../core/errors.js';
import { type NativeParamSpec, native } from '../core/native.js';
import {
  type Header,
  openSafetensorsFile,
  parseBoundedJson,
  type SafeTensor,
  type SafetensorsFile,
  writeSafetensorsFile,
} from '../core/safetensors.js';
import { type NetConfig, resolveNetConfig } from '../options/net-config.js';
import { objectOption, rejectUnknown } from '../options/schema.js';
import { ADAPTER_FORMAT, adapterEntries, adapterTensors, EXTRA_SETS, M_PREFIX, V_PREFIX } from './lora.js';
import { PEFT_PREFIX } from './lora-peft.js';
import { type CreateOptions, VelocityNet } from './net.js';
import { parseStep } from './step.js';

const FORMAT = 'diffusion-nft/1';
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
  /** The network, with the file's config, parameters and (when saved) optimiser state. */
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
  try {
    await writeSafetensorsFile(path, tensors, {
      ...metadata,
      ...lora?.metadata,
      'dnft.format': FORMAT,
      'dnft.arch': net.config.arch,
      'dnft.config': JSON.stringify(net.config),
      'dnft.step': String(net.step),
    });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new CheckpointError(`cannot write checkpoint ${path} (${reason}); the file there is unchanged`, {
      cause: error,
    });
  }
}

/**
 * The tensor names a file holds under each prefix it uses, checked against the layout before any data is read;
 * `adapters` are the names of its LoRA entries (checked by adapterEntries).
 */
function checkHeader(
  header: Header,
  layout: readonly NativeParamSpec[],
  path: string,
  adapters: ReadonlySet<string>,
): string[] {
  const names = Object.keys(header.tensors);
  const prefixes = ['', ...EXTRA_SETS.map((set) => `${set}.`), M_PREFIX, V_PREFIX].filter(
    (prefix) => prefix === '' || names.some((name) => name.startsWith(prefix)),
  );
  if (prefixes.includes(M_PREFIX) !== prefixes.includes(V_PREFIX)) {
    throw new CheckpointError(`${path}: the optimizer state needs both ${M_PREFIX}* and ${V_PREFIX}* tensors`);
  }
  const known = new Set<string>();
  for (const prefix of prefixes) {
    for (const p of layout) {
      const name = prefix + p.name;
      known.add(name);
      const t = Object.hasOwn(header.tensors, name) ? header.tensors[name] : undefined;
      if (t === undefined) throw new CheckpointError(`${path}: tensor '${name}' is missing`);
      if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16') {
        throw new CheckpointError(`${path}: tensor '${name}' has dtype ${t.dtype}, expected F32`);
      }
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
        throw new CheckpointError(
          `${path}: tensor '${name}' has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`,
        );
      }
    }
  }
  const unknown = names.filter((k) => !known.has(k) && !adapters.has(k));
  if (unknown.length > 0)
    throw new CheckpointError(`${path}: unexpected tensors: ${unknown.slice(0, 5).map(excerpt).join(', ')}`);
  return prefixes;
}

/** The flat buffer of one prefix's tensors, every value finite (and >= 0 for AdamW's second moments). */
function gather(
  tensors: Record<string, SafeTensor>,
  prefix: string,
  layout: readonly NativeParamSpec[],
  count: number,
  path: string,
): Float32Array {
  const flat = new Float32Array(count);
  for (const p of layout) {
    const name = prefix + p.name;
    const data = (tensors[name] as SafeTensor).data as Float32Array;
    for (let i = 0; i < data.length; i++) {
      const v = data[i] as number;
      if (!Number.isFinite(v)) throw new CheckpointError(`${path}: tensor '${name}' holds a non-finite value`);
      if (prefix === V_PREFIX && v < 0) {
        throw new CheckpointError(`${path}: tensor '${name}' holds a negative second moment (${v}) at ${i}`);
      }
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

/** What a file's metadata says: the config and step, checked. */
function readMetadata(file: Header, path: string): { config: NetConfig; step: number } {
  const meta = file.metadata;
  // An adapter holds no base weights: say which function reads it.
  const peft = Object.keys(file.tensors).some((name) => name.startsWith(PEFT_PREFIX));
  if (meta['dnft.format'] === ADAPTER_FORMAT || (meta['dnft.format'] === undefined && peft)) {
    throw new CheckpointError(
      `${path}: a LoRA adapter, not a checkpoint: use loadAdapter(path, net) to apply it to the base model it was trained on`,
    );
  }
  if (meta['dnft.format'] !== FORMAT) {
    throw new CheckpointError(
      `${path}: not a diffusion-nft checkpoint (dnft.format is ${excerpt(meta['dnft.format'] ?? 'missing')})`,
    );
  }
  let config: NetConfig;
  try {
    config = resolveNetConfig(withArch(parseBoundedJson(meta['dnft.config'] ?? 'null'), meta['dnft.arch']) as never);
  } catch (error) {
    throw new CheckpointError(`${path}: invalid dnft.config: ${(error as Error).message}`, { cause: error });
  }
  return { config, step: parseStep(meta['dnft.step'], path) };
}

/**
 * Reads a checkpoint written by saveCheckpoint (or any safetensors file with the same names, e.g. one written from
 * PyTorch with `dnft.config` metadata). The header is validated completely (names, shapes, dtypes, offsets against
 * the file's length) before the data is read and before any network is allocated; then every value is checked.
 * Any problem with the file is a CheckpointError, and nothing is changed: no network is left allocated, and a
 * network given as `into` keeps its state.
 */
export async function loadCheckpoint(path: string, options: LoadOptions = {}): Promise<Checkpoint> {
  const keys = ['into', 'seed', 'device', 'precision'];
  return withLoad('loadCheckpoint', 'checkpoint', path, options, keys, async (file, load) => {
    const meta = file.metadata;
    const { config, step } = readMetadata(file, path);
    const into = load.into;
    if (into !== undefined && JSON.stringify(into.config) !== JSON.stringify(config)) {
      throw new CheckpointError(
        `${path}: config ${excerpt(String(meta['dnft.config']))} does not match the network's ${JSON.stringify(into.config)}`,
      );
    }
    const layout = native().paramLayout({ ...config });
    const adapters =
      meta['dnft.lora'] === undefined
        ? undefined
        : adapterEntries(path, config, meta, Object.keys(file.tensors), LORA_PREFIX);
    if (adapters === undefined && into?.lora != null) {
      throw new CheckpointError(
        `${path} holds no LoRA adapters but the network has some: load it into a fresh network`,
      );
    }
    const prefixes = checkHeader(file, layout, path, adapters?.names ?? new Set());
    adapters?.check(file.tensors);
    const count = layout.reduce((sum, p) => sum + p.size, 0);
    const tensors = await file.readTensors();
    const values = new Map(prefixes.map((prefix) => [prefix, gather(tensors, prefix, layout, count, path)]));
    const installAdapters = adapters?.read(tensors, step);

    const net = load.target(config);
    net.setParameters(values.get('') as Float32Array);
    installAdapters?.(net);
    for (const set of EXTRA_SETS) {
      const flat = values.get(`${set}.`);
      if (flat !== undefined) net.model.setParams(flat, set);
    }
    const m = values.get(M_PREFIX);
    if (m !== undefined) net.model.setOptimizerState(m, values.get(V_PREFIX) as Float32Array, step);
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta)) if (!k.startsWith('dnft.')) metadata[k] = String(v);
    const trainer = meta['dnft.trainer'];
    return trainer === undefined ? { net, step, metadata } : { net, step, metadata, trainer };
  });
}

/** What a loader's body gets besides the open file: the network to load into, or one it creates on demand. */
export interface LoadTarget {
  readonly into: VelocityNet | undefined;
  /** `into` (idle again), or a new network of `config` that is disposed if the load fails after this. */
  target(config: NetConfig): VelocityNet;
}

/**
 * The frame of the loaders (loadCheckpoint, loadStateDict): their options checked, `into` idle, the file's header
 * read and the file closed, a network created for the load disposed again if it fails, and every error other than
 * a CheckpointError turned into one naming the file.
 */
export async function withLoad<T>(
  name: string,
  what: string,
  path: string,
  options: object,
  keys: readonly string[],
  body: (file: SafetensorsFile, load: LoadTarget) => Promise<T>,
): Promise<T> {
  const opts = objectOption('options', options);
  rejectUnknown(`${name} options`, opts, keys);
  const into = opts.into as VelocityNet | undefined;
  if (into !== undefined && !(into instanceof VelocityNet)) throw new TypeError('options.into must be a VelocityNet');
  into?.assertIdle(name);
  let file: SafetensorsFile | undefined;
  let created: VelocityNet | undefined;
  const load: LoadTarget = {
    into,
    target(config) {
      if (into !== undefined) {
        into.assertIdle(name);
        return into;
      }
      created = VelocityNet.create(config, {
        seed: opts.seed as CreateOptions['seed'],
        device: opts.device as CreateOptions['device'],
        precision: opts.precision as CreateOptions['precision'],
      });
      return created;
    },
  };
  try {
    try {
      file = await openSafetensorsFile(path);
    } catch (error) {
      throw new CheckpointError(`cannot read ${what}: ${(error as Error).message}`, { cause: error });
    }
    const result = await body(file, load);
    created = undefined;
    return result;
  } catch (error) {
    created?.dispose();
    if (error instanceof CheckpointError) throw error;
    throw new CheckpointError(`${path}: ${(error as Error).message}`, { cause: error });
  } finally {
    await file?.close();
  }
}
