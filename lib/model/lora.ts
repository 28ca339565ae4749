// LoRA adapters (docs/lora.md) on a network: adding them at a trainer's start, and adapter files (ours and PEFT's).
// Their options are lib/options/lora.ts. The native core
// holds the adapters (native/core/lora.h) and checks the target names against the network's modules.

import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { flatten, headerProblems } from '../core/checks.js';
import { CheckpointError, excerpt, fromNative, StateDictError } from '../core/errors.js';
import { committedPath, writeFilesAtomic } from '../core/files.js';
import { type NativeParamSpec, native, type ParamSetName } from '../core/native.js';
import { readGuardedText } from '../core/read-file.js';
import {
  encodeSafetensors,
  openSafetensorsFile,
  parseBoundedJson,
  type SafeTensor,
  type SafetensorsFile,
  writeSafetensorsFile,
} from '../core/safetensors.js';
import { LORA_SCHEMA, loraOptions } from '../options/lora.js';
import type { NetConfig } from '../options/net-config.js';
import { checkValue, objectOption, rejectUnknown } from '../options/schema.js';
import {
  PEFT_CONFIG,
  PEFT_PREFIX,
  PEFT_WEIGHTS,
  type PeftLora,
  peftConfig,
  peftLoraOfConfig,
  peftLoraOfTensors,
} from './lora-peft.js';
import type { LoraInfo, VelocityNet } from './net.js';
import { parseStep } from './step.js';

/** The `dnft.format` of our adapter files. */
export const ADAPTER_FORMAT = 'diffusion-nft-lora/1';
/** Where our safetensors files keep the AdamW moments, and the parameter sets besides θ (under `<set>.`). */
export const M_PREFIX = 'optimizer.m.';
export const V_PREFIX = 'optimizer.v.';
export const EXTRA_SETS: readonly ParamSetName[] = ['old', 'ref', 'ema'];

/**
 * A trainer's `lora` option, resolved with loraOptions, at the start of its phase: adds the adapters to a network
 * without any; a network that has adapters (a resumed run) must carry these ones. @internal
 */
export function useLora(net: VelocityNet, lora: ReturnType<typeof loraOptions>): void {
  const info = net.lora;
  if (info === null) {
    try {
      net.model.enableLora(lora.config, lora.seed);
    } catch (error) {
      throw fromNative(error);
    }
    return;
  }
  const { rank, alpha, init, targets } = info;
  const has = JSON.stringify({ rank, alpha, init, targets });
  if (has !== JSON.stringify(lora.config))
    throw new RangeError(`options.lora ${JSON.stringify(lora.config)} differs from the network's adapters ${has}`);
}

function requireLora(net: VelocityNet, what: string): LoraInfo {
  const info = net.lora;
  if (info === null) throw new RangeError(`${what}: the network has no LoRA adapters (enableLora first)`);
  return info;
}

/** Options of saveAdapter. */
export interface SaveAdapterOptions {
  /** Include the AdamW moments and step, so training resumes exactly (default: when the model has them). */
  optimizer?: boolean;
}

/**
 * The adapter state of a network with adapters as safetensors entries under `prefix`: the trained adapter, the
 * θ_old / θ_ref / EMA adapter sets (`old.` …), the AdamW moments when asked; and the `dnft.lora` metadata.
 * @internal
 */
export function adapterTensors(
  net: VelocityNet,
  withOptimizer: boolean,
  prefix: string,
): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
  const info = requireLora(net, 'saving adapters');
  const tensors: Record<string, SafeTensor> = {};
  const add = (group: string, source: Float32Array) => {
    for (const p of info.params) {
      const data = source.subarray(p.offset, p.offset + p.size);
      tensors[prefix + group + p.name] = { dtype: 'F32', shape: [...p.shape], data };
    }
  };
  const read = (set: ParamSetName) => {
    const values = new Float32Array(info.paramCount);
    net.model.getAdapter(values, set);
    return values;
  };
  add('', read('theta'));
  for (const set of EXTRA_SETS) if (net.model.hasParams(set)) add(`${set}.`, read(set));
  if (withOptimizer) {
    const m = new Float32Array(info.paramCount);
    const v = new Float32Array(info.paramCount);
    net.model.getOptimizerState(m, v);
    add(M_PREFIX, m);
    add(V_PREFIX, v);
  }
  const { rank, alpha, targets, init } = info;
  return { tensors, metadata: { 'dnft.lora': JSON.stringify({ rank, alpha, targets, init }) } };
}

