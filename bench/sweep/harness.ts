// Runs a sweep of the shapes benchmark: every run once per seed from the same base checkpoint, each in its own
// folder (<run>/seed-<s>/: checkpoint, metrics.jsonl, curves), then the report over seeds (report.ts). A seed that
// trained to its end leaves done.json; a later sweep into the same folder reuses it when it would train the same
// thing, so a sweep of hours can be stopped, continued, and given more seeds.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson } from '../../lib/core/canonical-json.js';
import { writeFileAtomic } from '../../lib/core/files.js';
import { backendInfo } from '../../lib/index.js';
import { type RunPoint, runPoints } from '../../lib/jobs/shapes/curves.js';
import { trainShapes } from '../../lib/jobs/shapes/train.js';
import { type EpochSeconds, type MetricsRecord, readRunRecords } from '../../lib/metrics/records.js';
import { type RunSpec, runFolder, type Sweep, seedsOf } from './spec.js';

/** The trainings of one run of a sweep: the evaluated points and the training seconds of each seed. */
export interface RunResult {
  spec: RunSpec;
  /** The seeds trained (all of the run's, unless the sweep was aborted), and their points. */
  seeds: number[];
  points: RunPoint[][];
  /** Training seconds of each seed at its last point: the time it trained for. */
  trainedSeconds: number[];
  /** The native CPU threads each seed trained with (null: its record predates this field). */
  threads: (number | null)[];
  /** Each seed's epochs and mean seconds per epoch by phase. */
  epochs: SeedEpochs[];
  /** What the run trains (the same for every seed); undefined when no seed ran. */
  trained?: Trained;
}

/** A seed's epochs trained and its mean seconds per epoch by phase, from its epoch records. */
export interface SeedEpochs {
  epochs: number;
  perEpoch: EpochSeconds;
  /**
   * The median seconds of the seed's evaluations: each the same work in every run and seed of a sweep (the test
   * samples, whatever the weights), so a yardstick of the speed of the host that timed the seed. Null where the
   * records cannot show it, or the run is also evaluated with guidance (more work per evaluation).
   */
  hostSeconds: number | null;
}

export function seedEpochs(records: readonly MetricsRecord[]): SeedEpochs {
  const seconds = records.flatMap((r) => (r.kind === 'epoch' && r.seconds ? [r.seconds] : []));
  const mean = (phase: keyof EpochSeconds) =>
    seconds.reduce((sum, x) => sum + x[phase], 0) / Math.max(seconds.length, 1);
  return {
    epochs: seconds.length,
    perEpoch: { sample: mean('sample'), reward: mean('reward'), train: mean('train'), total: mean('total') },
    hostSeconds: medianEvaluationSeconds(records),
  };
}

/**
 * The median over the seed's evaluations of the time from the start of one (its 'evaluating' progress record) to its
 * record; null when none is timed. The median, because one evaluation can meet a passing load.
 */
function medianEvaluationSeconds(records: readonly MetricsRecord[]): number | null {
  const seconds: number[] = [];
  let start: { epoch: number; ms: number } | undefined;
  for (const r of records) {
    if (r.kind === 'progress' && r.phase === 'evaluating') start = { epoch: r.epoch, ms: Date.parse(r.time ?? '') };
    else if (r.kind === 'evaluation' && start?.epoch === r.epoch) {
      const ms = Date.parse(r.time ?? '') - start.ms;
      if (Number.isFinite(ms) && ms >= 0) seconds.push(ms / 1000);
      start = undefined;
    }
  }
  seconds.sort((a, b) => a - b);
  return seconds.length === 0 ? null : (seconds[Math.floor(seconds.length / 2)] as number);
}

/** What a run trains: every weight or a LoRA adapter, its float count, and the floats the native model held. */
export interface Trained {
  params: number;
  lora: { rank: number; alpha: number; targets: readonly string[] } | null;
  parameterSets: number;
  trainingState: number;
}

/** 'LoRA r32 α64 on attn.qkv, attn.proj: 147,456' or 'every weight: 2,843,340'. */
export function trainedLabel(t: Trained): string {
  const what = t.lora ? `LoRA r${t.lora.rank} α${t.lora.alpha} on ${t.lora.targets.join(', ')}` : 'every weight';
  return `${what}: ${t.params.toLocaleString('en-US')}`;
}

/** Options of runSweep. */
export interface SweepOptions {
  sweep: Sweep;
  /** The base checkpoint every run starts from. */
  base: string;
  /** The results folder. */
  out: string;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Train nothing: report the seeds the folder holds finished, and leave the others out. */
  reportOnly?: boolean;
}

/** The file a seed's folder holds once the seed has trained to its end. */
export const DONE_FILE = 'done.json';

/**
 * What a finished seed recorded: what decided its training, what it trained, and the native CPU threads it trained
 * with (a condition of its seconds, not of what it trains: a seed is reused whatever the threads).
 */
interface SeedDone {
  training: string;
  trained: Trained;
  threads?: number;
}

