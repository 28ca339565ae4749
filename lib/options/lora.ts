// The options of LoRA adapters (docs/lora.md): their table with DiffusionNFT's official defaults, and their
// resolution for the native call.
import type { Arch } from './net-config.js';
import { type Rule, resolveOptions, seedOption } from './schema.js';

/** How A starts: 'gaussian' N(0, 1/rank²) (PEFT's 'gaussian'), or 'kaiming' U(±1/√in) (PEFT's default). B is 0. */
export type LoraInit = 'gaussian' | 'kaiming';

/**
 * Options of `VelocityNet.enableLora` and `CreateOptions.lora`. Defaults are DiffusionNFT's official settings:
 * rank 32, alpha 64, 'gaussian'; targets default to the attention's qkv and output projection (DiT) or the blocks'
 * fc1 and fc2 (MLP).
 */
export interface LoraOptions {
  /** Rank r of A (r, in) and B (out, r), an integer in [1, 4096]. */
  rank?: number;
  /** The adapter's output is scaled by alpha / rank; a positive number. */
  alpha?: number;
  /** Modules inside every block: DiT 'attn.qkv' | 'attn.proj' | 'mlp.fc1' | 'mlp.fc2' | 'ada'; MLP 'fc1' | 'fc2' | 'ada'. */
  targets?: readonly string[];
  /** How A starts (see LoraInit). */
  init?: LoraInit;
  /** Seed of A's draw (default 0). */
  seed?: number | bigint;
}

/** LoraOptions' table (DiffusionNFT's official defaults); targets and seed are checked by loraOptions. */
export const LORA_SCHEMA = {
  rank: { type: 'int', min: 1, max: 4096, default: 32 },
  alpha: { type: 'number', min: 1e-6, max: 1e6, default: 64 },
  targets: { type: 'value' },
  init: { type: 'enum', values: ['gaussian', 'kaiming'], default: 'gaussian' },
  seed: { type: 'value' },
} as const satisfies Record<keyof LoraOptions, Rule>;

/** The default targets: the attention's projections (DiT), the block MLP (MLP). */
export const LORA_DEFAULT_TARGETS: Readonly<Record<Arch, readonly string[]>> = {
  dit: ['attn.qkv', 'attn.proj'],
  mlp: ['fc1', 'fc2'],
};

/** The options resolved for the native call, and A's seed. @internal */
export function loraOptions(
  what: string,
  value: unknown,
  arch: Arch,
): { config: { rank: number; alpha: number; init: LoraInit; targets: string[] }; seed: number | bigint } {
  const o = resolveOptions(what, value, LORA_SCHEMA);
  const targets = o.targets ?? LORA_DEFAULT_TARGETS[arch];
  if (!(Array.isArray(targets) && targets.every((t) => typeof t === 'string')))
    throw new TypeError(`${what}.targets must be an array of module names`);
  return {
    config: { rank: o.rank, alpha: o.alpha, init: o.init, targets: [...targets] },
    seed: seedOption(`${what}.seed`, o.seed ?? 0),
  };
}
