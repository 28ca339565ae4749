// What the online trainers' device tests run on each placement onDevices gives them (test/helpers.ts): a few epochs,
// reduced to the numbers compared between the CPU and the GPU, and a resume onto the device.
import { expect } from 'vitest';
import type { EpochStats, ParamSetName, RunOptions, VelocityNet } from '../lib/index.js';
import { type Outcome, type Placement, trainedSet } from './helpers.js';

/** What these checks need of a trainer (DiffusionNFT, FlowGRPO and the later methods all have it). */
export interface Trainer<S extends EpochStats> {
  readonly net: VelocityNet;
  run(options: RunOptions<S>): Promise<S[]>;
}

/** The statistics of an epoch that are numbers or flags (compared as 0 and 1), by name. */
type NumericStat<S> = { [K in keyof S]: S[K] extends number | boolean ? K : never }[keyof S] & string;

/**
 * Runs `epochs` epochs of `trainer` and disposes of its network. The outcome: each epoch's reward, loss and gradient
 * norm and each statistic named in `stats`, then each parameter set of `sets` as trained (trainedSet).
 */
export async function epochsOutcome<S extends EpochStats>(
  trainer: Trainer<S>,
  epochs: number,
  stats: readonly NumericStat<S>[] = [],
  sets: readonly ParamSetName[] = ['theta'],
): Promise<Outcome> {
  const history = await trainer.run({ epochs });
  const outcome: Outcome = {};
  for (const name of ['reward', 'loss', 'gradNorm', ...stats] as const) {
    outcome[name] = history.map((s) => Number(s[name as keyof S]));
  }
  for (const set of sets) outcome[set] = trainedSet(trainer.net, set);
  trainer.net.dispose();
  return outcome;
}

/**
 * Resume onto the placement `at`: two epochs of `make(at)` straight, and one saved to `path` then resumed onto `at`
 * (`resume`) for the second. The resumed network lives on `at` and ends at the straight run's θ, bit for bit.
 * Returns that θ for onDevices to compare with the CPU's.
 */
export async function resumesOnDevice<S extends EpochStats>(
  at: Placement,
  path: string,
  make: (at: Placement) => Trainer<S>,
  resume: (path: string, at: Placement) => Promise<Trainer<S>>,
): Promise<{ theta: Float32Array }> {
  const straight = make(at);
  await straight.run({ epochs: 2 });
  const first = make(at);
  await first.run({ epochs: 1, checkpoint: { path } });
  first.net.dispose();
  const resumed = await resume(path, at);
  expect([resumed.net.device, resumed.net.precision]).toEqual([at.device, at.precision]);
  await resumed.run({ epochs: 1 });
  const theta = resumed.net.getParameters();
  expect(Buffer.from(theta.buffer).equals(Buffer.from(straight.net.getParameters().buffer))).toBe(true);
  straight.net.dispose();
  resumed.net.dispose();
  return { theta };
}
