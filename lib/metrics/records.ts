// The records of a run's metrics stream (metrics.jsonl, one JSON object a line; docs/dashboard.md) and how a run
// folder's records are read, the older metrics.json of evaluated points included.
import { join } from 'node:path';
import { DiffusionNftError, excerpt } from '../core/errors.js';
import { FileReadError, readGuardedText } from '../core/read-file.js';
import { parseBoundedJson } from '../core/safetensors.js';

/** The schema version of the records written now. Records converted from a metrics.json carry version 0. */
export const METRICS_VERSION = 1;

/** The stream's file in a run folder, and the older file of evaluated points it replaces. */
export const METRICS_FILE = 'metrics.jsonl';
export const LEGACY_METRICS_FILE = 'metrics.json';

interface RecordBase {
  /** The schema version the record was written with (METRICS_VERSION). */
  version: number;
  /** The epochs completed when the record was made. */
  epoch: number;
  /** When it was written (ISO 8601). */
  time?: string;
  /** Training seconds since the run's start: the sum of the epochs' seconds.total, evaluations excluded. */
  elapsed: number;
}

/** Written each time a run starts or resumes. */
export interface StartRecord extends RecordBase {
  /** Which record this is. */
  kind: 'start';
  /** The trainer's class name, e.g. 'DiffusionNFT' or 'FlowGRPO'. */
  trainer: string;
}

/** One epoch: every statistic the trainer reported (EpochStats and the method's own), plus its throughput. */
export interface EpochRecord extends RecordBase {
  /** Which record this is. */
  kind: 'epoch';
  /** Optimiser steps taken so far in this phase. */
  step?: number;
  /** Mean of the rollouts' total reward (null in a converted metrics.json point without it). */
  reward: number | null;
  /** Standard deviation of the rollouts' total reward. */
  rewardStd?: number;
  /** Mean of each named reward. */
  rewards?: Record<string, number>;
  /** Rollouts of the epoch (M·K). */
  samples?: number;
  /** Rollouts per second of the epoch's total time. */
  samplesPerSecond?: number;
  /** Mean loss of the epoch's optimiser steps. */
  loss?: number;
  /** Mean gradient norm (before clipping) of the epoch's optimiser steps. */
  gradNorm?: number;
  /** Learning rate of the epoch's last optimiser step. */
  lr?: number;
  /** Where the epoch's time went. */
  seconds?: EpochSeconds;
  /** DiffusionNFT: counts of r in 10 bins of [0, 1]. */
  rHistogram?: number[];
  /** DiffusionNFT: η of the soft update of θ_old. */
  eta?: number;
  /** The likelihood methods (FlowGRPO …), DGPO: fraction of clipped ratios. */
  clipFraction?: number;
  /** The likelihood methods: the approximate KL divergence to the rollout policy, ½·mean (log ρ)². */
  approxKl?: number;
  /** The likelihood methods: mean importance ratio (GRPO-Guard's normalised one). */
  ratioMean?: number;
  /** The likelihood methods: samples trained on after the zero-advantage filter. */
  trainedSamples?: number;
  /** Flow-GRPO-Fast, MixGRPO: the first step of the epoch's SDE window (Fast: the mean over its prompt groups). */
  windowStart?: number;
  /** MixGRPO: steps of the epoch's rollouts (fewer than N with Flash's compressed tail). */
  rolloutSteps?: number;
  /** AWM: counts of the scaled advantages in 10 bins of [−advantageMax, advantageMax]. */
  advantageHistogram?: number[];
  /** AWM: mean flow-matching error of the trained rows. */
  fm?: number;
  /** AWM: mean log q of the trained rows. */
  logQ?: number;
  /** AWM: mean (v_θ − v_ref)², the KL to the base. */
  kl?: number;
  /** AWM: mean (v_θ − v_ema)², the KL to the EMA anchor. */
  emaKl?: number;
  /** AWM: the anchor's decay after the epoch. */
  emaDecay?: number;
  /** DGPO: mean group weight σ(S_g). */
  weightMean?: number;
  /** DGPO: the epoch's training times. */
  times?: number[];
  /** DGPO: whether θ_old rolled out the epoch. */
  emaRollout?: boolean;
}

/** Seconds an epoch spent sampling (rewards overlap with it), scoring, training, and in total. */
export interface EpochSeconds {
  /** Rolling out the samples. */
  sample: number;
  /** Scoring them, where it did not overlap with sampling. */
  reward: number;
  /** The optimiser steps. */
  train: number;
  /** The whole epoch. */
  total: number;
}

