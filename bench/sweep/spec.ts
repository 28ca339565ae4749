// The sweep file of the shapes benchmarks (B4, the ablations, the plateau probes): its settings and runs, checked
// before anything trains, and each run expanded into one training per seed.
import { checkGuidance, type Guidance, guidanceLabel } from '../../lib/jobs/shapes/guidance.js';
import { type Method, SHAPES_TRAINER_DEFAULTS } from '../../lib/jobs/shapes/train.js';
import { rejectUnknown } from '../../lib/options/schema.js';
import { timeGrid } from '../../lib/sampling/solvers.js';
import { type Category, REWARD_KINDS, type RewardKind } from '../../lib/tasks/shapes/index.js';
import { leadingTransitions } from '../../lib/training/likelihood.js';

/** One run of a sweep: a method with its trainer options, trained once per seed. */
export interface RunSpec {
  name: string;
  method: Method;
  trainer: Record<string, unknown>;
  /** The reward trained on (default 'partial') and per-category weights of it (default 1). */
  reward?: RewardKind;
  categoryWeights?: Partial<Record<Category, number>>;
  /**
   * Guided evaluations beside the CFG-free one (default: the run's training guidance, if it trains with any), so a
   * FlowGRPO model trained with guidance is also scored as it is meant to be used.
   */
  evalGuidance?: Guidance[];
  /** Seeds of this run (default: the sweep's). */
  seeds?: number[];
  /** Training minutes or epochs of this run (default: the sweep's). */
  minutes?: number;
  epochs?: number;
}

/** A sweep: settings shared by its runs, and the runs. Each setting has a command-line flag that overrides it. */
export interface Sweep {
  minutes: number;
  epochs?: number;
  evalEvery: number;
  evalSamples: number;
  /** Trainer seeds: each drives a run's prompt draws, rollout noise and training noise (evaluation noise is fixed). */
  seeds: number[];
  thresholds: number[];
  rewardThresholds: number[];
  /** Pairs [a, b] of run names: the speed-up of a over b (b's time to a threshold over a's). Default: each
   * DiffusionNFT run against each FlowGRPO run. */
  compare: [string, string][];
  runs: RunSpec[];
}

/** The defaults of a sweep's settings: the B4 setting of docs/science.md. */
export const SWEEP_DEFAULTS = {
  minutes: 10,
  evalEvery: 5,
  evalSamples: 8,
  seeds: [1],
  // The shipped base scores 0.20 strict and 0.38 reward on the test prompts (0.27 strict with guidance): GenEval's
  // 0.5/0.7/0.9 are out of reach of a CPU budget, so the defaults sit where a run of minutes can get.
  thresholds: [0.25, 0.3, 0.35],
  rewardThresholds: [0.42, 0.46, 0.5],
} as const;

const RUN_FIELDS = [
  'name',
  'method',
  'trainer',
  'reward',
  'categoryWeights',
  'evalGuidance',
  'seeds',
  'minutes',
  'epochs',
];
const SWEEP_FIELDS = [
  'minutes',
  'epochs',
  'evalEvery',
  'evalSamples',
  'seeds',
  'thresholds',
  'rewardThresholds',
  'compare',
  'runs',
  'description',
];

function positive(what: string, v: unknown, integer: boolean): number {
  if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isInteger(v)) || !Number.isFinite(v))
    throw new RangeError(`${what} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`);
  return v;
}

function numbers(what: string, v: unknown, integer: boolean): number[] {
  if (!Array.isArray(v) || v.length === 0) throw new TypeError(`${what} must be a non-empty list of numbers`);
  const list = v.map((x, i) => (integer && x === 0 ? 0 : positive(`${what}[${i}]`, x, integer)));
  if (new Set(list).size !== list.length) throw new RangeError(`${what} lists a value twice`);
  return list;
}

/** The methods whose rollouts and training take cfgScale and cfgInterval. */
const LIKELIHOOD_METHODS: readonly Method[] = ['flowgrpo', 'grpo-fast', 'mixgrpo', 'grpo-guard'];

/**
 * The training guidance of a run (a likelihood method's cfgScale and cfgInterval), or undefined when it trains
 * without.
 */
export function trainingGuidance(spec: RunSpec): Guidance | undefined {
  if (!LIKELIHOOD_METHODS.includes(spec.method)) return undefined;
  const scale = (spec.trainer.cfgScale as number | undefined) ?? 1;
  if (scale === 1) return undefined;
  const interval = spec.trainer.cfgInterval as [number, number] | undefined;
  return interval === undefined ? { cfgScale: scale } : { cfgScale: scale, cfgInterval: interval };
}

/** The label of the evaluation a run is judged by: its training guidance's, else 'no CFG'. */
export function asUsedLabel(spec: RunSpec): string {
  const g = trainingGuidance(spec);
  return g === undefined ? 'no CFG' : guidanceLabel(g);
}

