// Command-line options described by option tables (lib/options/schema.ts): a flag's parser, choices and default come from
// its rule, and a JSON file given with --config is checked field by field against the same rules. Also the parsers
// and flags that several commands share.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { readGuardedText } from '../core/read-file.js';
import { parseBoundedJson } from '../core/safetensors.js';
import { guidanceLabel, SHAPES_GUIDANCE } from '../jobs/shapes/guidance.js';
import { MICRO_BATCH } from '../options/optimizer.js';
import {
  checkValue,
  didYouMean,
  type EnumRule,
  type NumberRule,
  type Resolved,
  type Rule,
  type Schema,
} from '../options/schema.js';

/** What a numeric rule accepts, in words: "a positive number", "an integer >= 1", "a number in [0, 1]". */
export function describeNumber(rule: NumberRule): string {
  const kind = rule.type === 'int' ? 'an integer' : 'a number';
  if (rule.min === Number.MIN_VALUE) return rule.type === 'int' ? 'a positive integer' : 'a positive number';
  if (rule.min <= -Number.MAX_VALUE && rule.max >= Number.MAX_VALUE) return kind;
  return rule.max >= Number.MAX_SAFE_INTEGER ? `${kind} >= ${rule.min}` : `${kind} in [${rule.min}, ${rule.max}]`;
}

/** The parser of a numeric flag: the text as a number that satisfies `rule`. */
export function parseNumber(rule: NumberRule): (text: string) => number {
  return (text) => {
    const v = Number(text);
    const expected = `expected ${describeNumber(rule)}`;
    if (text.trim() === '' || !Number.isFinite(v)) throw new InvalidArgumentError(`not a number: ${expected}`);
    if (rule.type === 'int' && !Number.isInteger(v)) throw new InvalidArgumentError(`not an integer: ${expected}`);
    if (v < rule.min || v > rule.max) throw new InvalidArgumentError(`out of range: ${expected}`);
    return v;
  };
}

/** The parser of flag `name` with a few values: one of them (the rule's check, which suggests the closest). */
export function parseChoice<V extends string>(name: string, rule: EnumRule<V>): (text: string) => V {
  return (text) => {
    try {
      return checkValue(name, rule, text) as V;
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

/** A flag whose parser, choices and default are those of `rule`. */
export function flag(flags: string, description: string, rule: Rule): Option {
  const option = new Option(flags, description);
  // choices() for the help text; the parser then replaces commander's own check, to suggest the closest value.
  if (rule.type === 'enum') option.choices(rule.values).argParser(parseChoice(option.long ?? flags, rule));
  if (rule.type === 'int' || rule.type === 'number') option.argParser(parseNumber(rule));
  if (rule.type !== 'value' && rule.default !== undefined) option.default(rule.default);
  return option;
}

/** The `--config <file>` flag of the commands whose options are a table. */
export interface ConfigFlag {
  config?: string;
}

/**
 * A command's options, the values of the flags of its table `schema`, with those of its JSON config file
 * (`opts.config`) under the flags given explicitly. Every field of the file must be one of `schema` and satisfy its
 * rule; the error names the file and the field. The file is read by the guarded reader (lib/core/read-file.ts).
 */
export async function withConfig<S extends Schema>(
  opts: Resolved<S> & ConfigFlag,
  command: Command,
  schema: S,
): Promise<Resolved<S>> {
  if (opts.config === undefined) return opts;
  let file: unknown;
  try {
    file = parseBoundedJson(await readGuardedText(opts.config, 'config'));
  } catch (error) {
    throw new InvalidArgumentError(`cannot read config ${opts.config}: ${(error as Error).message}`);
  }
  if (file === null || typeof file !== 'object' || Array.isArray(file)) {
    throw new InvalidArgumentError(`config ${opts.config} must hold a JSON object`);
  }
  const merged: Record<string, unknown> = { ...opts };
  for (const [key, value] of Object.entries(file)) {
    const rule = schema[key];
    if (rule === undefined || key === 'config') {
      const known = Object.keys(schema);
      throw new InvalidArgumentError(`config ${opts.config}: unknown option '${key}'${didYouMean(key, known)}`);
    }
    try {
      checkValue(key, rule, value);
    } catch (error) {
      throw new InvalidArgumentError(`config ${opts.config}: ${(error as Error).message}`);
    }
    if (command.getOptionValueSource(key) !== 'cli') merged[key] = value;
  }
  return merged as Resolved<S>;
}

export const integer = (min: number) => parseNumber({ type: 'int', min, max: Number.MAX_SAFE_INTEGER });
export const positive = parseNumber({ type: 'number', min: Number.MIN_VALUE, max: Number.MAX_VALUE });
export const number = parseNumber({ type: 'number', min: -Number.MAX_VALUE, max: Number.MAX_VALUE });

// "lo,hi" with 0 ≤ lo ≤ hi ≤ 1: the times at which guidance applies.
function interval(value: string): [number, number] {
  const parts = value.split(',').map((part) => Number(part.trim()));
  const [lo, hi] = parts;
  if (parts.length !== 2 || !(lo !== undefined && hi !== undefined && lo >= 0 && lo <= hi && hi <= 1)) {
    throw new InvalidArgumentError('expected lo,hi with 0 <= lo <= hi <= 1');
  }
  return [lo, hi];
}

export const CFG_HELP = 'classifier-free guidance scale';

/** `--cfg-interval <lo,hi>`: the times at which guidance applies. */
export function cfgIntervalOption(): Option {
  const help = `guidance only at t in [lo, hi] (1 = noise; the benchmark's "with CFG" is ${guidanceLabel(SHAPES_GUIDANCE)})`;
  return new Option('--cfg-interval <lo,hi>', help).argParser(interval).default([0, 1], '0,1');
}

/** `--micro-batch <rows>`: the training rows per forward/backward, which bound the memory of a training step. */
export function microBatchOption(rule: NumberRule = MICRO_BATCH): Option {
  const help =
    "training rows per forward/backward: fewer use less memory, the step's result is the same (0 = all at once)";
  // A rule without a default (a config file's value may apply) still names the trainers' default.
  return flag(
    '--micro-batch <rows>',
    rule.default === undefined ? `${help}; default ${MICRO_BATCH.default}` : help,
    rule,
  );
}
