// Validation of user options at the API edge: unknown fields and out-of-range values are rejected with errors that
// name the field, before any native state is touched.

/** One field's rule: an integer or real number within [min, max]. */
export interface NumberRule {
  kind: 'int' | 'number';
  min: number;
  max: number;
}

/** Throws TypeError for fields not in `allowed` (typos must not be silently ignored). */
export function rejectUnknown(what: string, value: object, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`${what}: unknown option '${key}' (known: ${allowed.join(', ')})`);
    }
  }
}

/** Checks value[field] against its rule when it is present; returns it or the fallback. */
export function numberOption(
  what: string,
  value: Record<string, unknown>,
  field: string,
  rule: NumberRule,
  fallback: number,
): number {
  const v = value[field];
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || Number.isNaN(v))
    throw new TypeError(`${what}.${field} must be a number, got ${typeof v}`);
  if ((rule.kind === 'int' && !Number.isInteger(v)) || v < rule.min || v > rule.max) {
    const kind = rule.kind === 'int' ? 'an integer' : 'a number';
    throw new RangeError(`${what}.${field} must be ${kind} in [${rule.min}, ${rule.max}], got ${v}`);
  }
  return v;
}

/** Checks that `value` is a plain object (or undefined, giving {}). */
export function objectOption(what: string, value: unknown): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${what} must be an object`);
  }
  return value as Record<string, unknown>;
}

/** Checks a seed: a non-negative safe integer or a bigint below 2^64. */
export function seedOption(what: string, seed: unknown): number | bigint {
  if (typeof seed === 'bigint') {
    if (seed < 0n || seed >= 2n ** 64n) throw new RangeError(`${what} must be in [0, 2^64), got ${seed}`);
    return seed;
  }
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer or a bigint, got ${String(seed)}`);
  }
  return seed;
}