function checkRun(value: unknown, i: number): RunSpec {
  const what = `runs[${i}]`;
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TypeError(`${what} must be an object`);
  rejectUnknown(what, value, RUN_FIELDS);
  const r = value as RunSpec;
  if (typeof r.name !== 'string' || r.name === '') throw new TypeError(`${what}.name must be a non-empty string`);
  const methods = Object.keys(SHAPES_TRAINER_DEFAULTS);
  if (typeof r.method !== 'string' || !methods.includes(r.method))
    throw new RangeError(
      `${what}.method must be ${methods.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(r.method)}`,
    );
  const trainer = r.trainer ?? {};
  if (trainer === null || typeof trainer !== 'object' || Array.isArray(trainer))
    throw new TypeError(`${what}.trainer must be an object of trainer options`);
  if (r.reward !== undefined && !REWARD_KINDS.includes(r.reward))
    throw new RangeError(`${what}.reward must be ${REWARD_KINDS.map((k) => `'${k}'`).join(' or ')}`);
  const spec: RunSpec = { ...r, trainer };
  if (r.seeds !== undefined) {
    spec.seeds = numbers(`${what}.seeds`, r.seeds, true);
    if ('seed' in trainer) throw new RangeError(`${what}: give seeds or trainer.seed, not both`);
  }
  if (r.minutes !== undefined) positive(`${what}.minutes`, r.minutes, false);
  if (r.epochs !== undefined) positive(`${what}.epochs`, r.epochs, true);
  const given = r.evalGuidance ?? (trainingGuidance(spec) === undefined ? [] : [trainingGuidance(spec) as Guidance]);
  if (!Array.isArray(given)) throw new TypeError(`${what}.evalGuidance must be a list of { cfgScale, cfgInterval? }`);
  spec.evalGuidance = given.map((g, k) => {
    const checked = checkGuidance(g, `${what}.evalGuidance[${k}]`);
    if (checked.cfgScale === 1)
      throw new RangeError(`${what}.evalGuidance[${k}] is CFG-free, which every evaluation runs`);
    return checked;
  });
  const labels = spec.evalGuidance.map(guidanceLabel);
  if (new Set(labels).size !== labels.length) throw new RangeError(`${what}.evalGuidance lists a guidance twice`);
  const used = asUsedLabel(spec);
  if (used !== 'no CFG' && !labels.includes(used))
    throw new RangeError(`${what}.evalGuidance must include the run's training guidance (${used})`);
  return spec;
}

/**
 * A sweep from a file's JSON: an object of settings with `runs`, or (the older form) a bare list of runs. Command-line
 * settings (`overrides`, those given) win over the file's, which win over SWEEP_DEFAULTS.
 */
export function parseSweep(json: unknown, overrides: Partial<Omit<Sweep, 'runs' | 'compare'>> = {}): Sweep {
  const file = (Array.isArray(json) ? { runs: json } : json) as Record<string, unknown>;
  if (file === null || typeof file !== 'object') throw new TypeError('a sweep must be a list of runs or { runs, ... }');
  rejectUnknown('sweep', file, SWEEP_FIELDS);
  if (!Array.isArray(file.runs) || file.runs.length === 0) throw new TypeError('sweep.runs must be a non-empty list');
  const runs = file.runs.map(checkRun);
  const names = runs.map((r) => r.name);
  if (new Set(names).size !== names.length) throw new RangeError('sweep.runs: two runs have the same name');
  const pick = <K extends keyof typeof overrides>(key: K) => overrides[key] ?? (file[key] as (typeof overrides)[K]);
  const epochs = pick('epochs');
  const sweep: Sweep = {
    minutes: positive('minutes', pick('minutes') ?? SWEEP_DEFAULTS.minutes, false),
    ...(epochs === undefined ? {} : { epochs: positive('epochs', epochs, true) }),
    evalEvery: positive('evalEvery', pick('evalEvery') ?? SWEEP_DEFAULTS.evalEvery, true),
    evalSamples: positive('evalSamples', pick('evalSamples') ?? SWEEP_DEFAULTS.evalSamples, true),
    seeds: numbers('seeds', pick('seeds') ?? SWEEP_DEFAULTS.seeds, true),
    thresholds: numbers('thresholds', pick('thresholds') ?? SWEEP_DEFAULTS.thresholds, false),
    rewardThresholds: numbers('rewardThresholds', pick('rewardThresholds') ?? SWEEP_DEFAULTS.rewardThresholds, false),
    compare: [],
    runs,
  };
  if (runs.some((r) => r.seeds === undefined && 'seed' in r.trainer))
    throw new RangeError('a run sets trainer.seed: give its seeds in `seeds` instead');
  const compare =
    file.compare ??
    runs.flatMap((a) =>
      a.method === 'nft' ? runs.filter((b) => b.method === 'flowgrpo').map((b) => [a.name, b.name]) : [],
    );
  if (!Array.isArray(compare)) throw new TypeError('sweep.compare must be a list of [run, run] name pairs');
  sweep.compare = compare.map((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || pair.some((n) => !names.includes(n)) || pair[0] === pair[1])
      throw new RangeError(
        `sweep.compare[${i}] must be two different run names of the sweep, got ${JSON.stringify(pair)}`,
      );
    return pair as [string, string];
  });
  return sweep;
}

