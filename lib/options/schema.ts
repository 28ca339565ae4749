// The option schema: each option group is one table of rules (type, range, default), and resolveOptions checks user
// options against it at the API edge. Unknown fields and bad values are rejected with errors that name the field,
// before any native state is touched; the native side checks types only.

/** An integer or real number within [min, max]. */
export interface NumberRule {
  readonly type: 'int' | 'number';
  readonly min: number;
  readonly max: number;
  readonly default?: number;
}

/** A boolean. */
export interface BooleanRule {
  readonly type: 'boolean';
  readonly default?: boolean;
}

/** One of a few strings. */
export interface EnumRule<V extends string = string> {
  readonly type: 'enum';
  readonly values: readonly V[];
  readonly default?: V;
}

/** A string. */
export interface StringRule {
  readonly type: 'string';
  readonly default?: string;
}

/** A field whose value (a tensor, a function, a list) the caller checks itself; the schema only knows its name. */
export interface ValueRule {
  readonly type: 'value';
}

export type Rule = NumberRule | BooleanRule | EnumRule | StringRule | ValueRule;

/** An option group: field name → rule. */
export type Schema = Readonly<Record<string, Rule>>;

type ValueOf<R> = R extends BooleanRule
  ? boolean
  : R extends StringRule
    ? string
    : R extends EnumRule<infer V>
      ? V
      : R extends NumberRule
        ? number
        : unknown;

/** The resolved options of a schema: fields with a default (other than undefined) are always present. */
export type Resolved<S extends Schema> = {
  -readonly [K in keyof S]: S[K] extends { default: infer D }
    ? undefined extends D
      ? ValueOf<S[K]> | undefined
      : ValueOf<S[K]>
    : ValueOf<S[K]> | undefined;
};

/** Levenshtein distance: the fewest one-character insertions, deletions and substitutions from `a` to `b`. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        (previous[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = row;
  }
  return previous[b.length] as number;
}

/**
 * The known name a mistyped one most likely meant: the closest by edit distance ignoring case, when it is within a
 * third of the name's length (at least 2 edits), else undefined.
 */
export function closestName(given: string, known: readonly string[]): string | undefined {
  const wanted = given.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(wanted, name.toLowerCase());
    if (best === undefined || distance < best.distance) best = { name, distance };
  }
  const allowed = Math.max(2, Math.floor(given.length / 3));
  return best !== undefined && best.distance <= allowed ? best.name : undefined;
}

/** `; did you mean 'x'?` for a mistyped name, else the known names when there are few, else ''. */
export function didYouMean(given: string, known: readonly string[]): string {
  const close = closestName(given, known);
  if (close !== undefined) return `; did you mean '${close}'?`;
  return known.length <= 8 ? ` (known: ${known.join(', ')})` : '';
}

/** Throws TypeError for fields not in `allowed` (typos must not be silently ignored), with the likely one. */
export function rejectUnknown(what: string, value: object, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new TypeError(`${what}: unknown option '${key}'${didYouMean(key, allowed)}`);
  }
}

/** Checks one value against its rule (`name` is the field's full name in messages); returns it. */
export function checkValue(name: string, rule: Rule, v: unknown): unknown {
  switch (rule.type) {
    case 'value':
      return v;
    case 'boolean':
    case 'string':
      if (typeof v !== rule.type) throw new TypeError(`${name} must be a ${rule.type}, got ${typeof v}`);
      return v;
    case 'enum':
      if (typeof v !== 'string' || !rule.values.includes(v)) {
        const list = rule.values.map((x) => `'${x}'`);
        const choices = list.length > 1 ? `${list.slice(0, -1).join(', ')} or ${list.at(-1)}` : list.join('');
        const close = typeof v === 'string' ? closestName(v, rule.values) : undefined;
        throw new RangeError(
          `${name} must be ${choices}, got ${String(v)}${close === undefined ? '' : `; did you mean '${close}'?`}`,
        );
      }
      return v;
    default: {
      if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${typeof v}`);
      if (!Number.isFinite(v)) throw new RangeError(`${name} must be a finite number, got ${v}`);
      if ((rule.type === 'int' && !Number.isInteger(v)) || v < rule.min || v > rule.max) {
        const kind = rule.type === 'int' ? 'an integer' : 'a number';
        throw new RangeError(`${name} must be ${kind} in [${rule.min}, ${rule.max}], got ${v}`);
      }
      return v;
    }
  }
}

/**
 * Checks `given` (an object of user options, or undefined) against a schema: unknown fields are rejected, present
 * ones checked, absent ones take the rule's default (or stay undefined). Messages name `what.field`.
 */
export function resolveOptions<S extends Schema>(what: string, given: unknown, schema: S): Resolved<S> {
  const opts = objectOption(what, given);
  rejectUnknown(what, opts, Object.keys(schema));
  const result: Record<string, unknown> = {};
  for (const [field, rule] of Object.entries(schema)) {
    const v = opts[field];
    if (v !== undefined) result[field] = checkValue(`${what}.${field}`, rule, v);
    else if (rule.type !== 'value' && rule.default !== undefined) result[field] = rule.default;
  }
  return result as Resolved<S>;
}

/** The fields of `values` that `schema` names. */
export function pick<S extends Schema>(values: object, schema: S): Resolved<S> {
  const result: Record<string, unknown> = {};
  for (const field of Object.keys(schema)) {
    const v = (values as Record<string, unknown>)[field];
    if (v !== undefined) result[field] = v;
  }
  return result as Resolved<S>;
}

/** The schema with some fields' defaults replaced (their types and ranges unchanged). */
export function withDefaults<S extends Schema>(schema: S, defaults: Readonly<Partial<Record<keyof S, unknown>>>): S {
  const result: Record<string, Rule> = { ...schema };
  for (const [field, value] of Object.entries(defaults)) result[field] = { ...schema[field], default: value } as Rule;
  return result as S;
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