/** One evaluation of the weights after `epoch` epochs. */
export interface EvaluationRecord extends RecordBase {
  /** Which record this is. */
  kind: 'evaluation';
  /** Mean total reward of the evaluation samples. */
  reward: number;
  /** Mean of each named reward. */
  rewards?: Record<string, number>;
  /** How many samples were scored. */
  samples?: number;
  /** A strict (all-or-nothing) score, where the task has one. */
  strict?: number;
  /** The strict score of each prompt category, where the task has them. */
  categories?: Record<string, number>;
  /** Standard errors of `strict` and `reward`, where the task reports them. */
  standardError?: {
    /** Of the strict score, when the task has one. */
    strict?: number;
    /** Of the mean reward. */
    reward: number;
  };
  /** The same evaluation with classifier-free guidance, by its label ("CFG 5 at t ≤ 0.6"), where a run asks for it. */
  guided?: Record<
    string,
    {
      /** Mean total reward. */
      reward: number;
      /** The strict score. */
      strict: number;
      /** The strict score of each prompt category. */
      categories: Record<string, number>;
    }
  >;
  /** The sample grid written with it. */
  grid?: {
    /** The PNG's path in the run folder. */
    image: string;
    /** The prompt of each row. */
    prompts: string[];
  };
}

/** The phases of a job that a progress record names; 'finished' is the last record of a run that ended. */
/** The phases a job reports in its progress records, in the order of an epoch. */
export const PHASES = ['sampling', 'evaluating', 'training', 'finished'] as const;
/** One of {@link PHASES}. */
export type Phase = (typeof PHASES)[number];

/**
 * Where the job is: written when a phase starts and after each epoch, so that a reader (the dashboard) shows the
 * phase, the progress toward the run's target and the time left without guessing them.
 */
export interface ProgressRecord extends RecordBase {
  /** Which record this is. */
  kind: 'progress';
  /**
   * What the job is doing from now on: sampling an epoch's rollouts, training on them (the optimiser steps),
   * evaluating (scores and a sample grid), or finished.
   */
  phase: Phase;
  /**
   * The run's target and how much of it is done: epochs since the run's start, or seconds of training in this call
   * (a time budget). Absent before the target is known.
   */
  target?: {
    /** What the target counts. */
    unit: 'epochs' | 'seconds';
    /** How much of it is done. */
    done: number;
    /** The whole target. */
    total: number;
  };
  /** Estimated wall-clock seconds left to the target when the record was written, evaluations included. */
  secondsLeft?: number;
}

/** A score the run is measured against (the base model's, without and with guidance), once at the run's start. */
export interface ReferenceRecord extends RecordBase {
  /** Which record this is. */
  kind: 'reference';
  /** What was scored, e.g. "base, no CFG". */
  label: string;
  /** Mean total reward of its evaluation samples. */
  reward: number;
  /** The strict score, where the task has one. */
  strict?: number;
  /** How many samples were scored. */
  samples?: number;
  /** Standard errors of `strict` and `reward` (what another draw of the noise would change). */
  standardError?: {
    /** Of the strict score, when the task has one. */
    strict?: number;
    /** Of the mean reward. */
    reward: number;
  };
}

/** Any record of the stream, told apart by `kind`. */
export type MetricsRecord = StartRecord | EpochRecord | EvaluationRecord | ProgressRecord | ReferenceRecord;

/** A metrics.jsonl line that is not a record. */
export class MetricsFormatError extends DiffusionNftError {
  constructor(message: string) {
    super(message, 'DNFT_METRICS');
  }
}

const KINDS = new Set(['start', 'epoch', 'evaluation', 'progress', 'reference']);

/** What is wrong with a parsed line as a record (kind, epoch, elapsed), or undefined when it is one. */
function recordProblem(r: unknown): string | undefined {
  if (r === null || typeof r !== 'object' || Array.isArray(r)) return 'not a metrics record (a JSON object)';
  const { kind, epoch, elapsed } = r as Partial<MetricsRecord>;
  if (!KINDS.has(kind as string)) return `not a metrics record (kind ${excerpt(JSON.stringify(kind) ?? 'missing')})`;
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0) return 'epoch is not an integer >= 0';
  if (typeof elapsed !== 'number' || !Number.isFinite(elapsed) || elapsed < 0) return 'elapsed is not a number >= 0';
  return undefined;
}

/** A line of metrics.jsonl that is not a record: its number (from 1), its text, and why. */
export interface RejectedLine {
  line: number;
  text: string;
  problem: string;
}