/** A run's seeds. */
export function seedsOf(spec: RunSpec, sweep: Sweep): number[] {
  return spec.seeds ?? sweep.seeds;
}

/** The Greek letters of run names, spelt out for folder names. */
const GREEK_NAMES: Record<string, string> = { α: 'alpha', β: 'beta', ε: 'eps', η: 'eta', τ: 'tau' };
const GREEK_LETTER = new RegExp(`[${Object.keys(GREEK_NAMES).join('')}]`, 'g');

/**
 * A run's folder name: 'DiffusionNFT β=1 lr 1e-4' → 'DiffusionNFT-beta=1-lr-1e-4', 'r32 α64' → 'r32-alpha64',
 * 'MixGRPO ε=1e-3 τ=128' → 'MixGRPO-eps=1e-3-tau=128'.
 */
export function runFolder(name: string): string {
  return name
    .replace(GREEK_LETTER, (letter) => GREEK_NAMES[letter] ?? letter)
    .replace(/[^A-Za-z0-9.=]+/g, '-')
    .replace(/^-|-$/g, '');
}

/**
 * Network evaluations of one sample per epoch, from the trainer settings (the shapes defaults filled in): rollouts
 * (two where guided) plus the training forwards (v_θ with its backward, v_old, v_ref).
 */
export function forwardsPerEpoch(spec: RunSpec): number {
  const t = { ...SHAPES_TRAINER_DEFAULTS[spec.method], ...spec.trainer } as Record<string, unknown>;
  const samples = (t.groups as number) * (t.groupSize as number);
  const steps = (t.steps as number | undefined) ?? 10;
  const clean = samples * steps * (t.solver === 'heun' ? 2 : 1);
  if (spec.method === 'awm') {
    // θ with its backward, plus the base and the EMA anchor while their weights are not 0 (AWM's defaults).
    const times = (t.timesPerSample as number | undefined) ?? 6;
    const sets =
      (((t.klCoef as number | undefined) ?? 1e-3) > 0 ? 1 : 0) + (((t.emaCoef as number | undefined) ?? 1) > 0 ? 1 : 0);
    return clean + samples * times * (1 + sets);
  }
  if (spec.method === 'dgpo') {
    // θ, the base and θ_old without gradients, then θ with its backward (one pass when a micro-batch holds the step).
    const times = (t.timesPerEpoch as number | undefined) ?? 4;
    const twoPasses = ((t.microBatch as number | undefined) ?? 0) > 0;
    return clean + samples * times * (3 + (twoPasses ? 2 : 0));
  }
  if (spec.method === 'nft') {
    const perStep = t.solver === 'heun' ? 2 : 1;
    const times = Math.max(1, Math.floor(steps * ((t.timeFraction as number | undefined) ?? 0.99)));
    const withRef = ((t.klCoef as number | undefined) ?? 0) > 0 ? 1 : 0;
    return samples * steps * perStep + samples * times * (2 + withRef);
  }
  const grid = timeGrid(steps, { schedule: (t.gridSchedule as 'uniform' | 'sd3' | undefined) ?? 'uniform' });
  const g = trainingGuidance(spec);
  const [lo, hi] = g?.cfgInterval ?? [0, 1];
  const cost = (n: number) => (g !== undefined && (grid[n] as number) >= lo && (grid[n] as number) <= hi ? 2 : 1);
  // The transitions trained from their first step: the window's for Fast and MixGRPO (at its first position, whose
  // guidance cost stands for the others'; MixGRPO-Flash's shorter tail is not counted), else the leading ones.
  const window = { 'grpo-fast': 3, mixgrpo: 4 } as Record<string, number>;
  const trained =
    spec.method in window
      ? Math.min((t.sdeWindowSize as number | undefined) ?? (window[spec.method] as number), steps - 2)
      : leadingTransitions(steps, (t.trainFraction as number | undefined) ?? 0.99)[1];
  const withRef = ((t.klCoef as number | undefined) ?? 0) > 0 ? 1 : 0;
  let rollout = 0;
  for (let n = 0; n < steps; n++) rollout += cost(n);
  let train = 0;
  for (let n = 0; n < trained; n++) train += cost(n) * (1 + withRef);
  return samples * (rollout + train);
}