/**
 * Everything that decides a seed's training and evaluations, as canonical JSON: the base's bytes, the method, its
 * options, the reward, the evaluation settings, the budget and the seed (not the run's name or the other seeds).
 */
function trainingOf(spec: RunSpec, sweep: Sweep, seed: number, baseSha256: string): string {
  return canonicalJson({
    baseSha256,
    method: spec.method,
    trainer: spec.trainer,
    reward: spec.reward ?? 'partial',
    categoryWeights: spec.categoryWeights ?? {},
    evalGuidance: spec.evalGuidance ?? [],
    minutes: spec.minutes ?? sweep.minutes,
    epochs: spec.epochs ?? sweep.epochs ?? null,
    evalEvery: sweep.evalEvery,
    evalSamples: sweep.evalSamples,
    seed,
  });
}

/** The done.json of a seed's folder when it trained exactly `training`, else undefined (absent, other, unreadable). */
async function finishedSeed(folder: string, training: string): Promise<SeedDone | undefined> {
  const text = await readFile(join(folder, DONE_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const done = JSON.parse(text) as SeedDone;
    return done.training === training && typeof done.trained?.params === 'number' ? done : undefined;
  } catch {
    return undefined;
  }
}

/** Adds a seed's points to its run's result; the seed trained for the seconds of its last point. */
function keep(
  result: RunResult,
  seed: number,
  points: RunPoint[],
  threads: number | null,
  records: readonly MetricsRecord[],
): void {
  result.seeds.push(seed);
  const epochs = seedEpochs(records);
  result.epochs.push((result.spec.evalGuidance ?? []).length > 0 ? { ...epochs, hostSeconds: null } : epochs);
  result.points.push(points);
  result.trainedSeconds.push(points.at(-1)?.seconds ?? 0);
  result.threads.push(threads);
}

/**
 * Trains every run of the sweep for each of its seeds, in order, reusing each seed the folder already holds
 * finished with the same training; returns their points.
 */
export async function runSweep(o: SweepOptions): Promise<RunResult[]> {
  const log = o.log ?? (() => {});
  const { sweep } = o;
  const baseSha256 = createHash('sha256')
    .update(await readFile(o.base))
    .digest('hex');
  await mkdir(o.out, { recursive: true });
  await writeFile(join(o.out, 'sweep.json'), `${JSON.stringify(sweep, null, 2)}\n`);
  const results: RunResult[] = [];
  for (const spec of sweep.runs) {
    const result: RunResult = { spec, seeds: [], points: [], trainedSeconds: [], threads: [], epochs: [] };
    for (const seed of seedsOf(spec, sweep)) {
      if (o.signal?.aborted) break;
      const folder = join(o.out, runFolder(spec.name), `seed-${seed}`);
      const training = trainingOf(spec, sweep, seed, baseSha256);
      const done = await finishedSeed(folder, training);
      if (done) {
        const records = await readRunRecords(folder);
        log(`\n== ${spec.name}, seed ${seed}: finished earlier (${join(folder, DONE_FILE)}), reused`);
        result.trained = done.trained;
        keep(result, seed, runPoints(records), done.threads ?? null, records);
        continue;
      }
      if (o.reportOnly) {
        log(`\n== ${spec.name}, seed ${seed}: not finished, left out of the report`);
        continue;
      }
      log(`\n== ${spec.name}, seed ${seed}`);
      const { threads } = backendInfo();
      const epochs = spec.epochs ?? sweep.epochs;
      const { points, net } = await trainShapes({
        method: spec.method,
        base: o.base,
        minutes: spec.minutes ?? sweep.minutes,
        ...(epochs === undefined ? {} : { epochs }),
        evalEvery: sweep.evalEvery,
        evalSamplesPerPrompt: sweep.evalSamples,
        out: folder,
        trainer: { ...spec.trainer, seed },
        reward: spec.reward,
        categoryWeights: spec.categoryWeights,
        evalGuidance: spec.evalGuidance,
        signal: o.signal,
        log,
      });
      const lora = net.lora;
      result.trained = {
        params: lora?.paramCount ?? net.paramCount,
        lora: lora && { rank: lora.rank, alpha: lora.alpha, targets: lora.targets },
        ...net.model.allocatedFloats(),
      };
      net.dispose();
      log(
        `trained ${trainedLabel(result.trained)}; floats held: parameter sets ${result.trained.parameterSets.toLocaleString('en-US')}, gradient and AdamW moments ${result.trained.trainingState.toLocaleString('en-US')}`,
      );
      // A seed stopped early is reported with what it ran, but trains again next time.
      if (!o.signal?.aborted) {
        const record: SeedDone = { training, trained: result.trained, threads };
        await writeFileAtomic(join(folder, DONE_FILE), `${JSON.stringify(record, null, 2)}\n`);
      }
      keep(result, seed, points, threads, await readRunRecords(folder));
    }
    // A run with no seed to report (not finished in a report-only pass, or never started before a stop) is left out.
    if (result.seeds.length > 0) results.push(result);
  }
  return results;
}