/** Each line of a metrics.jsonl text as a record or a rejected line; a last line without its newline is left out. */
function splitRecords(text: string): { records: MetricsRecord[]; rejected: RejectedLine[] } {
  const lines = text.split('\n');
  lines.pop(); // '' after the last newline, or a line still being written
  const records: MetricsRecord[] = [];
  const rejected: RejectedLine[] = [];
  for (const [i, line] of lines.entries()) {
    let record: unknown;
    let problem: string | undefined;
    try {
      record = parseBoundedJson(line);
      problem = recordProblem(record);
    } catch (error) {
      problem = (error as Error).message;
    }
    if (problem === undefined) records.push(record as MetricsRecord);
    else rejected.push({ line: i + 1, text: line, problem });
  }
  return { records, rejected };
}

/**
 * The records of a metrics.jsonl text. A last line without its newline is one still being written and is left out;
 * any other line that is not a record (kind, epoch, a numeric elapsed) throws MetricsFormatError naming it.
 */
export function parseRecords(text: string, what = METRICS_FILE): MetricsRecord[] {
  const { records, rejected } = splitRecords(text);
  const first = rejected[0];
  if (first !== undefined) throw new MetricsFormatError(`${what} line ${first.line}: ${first.problem}`);
  return records;
}

/** A point of the older metrics.json: an evaluation with the training reward of its epoch. */
interface LegacyPoint {
  epoch: number;
  seconds: number;
  reward: number | null;
  strict: number;
  testReward: number;
}

/** The records a metrics.json of evaluated points stands for (version 0: only the fields it had). */
export function legacyRecords(points: unknown, what = LEGACY_METRICS_FILE): MetricsRecord[] {
  if (!Array.isArray(points)) throw new MetricsFormatError(`${what}: not a list of points`);
  return (points as LegacyPoint[]).flatMap((p, i): MetricsRecord[] => {
    if (p === null || typeof p !== 'object' || !Number.isInteger(p.epoch) || typeof p.seconds !== 'number') {
      throw new MetricsFormatError(`${what}: point ${i} has no epoch and seconds`);
    }
    const base = { version: 0, epoch: p.epoch, elapsed: p.seconds };
    const evaluation: EvaluationRecord = { kind: 'evaluation', ...base, reward: p.testReward, strict: p.strict };
    const reward = typeof p.reward === 'number' ? p.reward : null;
    return reward === null ? [evaluation] : [{ kind: 'epoch', ...base, reward }, evaluation];
  });
}

/** The text of a run's metrics file (a missing file is undefined), read by the guarded reader. */
async function readMetricsText(path: string): Promise<string | undefined> {
  try {
    return await readGuardedText(path, 'metrics');
  } catch (error) {
    if (error instanceof FileReadError && error.reason === 'missing') return undefined;
    throw new MetricsFormatError((error as Error).message);
  }
}

/** The records of a metrics.json of points (legacyRecords), any problem a MetricsFormatError. */
function legacyText(text: string, path: string): MetricsRecord[] {
  try {
    return legacyRecords(parseBoundedJson(text), path);
  } catch (error) {
    if (error instanceof MetricsFormatError) throw error;
    throw new MetricsFormatError(`${path}: ${(error as Error).message}`);
  }
}

/**
 * The records of a run folder: its metrics.jsonl, else its metrics.json converted; an empty list when it has
 * neither (a run that has not written yet). A file that is not a regular file, is over READ_LIMITS.metrics or holds
 * a line that is not a record throws MetricsFormatError.
 */
export async function readRunRecords(dir: string): Promise<MetricsRecord[]> {
  const path = join(dir, METRICS_FILE);
  const text = await readMetricsText(path);
  if (text !== undefined) return parseRecords(text, path);
  const legacy = join(dir, LEGACY_METRICS_FILE);
  const points = await readMetricsText(legacy);
  return points === undefined ? [] : legacyText(points, legacy);
}

/**
 * What can be kept of a run folder's records, for a run that continues it: the records of its metrics.jsonl line
 * by line, with the lines that are not records in `rejected` (`path` names the file). A metrics.json is converted
 * whole or not at all. A file that cannot be read throws MetricsFormatError, as readRunRecords.
 */
export async function salvageRunRecords(
  dir: string,
): Promise<{ records: MetricsRecord[]; rejected: RejectedLine[]; path: string }> {
  const path = join(dir, METRICS_FILE);
  const text = await readMetricsText(path);
  if (text !== undefined) return { ...splitRecords(text), path };
  const legacy = join(dir, LEGACY_METRICS_FILE);
  const points = await readMetricsText(legacy);
  if (points === undefined) return { records: [], rejected: [], path };
  try {
    return { records: legacyText(points, legacy), rejected: [], path: legacy };
  } catch (error) {
    return { records: [], rejected: [{ line: 1, text: points, problem: (error as Error).message }], path: legacy };
  }
}
