// The check of a resume: whether the trainer state saved in a checkpoint is the current run's, states written by
// earlier versions of the package included.
import { canonicalJson } from '../core/canonical-json.js';
import { jsonDifference } from '../core/json-difference.js';
import { OPTIMIZER_SCHEMA } from '../options/optimizer.js';

/**
 * How a saved trainer state differs from the current one: the first option that differs, with its value in each, or
 * undefined when they are the same run. States saved before the option schema (up to commit 99ab044) list only the
 * optimiser options that were given, in `optimizer` and `native`; the others took the defaults, the same then as
 * OPTIMIZER_SCHEMA's, so they are filled in before comparing.
 */
export function runDifference(saved: unknown, current: string): string | undefined {
  let state: unknown;
  try {
    state = typeof saved === 'string' ? JSON.parse(saved) : undefined;
  } catch {
    state = undefined;
  }
  if (state === null || typeof state !== 'object') return `its options are not a JSON object: ${String(saved)}`;
  const fields = state as Record<string, unknown>;
  for (const key of ['optimizer', 'native']) {
    const group = fields[key] as Record<string, unknown> | undefined;
    if (group === null || typeof group !== 'object') continue;
    for (const [field, rule] of Object.entries(OPTIMIZER_SCHEMA)) {
      if (!(field in group)) group[field] = rule.default;
    }
  }
  const [then, now] = [fields, JSON.parse(current) as Record<string, unknown>].map((s) =>
    JSON.parse(canonicalJson(withoutMemorySettings(s))),
  );
  const found = jsonDifference(then, now);
  if (found === undefined) return undefined;
  return `${found.path || 'the options'} is ${found.a} in it, ${found.b} in this run (its options: ${saved})`;
}

/**
 * A state without the settings that bound memory: the rollouts' `chunk` (the samples do not depend on it) and the
 * micro-batch sizes (each step's mean loss and gradient stay as they are; only the float rounding moves). A resume
 * may change them: a state saved under the former defaults (1024 and 0) resumes under today's.
 */
function withoutMemorySettings(state: Record<string, unknown>): Record<string, unknown> {
  const { microBatch: _top, chunk: _chunk, ...rest } = state;
  const native = rest.native;
  if (native === null || typeof native !== 'object') return rest;
  const { microBatch: _native, ...nativeRest } = native as Record<string, unknown>;
  return { ...rest, native: nativeRest };
}