/**
 * The adapter entries under `prefix` of a file for a network of `netConfig`, checked in two phases like a
 * checkpoint: `names` and `check` from the header (its `dnft.lora` metadata, the names present, dtypes and shapes),
 * then `read` of the data (every value finite), which returns what installs them on a network: the adapters, their
 * sets, and the AdamW moments with `step` when the file has them. Nothing changes until that runs. @internal
 */
export function adapterEntries(
  path: string,
  netConfig: Readonly<NetConfig>,
  metadata: Record<string, string>,
  present: readonly string[],
  prefix: string,
): {
  names: Set<string>;
  check: (tensors: Readonly<Record<string, { dtype: string; shape: readonly number[] }>>) => void;
  read: (tensors: Record<string, SafeTensor>, step: number) => (net: VelocityNet) => void;
} {
  let config: ReturnType<typeof loraOptions>['config'];
  let params: NativeParamSpec[];
  try {
    config = loraOptions('dnft.lora', parseBoundedJson(metadata['dnft.lora'] ?? 'null'), netConfig.arch).config;
    params = native().loraLayout({ ...netConfig }, config);
  } catch (error) {
    throw new CheckpointError(`${path}: invalid dnft.lora: ${fromNative(error).message}`, { cause: error });
  }
  const last = params[params.length - 1];
  const count = last === undefined ? 0 : last.offset + last.size;
  const mine = present.filter((k) => k.startsWith(prefix));
  const sets = EXTRA_SETS.filter((set) => mine.some((k) => k.startsWith(`${prefix}${set}.`)));
  const withMoments = mine.some((k) => k.startsWith(prefix + M_PREFIX) || k.startsWith(prefix + V_PREFIX));
  const groups = ['', ...sets.map((set) => `${set}.`), ...(withMoments ? [M_PREFIX, V_PREFIX] : [])];
  const names = new Set(params.flatMap((p) => groups.map((group) => prefix + group + p.name)));
  const check = (tensors: Readonly<Record<string, { dtype: string; shape: readonly number[] }>>) => {
    for (const group of groups) {
      for (const p of params) {
        const name = prefix + group + p.name;
        const t = Object.hasOwn(tensors, name) ? tensors[name] : undefined;
        if (t === undefined) throw new CheckpointError(`${path}: tensor '${name}' is missing`);
        if (t.dtype !== 'F32' || t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))
          throw new CheckpointError(
            `${path}: tensor '${name}' is ${t.dtype} [${t.shape.join(', ')}], expected F32 [${p.shape.join(', ')}]`,
          );
      }
    }
  };
  const read = (tensors: Record<string, SafeTensor>, step: number) => {
    const gather = (group: string) => {
      const flat = new Float32Array(count);
      for (const p of params) {
        const name = prefix + group + p.name;
        const data = (tensors[name] as SafeTensor).data as Float32Array;
        for (let i = 0; i < data.length; i++) {
          const v = data[i] as number;
          if (!Number.isFinite(v) || (group === V_PREFIX && v < 0))
            throw new CheckpointError(`${path}: tensor '${name}' holds an invalid value (${v}) at ${i}`);
        }
        flat.set(data, p.offset);
      }
      return flat;
    };
    const theta = gather('');
    const extra = sets.map((set) => [set, gather(`${set}.`)] as const);
    const moments = withMoments ? [gather(M_PREFIX), gather(V_PREFIX)] : [];
    return (net: VelocityNet) => {
      try {
        net.model.enableLora(config, 0);
        net.model.setAdapter(theta, 'theta');
        for (const [set, values] of extra) net.model.setAdapter(values, set);
        if (moments.length === 2)
          net.model.setOptimizerState(moments[0] as Float32Array, moments[1] as Float32Array, step);
      } catch (error) {
        throw fromNative(error);
      }
    };
  };
  return { names, check, read };
}

