// Runs a sweep of the shapes benchmark: every run once per seed from the same base checkpoint, each in its own
// folder (<run>/seed-<s>/: checkpoint, metrics.jsonl, curves), then the report over seeds (report.ts).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type RunPoint, trainShapes } from '../../lib/jobs/shapes.js';
import { type RunSpec, runFolder, type Sweep, seedsOf } from './spec.js';

/** The trainings of one run of a sweep: the evaluated points and the training seconds of each seed. */
export interface RunResult {
  spec: RunSpec;
  /** The seeds trained (all of the run's, unless the sweep was aborted), and their points. */
  seeds: number[];
  points: RunPoint[][];
  /** Training seconds of each seed at its last point: the time it trained for. */
  trainedSeconds: number[];
  /** What the run trains (the same for every seed); undefined when no seed ran. */
  trained?: Trained;
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
}

/** Trains every run of the sweep for each of its seeds, in order; returns their points. */
export async function runSweep(o: SweepOptions): Promise<RunResult[]> {
  const log = o.log ?? (() => {});
  const { sweep } = o;
  await mkdir(o.out, { recursive: true });
  await writeFile(join(o.out, 'sweep.json'), `${JSON.stringify(sweep, null, 2)}\n`);
  const results: RunResult[] = [];
  for (const spec of sweep.runs) {
    const result: RunResult = { spec, seeds: [], points: [], trainedSeconds: [] };
    for (const seed of seedsOf(spec, sweep)) {
      if (o.signal?.aborted) break;
      log(`\n== ${spec.name}, seed ${seed}`);
      const epochs = spec.epochs ?? sweep.epochs;
      const { points, net } = await trainShapes({
        method: spec.method,
        base: o.base,
        minutes: spec.minutes ?? sweep.minutes,
        ...(epochs === undefined ? {} : { epochs }),
        evalEvery: sweep.evalEvery,
        evalSamplesPerPrompt: sweep.evalSamples,
        out: join(o.out, runFolder(spec.name), `seed-${seed}`),
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
      result.seeds.push(seed);
      result.points.push(points);
      result.trainedSeconds.push(points.at(-1)?.seconds ?? 0);
    }
    results.push(result);
  }
  return results;
}
