// The records of a run's metrics stream (metrics.jsonl, one JSON object a line; docs/dashboard.md) and how a run
// folder's records are read, the older metrics.json of evaluated points included.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiffusionNftError } from '../core/errors.js';

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
  /** Flow-GRPO-Fast, MixGRPO: the first step of the epoch's SDE window (Fast: the mean over its chunks). */
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

/** Any record of the stream, told apart by `kind`. */
export type MetricsRecord = StartRecord | EpochRecord | EvaluationRecord;

/** A metrics.jsonl line that is not a record. */
export class MetricsFormatError extends DiffusionNftError {
  constructor(message: string) {
    super(message, 'DNFT_METRICS');
  }
}

const KINDS = new Set(['start', 'epoch', 'evaluation']);

/**
 * The records of a metrics.jsonl text. A last line without its newline is one still being written and is left out;
 * any other line that is not a record throws MetricsFormatError naming it.
 */
export function parseRecords(text: string, what = METRICS_FILE): MetricsRecord[] {
  const lines = text.split('\n');
  lines.pop(); // '' after the last newline, or a line still being written
  return lines.map((line, i) => {
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new MetricsFormatError(`${what} line ${i + 1}: ${(error as Error).message}`);
    }
    const r = record as Partial<MetricsRecord> | null;
    if (r === null || typeof r !== 'object' || !KINDS.has(r.kind as string) || !Number.isInteger(r.epoch)) {
      throw new MetricsFormatError(`${what} line ${i + 1}: not a metrics record (kind, version, epoch)`);
    }
    return r as MetricsRecord;
  });
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

/**
 * The records of a run folder: its metrics.jsonl, else its metrics.json converted; an empty list when it has
 * neither (a run that has not written yet).
 */
export async function readRunRecords(dir: string): Promise<MetricsRecord[]> {
  const path = join(dir, METRICS_FILE);
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text !== undefined) return parseRecords(text, path);
  const legacy = join(dir, LEGACY_METRICS_FILE);
  const points = await readFile(legacy, 'utf8').catch(() => undefined);
  if (points === undefined) return [];
  try {
    return legacyRecords(JSON.parse(points), legacy);
  } catch (error) {
    if (error instanceof MetricsFormatError) throw error;
    throw new MetricsFormatError(`${legacy}: ${(error as Error).message}`);
  }
}