/**
 * Writes the adapters alone as safetensors: the trained adapter under its tensor names
 * (`blocks.0.attn.qkv.lora_A.weight` …), the θ_old, θ_ref and EMA adapter sets under `old.`, `ref.`, `ema.`, the
 * AdamW moments under `optimizer.m.` and `optimizer.v.`; metadata `dnft.format`, `dnft.lora` (rank, alpha,
 * targets, init), `dnft.config` (the base's) and `dnft.step`.
 */
export async function saveAdapter(path: string, net: VelocityNet, options: SaveAdapterOptions = {}): Promise<void> {
  const opts = objectOption('options', options);
  rejectUnknown('saveAdapter options', opts, ['optimizer']);
  net.assertIdle('saveAdapter');
  requireLora(net, 'saveAdapter');
  const withOptimizer = opts.optimizer === undefined ? net.model.hasOptimizerState() : opts.optimizer === true;
  if (withOptimizer && !net.model.hasOptimizerState())
    throw new CheckpointError('saveAdapter: optimizer state requested but the adapter has not been trained yet');
  const { tensors, metadata } = adapterTensors(net, withOptimizer, '');
  await writeSafetensorsFile(path, tensors, {
    ...metadata,
    'dnft.format': ADAPTER_FORMAT,
    'dnft.config': JSON.stringify(net.config),
    'dnft.step': String(net.step),
  });
}

/** Options of loadAdapter. */
export interface LoadAdapterOptions {
  /** lora_alpha of a PEFT adapter file given without its folder (whose adapter_config.json has it). */
  alpha?: number;
}

/**
 * Loads an adapter into `net` (the base it was trained on: same config), replacing any adapters. `path` is a file of
 * saveAdapter (the adapter sets, and the optimiser state and step when the file has them), or a PEFT adapter: the
 * folder PEFT's save_pretrained writes (adapter_model.safetensors and adapter_config.json), or its safetensors file
 * alone with `options.alpha`. Everything is checked before the network changes: a bad file is a CheckpointError, and
 * a PEFT adapter whose tensors do not fit a StateDictError naming each missing, unexpected or mis-shaped tensor.
 */
export async function loadAdapter(path: string, net: VelocityNet, options: LoadAdapterOptions = {}): Promise<void> {
  const opts = objectOption('options', options);
  rejectUnknown('loadAdapter options', opts, ['alpha']);
  const alpha =
    opts.alpha === undefined ? undefined : (checkValue('options.alpha', LORA_SCHEMA.alpha, opts.alpha) as number);
  net.assertIdle('loadAdapter');
  const folder = await stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
  let file: SafetensorsFile;
  try {
    file = await openSafetensorsFile(folder ? await committedPath(path, PEFT_WEIGHTS) : path);
  } catch (error) {
    throw new CheckpointError(`cannot read adapter: ${(error as Error).message}`, { cause: error });
  }
  try {
    const format = file.metadata['dnft.format'];
    if (!folder && format !== undefined) {
      if (alpha !== undefined)
        throw new RangeError(`loadAdapter: options.alpha is for PEFT adapters; ${path} carries its own`);
      await loadOwnAdapter(path, file, net);
    } else await loadPeftAdapter(path, folder, file, net, alpha);
  } finally {
    await file.close();
  }
}

async function loadOwnAdapter(path: string, file: SafetensorsFile, net: VelocityNet): Promise<void> {
  const meta = file.metadata;
  if (meta['dnft.format'] !== ADAPTER_FORMAT)
    throw new CheckpointError(
      `${path}: not a diffusion-nft adapter (dnft.format is ${excerpt(String(meta['dnft.format']))})`,
    );
  if (meta['dnft.config'] !== JSON.stringify(net.config))
    throw new CheckpointError(
      `${path}: base config ${excerpt(String(meta['dnft.config']))} does not match the network's ${JSON.stringify(net.config)}`,
    );
  const step = parseStep(meta['dnft.step'], path);
  const entries = adapterEntries(path, net.config, meta, Object.keys(file.tensors), '');
  const unknown = Object.keys(file.tensors).filter((k) => !entries.names.has(k));
  if (unknown.length > 0)
    throw new CheckpointError(`${path}: unexpected tensors: ${unknown.slice(0, 5).map(excerpt).join(', ')}`);
  entries.check(file.tensors);
  entries.read(await file.readTensors(), step)(net);
}

