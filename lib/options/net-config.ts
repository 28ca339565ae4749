import { type Rule, resolveOptions } from './schema.js';

/** Network architecture: the residual MLP of docs/network.md or the diffusion transformer of docs/dit.md. */
export type Arch = 'mlp' | 'dit';

/** The fields both architectures share. */
interface CommonNetConfig {
  /** Flattened sample size D. */
  dataDim: number;
  /** Hidden width W. */
  width: number;
  /** Residual blocks (MLP) or transformer blocks (DiT). */
  depth: number;
  /** Expansion of each block's MLP (W → mlpRatio·W → W). */
  mlpRatio: number;
  /** Sinusoidal time features (even). */
  timeFeatures: number;
  /** Condition vocabulary; token 0 is the null (pad) token used for classifier-free guidance. */
  vocabSize: number;
  /** Condition tokens per sample; each slot has its own embedding table, so token order matters. */
  condSlots: number;
}

/** Configuration of the residual MLP (docs/network.md). */
export interface MlpConfig extends CommonNetConfig {
  /** The architecture: the residual MLP. */
  arch: 'mlp';
}

/** Configuration of the diffusion transformer (docs/dit.md); samples are HWC images flattened to dataDim. */
export interface DitConfig extends CommonNetConfig {
  /** The architecture: the diffusion transformer. */
  arch: 'dit';
  /** Image side S: dataDim must equal imageSize² · channels. */
  imageSize: number;
  /** Image channels C. */
  channels: number;
  /** Patch side p (divides imageSize): (S/p)² tokens of p²·C values. */
  patch: number;
  /** Attention heads (divide width). */
  heads: number;
}

/** Configuration of the velocity network, by architecture. */
export type NetConfig = MlpConfig | DitConfig;

/** A preset name: 'small' (2-D data, MLP), 'M' (16×16×3 images, MLP) or 'D' (16×16×3 images, DiT). */
export type NetPreset = 'small' | 'M' | 'D';

/** Config M of the benchmarks: 16×16×3 images, width 512, 4 blocks (about 11.6 M parameters). */
export const CONFIG_M: Readonly<MlpConfig> = Object.freeze({
  arch: 'mlp',
  dataDim: 768,
  width: 512,
  depth: 4,
  mlpRatio: 4,
  timeFeatures: 64,
  vocabSize: 32,
  condSlots: 8,
});

/** The small config for 2-D data (toy2d). */
export const CONFIG_SMALL: Readonly<MlpConfig> = Object.freeze({
  arch: 'mlp',
  dataDim: 2,
  width: 128,
  depth: 3,
  mlpRatio: 4,
  timeFeatures: 32,
  vocabSize: 16,
  condSlots: 1,
});

/** Config D of the benchmarks: a DiT on 16×16×3 images, patch 2 (64 tokens), width 192, 4 blocks, 4 heads (2.84 M). */
export const CONFIG_D: Readonly<DitConfig> = Object.freeze({
  arch: 'dit',
  dataDim: 768,
  width: 192,
  depth: 4,
  mlpRatio: 4,
  timeFeatures: 64,
  vocabSize: 32,
  condSlots: 8,
  imageSize: 16,
  channels: 3,
  patch: 2,
  heads: 4,
});

const PRESETS: Record<NetPreset, Readonly<NetConfig>> = { small: CONFIG_SMALL, M: CONFIG_M, D: CONFIG_D };

const int = (min: number, max: number) => ({ type: 'int', min, max }) as const;

/** The network config's option table; defaults come from the preset. */
const NET_CONFIG_SCHEMA = {
  preset: { type: 'enum', values: ['small', 'M', 'D'] },
  arch: { type: 'enum', values: ['mlp', 'dit'] },
  dataDim: int(1, 1 << 20),
  width: int(1, 1 << 16),
  depth: int(0, 256),
  mlpRatio: int(1, 64),
  timeFeatures: int(2, 4096),
  vocabSize: int(1, 1 << 20),
  condSlots: int(1, 1024),
  imageSize: int(1, 4096),
  channels: int(1, 4096),
  patch: int(1, 4096),
  heads: int(1, 1 << 16),
} as const satisfies Record<keyof MlpConfig | keyof DitConfig | 'preset', Rule>;

const DIT_FIELDS = ['imageSize', 'channels', 'patch', 'heads'] as const;

/**
 * Fills a partial config from a preset and validates every field: the one network-config validator (the native core
 * re-checks only what its memory safety needs). The preset defaults to 'D' when `arch` is 'dit' and to 'small'
 * otherwise; an explicit preset of the other architecture is an error.
 */
export function resolveNetConfig(config: unknown): NetConfig {
  const given = resolveOptions('config', config, NET_CONFIG_SCHEMA);
  const preset = given.preset ?? (given.arch === 'dit' ? 'D' : 'small');
  const base = PRESETS[preset];
  if (given.arch !== undefined && given.arch !== base.arch)
    throw new RangeError(`config.arch '${given.arch}' does not match preset '${preset}' (arch '${base.arch}')`);
  const { preset: _, ...fields } = given;
  const resolved = { ...base } as Record<string, unknown>;
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) resolved[key] = value;
  if ((resolved.timeFeatures as number) % 2 !== 0)
    throw new RangeError(`config.timeFeatures must be even, got ${resolved.timeFeatures}`);
  if (base.arch === 'mlp') {
    for (const key of DIT_FIELDS) {
      if (given[key] !== undefined) throw new TypeError(`config.${key} applies only to arch 'dit'`);
    }
    return resolved as unknown as MlpConfig;
  }
  const dit = resolved as unknown as DitConfig;
  checkDitShapes(dit);
  return dit;
}

/** The DiT's consistency rules (the native core checks them again: its indexing relies on them). */
function checkDitShapes(c: DitConfig): void {
  const pixels = c.imageSize * c.imageSize * c.channels;
  if (c.dataDim !== pixels)
    throw new RangeError(
      `config.dataDim must equal imageSize² · channels = ${pixels} for arch 'dit', got ${c.dataDim}`,
    );
  if (c.imageSize % c.patch !== 0)
    throw new RangeError(`config.imageSize (${c.imageSize}) must be divisible by patch (${c.patch})`);
  if (c.width % c.heads !== 0)
    throw new RangeError(`config.width (${c.width}) must be divisible by heads (${c.heads})`);
  if (c.width % 4 !== 0)
    throw new RangeError(`config.width must be a multiple of 4 for the 2-D sin-cos position embedding, got ${c.width}`);
}
