import { numberOption, objectOption, rejectUnknown } from './options.js';

/** Configuration of the velocity network (docs/network.md). */
export interface NetConfig {
  /** Flattened sample size D. */
  dataDim: number;
  /** Hidden width W. */
  width: number;
  /** Residual blocks. */
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

/** Config M of the benchmarks: 16×16×3 images, width 512, 4 blocks (about 11.6 M parameters). */
export const CONFIG_M: Readonly<NetConfig> = Object.freeze({
  dataDim: 768,
  width: 512,
  depth: 4,
  mlpRatio: 4,
  timeFeatures: 64,
  vocabSize: 32,
  condSlots: 8,
});

/** The small config for 2-D data (toy2d). */
export const CONFIG_SMALL: Readonly<NetConfig> = Object.freeze({
  dataDim: 2,
  width: 128,
  depth: 3,
  mlpRatio: 4,
  timeFeatures: 32,
  vocabSize: 16,
  condSlots: 1,
});

const LIMITS: Record<keyof NetConfig, [number, number]> = {
  dataDim: [1, 1 << 20],
  width: [1, 1 << 16],
  depth: [0, 256],
  mlpRatio: [1, 64],
  timeFeatures: [2, 4096],
  vocabSize: [1, 1 << 20],
  condSlots: [1, 1024],
};

/** Fills a partial config from a preset ('small' by default) and validates every field. */
export function resolveNetConfig(config: unknown): NetConfig {
  const given = objectOption('config', config);
  rejectUnknown('config', given, [...Object.keys(LIMITS), 'preset']);
  const preset = given.preset ?? 'small';
  if (preset !== 'small' && preset !== 'M')
    throw new RangeError(`config.preset must be 'small' or 'M', got ${String(preset)}`);
  const base = preset === 'M' ? CONFIG_M : CONFIG_SMALL;
  const result = { ...base };
  for (const key of Object.keys(LIMITS) as (keyof NetConfig)[]) {
    const [min, max] = LIMITS[key];
    result[key] = numberOption('config', given, key, { kind: 'int', min, max }, base[key]);
  }
  if (result.timeFeatures % 2 !== 0)
    throw new RangeError(`config.timeFeatures must be even, got ${result.timeFeatures}`);
  return result;
}
