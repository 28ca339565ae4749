// The optimiser step recorded in our safetensors files (`dnft.step` of checkpoints and adapters), read back.
import { CheckpointError, excerpt } from '../core/errors.js';
import { limits } from '../core/native.js';

/** The step of a file's `dnft.step` (0 when absent): decimal digits only, at most the native limit (2^40). */
export function parseStep(text: string | undefined, path: string): number {
  if (text === undefined) return 0;
  const step = /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : Number.NaN;
  if (!(step <= limits().maxStep)) {
    throw new CheckpointError(
      `${path}: invalid dnft.step ${JSON.stringify(excerpt(text))} (a decimal integer in [0, 2^40])`,
    );
  }
  return step;
}
