// The toy2d job (`diffusion-nft toy2d`): pre-train the small network on the 2-D Gaussian mixture, then DiffusionNFT.
import { VelocityNet } from '../model/net.js';
import { type SolverName, sample } from '../sampling/solvers.js';
import * as toy2d from '../tasks/toy2d.js';
import { DiffusionNFT, type NftEpochStats } from '../training/diffusion-nft.js';
import { FlowMatchingTrainer } from '../training/flow-matching.js';

/** Options of the built-in demo. */
export interface DemoOptions {
  steps: number;
  batch: number;
  seed: number;
  sampleSteps: number;
  solver: SolverName;
  /** DiffusionNFT epochs after the pre-training (0 = none). */
  rlEpochs: number;
  log: (line: string) => void;
}

/** Result of the demo: the loss curve and the score of samples drawn at the start and the end. */
export interface DemoResult {
  losses: number[];
  before: toy2d.Toy2dScore;
  after: toy2d.Toy2dScore;
  rlEpochs: NftEpochStats[];
}

/**
 * Pre-trains the small network on the conditional 8-Gaussian mixture and scores its samples before and after, then
 * post-trains it with DiffusionNFT towards the red modes.
 */
export async function runToy2dDemo(o: DemoOptions): Promise<DemoResult> {
  const net = VelocityNet.create(toy2d.config, { seed: o.seed });
  const trainer = new FlowMatchingTrainer(net, {
    lr: 2e-3,
    warmupSteps: 50,
    schedule: 'cosine',
    totalSteps: o.steps,
    minLr: 1e-4,
    seed: o.seed,
    condDropout: 0.2,
  });
  const evalModes = Int32Array.from({ length: 512 }, (_, i) => i % toy2d.MODES);
  const cond = toy2d.conditions(evalModes);
  const draw = async () =>
    toy2d.score(
      (await sample(net, { cond, solver: o.solver, steps: o.sampleSteps, seed: o.seed })).x.storage,
      evalModes,
    );
  const fmt = (s: toy2d.Toy2dScore) =>
    `mode accuracy ${(100 * s.modeAccuracy).toFixed(1)}%, within 3σ ${(100 * s.within3Std).toFixed(1)}%, mean distance ${s.meanDistance.toFixed(3)}`;
  o.log(`toy2d: ${net.paramCount} parameters, ${o.steps} steps of batch ${o.batch}`);
  const before = await draw();
  o.log(`samples before training: ${fmt(before)}`);
  const losses: number[] = [];
  const started = performance.now();
  let window = 0;
  for (let i = 0; i < o.steps; i++) {
    const { x0, cond } = toy2d.batch(o.batch, o.seed, i);
    const stats = await trainer.step({ x0, cond });
    x0.dispose();
    cond.dispose();
    losses.push(stats.loss);
    window += stats.loss;
    const every = Math.max(1, Math.floor(o.steps / 10));
    if ((i + 1) % every === 0 || i + 1 === o.steps) {
      const seconds = (performance.now() - started) / 1000;
      o.log(
        `step ${String(i + 1).padStart(5)}  loss ${(window / ((i % every) + 1)).toFixed(4)}  lr ${stats.lr.toExponential(2)}  ${seconds.toFixed(1)} s`,
      );
      window = 0;
    }
  }
  const after = await draw();
  o.log(`samples after training (${o.sampleSteps}-step ${o.solver}): ${fmt(after)}`);

  // Phase 2: DiffusionNFT moves the unconditional samples onto the red modes.
  const rlEpochs: NftEpochStats[] = [];
  if (o.rlEpochs > 0) {
    o.log(`DiffusionNFT: reward 'red' (a sample on an even mode, within 3σ), prompt 'any mode', ${o.rlEpochs} epochs`);
    const nft = new DiffusionNFT(net, {
      prompts: [toy2d.prompts[0] as toy2d.Toy2dPrompt],
      rewards: { name: 'red', fn: toy2d.rewards.red },
      groups: 8,
      groupSize: 16,
      lr: 1e-3,
      seed: o.seed,
      solver: o.solver,
    });
    const every = Math.max(1, Math.floor(o.rlEpochs / 6));
    await nft.run({
      epochs: o.rlEpochs,
      onProgress: (s) => {
        rlEpochs.push(s);
        if (s.epoch % every === 0 || s.epoch === 1 || s.epoch === o.rlEpochs) {
          o.log(
            `epoch ${String(s.epoch).padStart(4)}  reward ${s.reward.toFixed(3)}  loss ${s.loss.toFixed(3)}  η ${s.eta.toFixed(3)}  ${(1000 * s.seconds.total).toFixed(0)} ms`,
          );
        }
      },
    });
    const evaluation = await nft.evaluate({ samplesPerPrompt: 512 });
    o.log(`after DiffusionNFT (40-step Euler, EMA weights): mean reward ${evaluation.reward.toFixed(3)}`);
  }
  net.dispose();
  return { losses, before, after, rlEpochs };
}