/** A PEFT adapter (a folder, or its tensors with `alpha`): its config, then every tensor checked, then installed. */
async function loadPeftAdapter(
  path: string,
  folder: boolean,
  file: SafetensorsFile,
  net: VelocityNet,
  alpha: number | undefined,
): Promise<void> {
  const modules = native().loraModules({ ...net.config });
  let peft: PeftLora;
  if (folder) {
    if (alpha !== undefined)
      throw new RangeError(`loadAdapter: options.alpha is for a PEFT file alone; ${path} has ${PEFT_CONFIG}`);
    const configPath = join(path, PEFT_CONFIG);
    let text: string;
    try {
      text = await readGuardedText(await committedPath(path, PEFT_CONFIG), 'config');
    } catch (error) {
      throw new CheckpointError(`cannot read adapter: ${(error as Error).message}`, { cause: error });
    }
    let json: unknown;
    try {
      json = parseBoundedJson(text);
    } catch (error) {
      throw new CheckpointError(`${configPath}: ${(error as Error).message}`, { cause: error });
    }
    peft = peftLoraOfConfig(configPath, json, modules, net.config.depth);
  } else {
    if (alpha === undefined)
      throw new CheckpointError(
        `${path} is not a diffusion-nft adapter; as a PEFT adapter file it needs lora_alpha: pass its folder (with ${PEFT_CONFIG}) or options.alpha`,
      );
    peft = peftLoraOfTensors(path, file.tensors, modules, alpha);
  }
  let config: ReturnType<typeof loraOptions>['config'];
  let layout: NativeParamSpec[];
  try {
    config = loraOptions(
      `${path}: lora`,
      { rank: peft.rank, alpha: peft.alpha, init: peft.init, targets: peft.targets },
      net.config.arch,
    ).config;
    layout = native()
      .loraLayout({ ...net.config }, config)
      .map((p) => ({ ...p, name: PEFT_PREFIX + p.name }));
  } catch (error) {
    throw new CheckpointError(fromNative(error).message, { cause: error });
  }
  const what = `a tensor of this adapter (rank ${config.rank} on ${config.targets.join(', ')} of every block)`;
  const problems = headerProblems(file.tensors, layout, what);
  if (problems.length > 0) throw new StateDictError(path, problems);
  const theta = flatten(path, await file.readTensors(), layout);
  try {
    net.model.enableLora(config, 0);
    net.model.setAdapter(theta, 'theta');
  } catch (error) {
    throw fromNative(error);
  }
}

/**
 * Writes the adapter (θ's, without the other sets or moments) as PEFT's save_pretrained does, into the folder `dir`:
 * adapter_model.safetensors with the tensors under `base_model.model.` (`base_model.model.blocks.0.attn.qkv.lora_A.weight`
 * …), and adapter_config.json (r, lora_alpha, target_modules naming the adapted block modules exactly). The two are
 * replaced as one (writeFilesAtomic, lib/core/files.ts): a process killed during the save leaves a folder that loads
 * the old adapter or the new one.
 */
export async function savePeftAdapter(dir: string, net: VelocityNet): Promise<void> {
  net.assertIdle('savePeftAdapter');
  const info = requireLora(net, 'savePeftAdapter');
  const theta = new Float32Array(info.paramCount);
  net.model.getAdapter(theta, 'theta');
  const tensors: Record<string, SafeTensor> = {};
  for (const p of info.params)
    tensors[PEFT_PREFIX + p.name] = {
      dtype: 'F32',
      shape: [...p.shape],
      data: theta.subarray(p.offset, p.offset + p.size),
    };
  await writeFilesAtomic(dir, {
    [PEFT_WEIGHTS]: encodeSafetensors(tensors, { format: 'pt' }),
    [PEFT_CONFIG]: `${JSON.stringify(peftConfig(info), null, 2)}\n`,
  });
}

/** The module names inside a block that LoRA can target on a network of `config` (e.g. 'attn.qkv'), in order. */
export function loraModules(config: Readonly<NetConfig>): string[] {
  try {
    return native().loraModules({ ...config });
  } catch (error) {
    throw fromNative(error);
  }
}
