// PEFT's adapter convention (docs/lora.md, "PEFT adapters"): the folder PEFT's save_pretrained writes holds
// adapter_model.safetensors, whose tensors are ours under the prefix `base_model.model.`, and adapter_config.json
// (r, lora_alpha, target_modules, …). This file maps that config to our LoRA options and back; lib/model/lora.ts reads and
// writes the files.

import { RE2JS } from 're2js';
import { CheckpointError, excerpt } from '../core/errors.js';
import type { TensorEntry } from '../core/safetensors.js';
import type { LoraInit } from '../options/lora.js';

/** The prefix of every tensor name in a PEFT adapter file. */
export const PEFT_PREFIX = 'base_model.model.';
export const PEFT_WEIGHTS = 'adapter_model.safetensors';
export const PEFT_CONFIG = 'adapter_config.json';

/** What an adapter needs from a PEFT config or file; validated by loraOptions afterwards. */
export interface PeftLora {
  rank: unknown;
  alpha: unknown;
  init: LoraInit;
  targets: string[];
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The adapter_config.json of an adapter: plain LoRA with our rank, alpha and init, and target_modules as a regular
 * expression (PEFT matches a string against the whole module name) naming exactly the targets of every block.
 */
export function peftConfig(lora: { rank: number; alpha: number; init: LoraInit; targets: readonly string[] }) {
  return {
    peft_type: 'LORA',
    r: lora.rank,
    lora_alpha: lora.alpha,
    target_modules: `blocks\\.\\d+\\.(${lora.targets.map(escapeRegExp).join('|')})`,
    init_lora_weights: lora.init === 'gaussian' ? 'gaussian' : true,
    lora_dropout: 0,
    bias: 'none',
    use_rslora: false,
    use_dora: false,
    fan_in_fan_out: false,
    modules_to_save: null,
    layers_to_transform: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
}

/**
 * The longest target_modules pattern compiled (compiling costs time in proportion to the pattern), and the most
 * names a target_modules list may hold (each is compared with every module of every block).
 */
const MAX_PATTERN = 10_000;

/**
 * PEFT's module matching: a string is a regular expression for the whole name (Python's re.fullmatch), a list holds
 * names or `.`-suffixes. The pattern comes from a file, so it runs on RE2's linear-time engine (re2js), never on a
 * backtracking one: no pattern can hang the load. RE2 refuses back-references and look-arounds, which the module
 * names here never need.
 */
function moduleMatcher(path: string, targetModules: unknown): (name: string) => boolean {
  if (typeof targetModules === 'string') {
    if (targetModules === 'all-linear')
      throw new CheckpointError(`${path}: target_modules 'all-linear' also adapts linears outside the blocks`);
    if (targetModules.length > MAX_PATTERN)
      throw new CheckpointError(
        `${path}: target_modules is a pattern of ${targetModules.length} characters, over the limit of ${MAX_PATTERN}`,
      );
    let pattern: RE2JS;
    try {
      pattern = RE2JS.compile(targetModules);
    } catch (error) {
      throw new CheckpointError(`${path}: target_modules: ${excerpt((error as Error).message)}`, { cause: error });
    }
    return (name) => pattern.matches(name);
  }
  if (Array.isArray(targetModules) && targetModules.every((t) => typeof t === 'string')) {
    if (targetModules.length > MAX_PATTERN)
      throw new CheckpointError(
        `${path}: target_modules lists ${targetModules.length} names, over the limit of ${MAX_PATTERN}`,
      );
    return (name) => targetModules.some((t: string) => name === t || name.endsWith(`.${t}`));
  }
  throw new CheckpointError(`${path}: target_modules must be a list of module names or a regular expression`);
}

const isEmpty = (v: unknown) =>
  v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0);

/**
 * The LoRA an adapter_config.json describes, for a network whose blocks (`depth` of them) offer `modules`: its
 * targets are the block modules target_modules matches, which must be the same in every block. Features beyond plain
 * LoRA (DoRA, trained biases, extra saved modules, per-layer ranks or layers) are refused; rsLoRA's scale
 * lora_alpha/√r is kept as alpha = lora_alpha·√r.
 */
export function peftLoraOfConfig(path: string, config: unknown, modules: readonly string[], depth: number): PeftLora {
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    throw new CheckpointError(`${path}: must hold a JSON object`);
  const c = config as Record<string, unknown>;
  const refuse = (field: string, why: string) => {
    throw new CheckpointError(`${path}: ${field} = ${excerpt(JSON.stringify(c[field]))} is not supported (${why})`);
  };
  if (c.peft_type !== undefined && c.peft_type !== 'LORA') refuse('peft_type', 'only LORA');
  if (c.use_dora === true) refuse('use_dora', 'DoRA is not LoRA');
  if (c.fan_in_fan_out === true) refuse('fan_in_fan_out', 'the weights here are (out, in)');
  if (c.bias !== undefined && c.bias !== 'none') refuse('bias', 'only the adapters train, not biases');
  for (const field of ['modules_to_save', 'layers_to_transform', 'rank_pattern', 'alpha_pattern']) {
    if (!isEmpty(c[field])) refuse(field, 'an adapter here has one rank and alpha on its targets in every block');
  }
  const matches = moduleMatcher(path, c.target_modules);
  const targets: string[] = [];
  for (const module of modules) {
    const blocks = Array.from({ length: depth }, (_, i) => matches(`blocks.${i}.${module}`));
    if (blocks.every(Boolean)) targets.push(module);
    else if (blocks.some(Boolean))
      throw new CheckpointError(
        `${path}: target_modules adapts '${module}' in only some blocks; an adapter here covers every block`,
      );
  }
  if (targets.length === 0)
    throw new CheckpointError(
      `${path}: target_modules ${excerpt(JSON.stringify(c.target_modules))} matches no block module of this network (${modules.map((m) => `'${m}'`).join(', ')})`,
    );
  const rank = c.r;
  const alpha =
    c.use_rslora === true && typeof c.lora_alpha === 'number' && typeof rank === 'number'
      ? c.lora_alpha * Math.sqrt(rank)
      : c.lora_alpha;
  return { rank, alpha, init: c.init_lora_weights === 'gaussian' ? 'gaussian' : 'kaiming', targets };
}

/**
 * The LoRA of a PEFT adapter file without its config: the targets are the block modules its tensor names adapt,
 * the rank is the first lora_A's rows; alpha is the caller's.
 */
export function peftLoraOfTensors(
  path: string,
  tensors: Readonly<Record<string, TensorEntry>>,
  modules: readonly string[],
  alpha: number,
): PeftLora {
  const pattern = new RegExp(`^${escapeRegExp(PEFT_PREFIX)}blocks\\.\\d+\\.(.+)\\.lora_([AB])\\.weight$`);
  const adapted = new Set<string>();
  let rank: number | undefined;
  for (const [name, t] of Object.entries(tensors)) {
    const m = pattern.exec(name);
    if (m === null || !modules.includes(m[1] as string)) continue;
    adapted.add(m[1] as string);
    if (m[2] === 'A') rank ??= t.shape[0];
  }
  if (rank === undefined)
    throw new CheckpointError(
      `${path}: no tensor '${PEFT_PREFIX}blocks.<i>.<module>.lora_A.weight' for a module of this network (${modules.map((m) => `'${m}'`).join(', ')})`,
    );
  return { rank, alpha, init: 'gaussian', targets: modules.filter((m) => adapted.has(m)) };
}
