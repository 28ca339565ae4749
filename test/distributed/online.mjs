// Run under mpirun (test/distributed.test.ts): epochs of online trainers, one after the other in this process (a
// comma-separated list of DiffusionNFT, FlowGRPO, FlowGRPO with CPS, AWM, DGPO, Flow-GRPO-Fast, MixGRPO, MixGRPO-Flash
// and GRPO-Guard by the names below), each one's stats and parameter sets to `${out}.${rank}.json` under its name.
// mode 'fail': rank 1's reward throws; 'die': rank 1 is killed while scoring; 'hang': rank 1 blocks while scoring, the
// collective timeout 2 s; 'mismatch': rank 1 has another seed; 'prompts': rank 1's last two prompts are swapped;
// 'rewards': rank 1's reward has another weight; 'save': each trainer saves `${checkpoint}.${name}` before its last
// epoch; 'resume': each trainer continues the checkpoint `${checkpoint}.${name}` of an earlier run;
// 'gpu-nccl', 'gpu-host': the model on the GPU (FP32), its gradient summed with that deviceCollectives.
import { writeFileSync } from 'node:fs';
import {
  AWM,
  DGPO,
  DiffusionNFT,
  FlowGRPO,
  FlowGRPOFast,
  GRPOGuard,
  MixGRPO,
  VelocityNet,
} from '../../dist/lib/index.js';

const [out, trainerNames, epochs = '3', mode = 'plain', checkpoint = ''] = process.argv.slice(2);
const env = process.env;
const launched = env.OMPI_COMM_WORLD_RANK ?? env.PMI_RANK ?? env.PMIX_RANK; // mpirun, mpiexec.mpich, srun
const rank = Number(launched ?? 0);
// What a rank throws also goes to `${out}.${rank}.error`: a launcher may stop a rank before its stderr is out.
process.once('uncaughtException', (error) => {
  writeFileSync(`${out}.${rank}.error`, `${error.name}: ${error.message}`);
  console.error(error);
  process.exitCode = 1;
});
const prompts = (mode === 'prompts' && rank === 1 ? [0, 1, 3, 2] : [0, 1, 2, 3]).map((t) => ({ tokens: [t] }));
const reward = (x, p) => {
  if (mode === 'fail' && rank === 1) throw new Error('the scorer is down');
  if (mode === 'die' && rank === 1) process.kill(process.pid, 'SIGKILL');
  if (mode === 'hang' && rank === 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
  const s = x.storage;
  return p.map((q, i) => -((s[i * 4] - q.tokens[0] / 3) ** 2) - s[i * 4 + 1] ** 2);
};
// Under a launcher, a collective that a rank never reaches ends the job with the library's message naming it, well
// before the test's own time limit (120 s; 240 s on the simulated GPU) would end it without one.
const gpu = mode.startsWith('gpu-');
const distributed = {
  timeout: mode === 'hang' ? 2 : gpu ? 180 : 60,
  ...(gpu ? { deviceCollectives: mode.slice(4) } : {}),
};
const options = {
  prompts,
  rewards: { name: 'target', fn: reward, weight: mode === 'rewards' && rank === 1 ? 0.5 : 1 },
  groups: 4,
  groupSize: 4,
  steps: 4,
  seed: mode === 'mismatch' && rank === 1 ? 6 : 5,
  lr: 3e-3,
  ...(launched ? { distributed } : {}),
};
const placement = gpu ? { device: 'cuda', precision: 'fp32' } : {};
const TRAINERS = {
  nft: DiffusionNFT,
  grpo: FlowGRPO,
  cps: FlowGRPO,
  awm: AWM,
  dgpo: DGPO,
  fast: FlowGRPOFast,
  mix: MixGRPO,
  flash: MixGRPO,
  guard: GRPOGuard,
};
const EXTRA = {
  nft: { optimizerSteps: 1 },
  grpo: { optimizerSteps: 2, klCoef: 0.04 },
  cps: { optimizerSteps: 2, klCoef: 0.04, sde: 'cps' },
  awm: { optimizerSteps: 2, timesPerSample: 2 },
  dgpo: { optimizerSteps: 2, timesPerEpoch: 2, truncSteps: 2, switchEmaRef: 1 },
  // Windows of 2 of the 4 steps starting at 0 or 1, drawn per group: the ranks' groups draw different ones.
  fast: { optimizerSteps: 2, sdeWindowSize: 2, sdeWindowRange: [0, 3] },
  // The window moves every epoch; Flash solves the steps after it on a compressed grid.
  mix: { optimizerSteps: 2, sdeWindowSize: 2, windowShiftEvery: 1 },
  flash: { optimizerSteps: 2, sdeWindowSize: 2, windowShiftEvery: 1, flashCompression: 0.4 },
  // With 2 optimiser steps each step's samples are one rank's: the other joins the step's sums with no rows.
  guard: { optimizerSteps: 2 },
};

/** Runs `epochs` epochs of trainer `name` as the mode says; its stats and parameter sets. */
async function train(name) {
  const Trainer = TRAINERS[name];
  const settings = { ...options, ...EXTRA[name] };
  const saved = `${checkpoint}.${name}`;
  const trainer =
    mode === 'resume'
      ? await Trainer.resume(saved, settings)
      : new Trainer(
          VelocityNet.create(
            { dataDim: 4, width: 16, depth: 2, condSlots: 1, vocabSize: 4 },
            { seed: 9, ...placement },
          ),
          settings,
        );
  const stats =
    mode === 'save'
      ? [
          ...(await trainer.run({ epochs: Number(epochs) - 1, checkpoint: { path: saved } })),
          ...(await trainer.run({ epochs: 1 })),
        ]
      : await trainer.run({ epochs: Number(epochs) });
  const sets = ['theta', 'old', 'ref', 'ema'].filter((s) => trainer.net.model.hasParams(s));
  const read = (set) => {
    const a = new Float32Array(trainer.net.model.paramCount());
    trainer.net.model.getParams(a, set);
    return Array.from(a);
  };
  const params = Object.fromEntries(sets.map((s) => [s, read(s)]));
  trainer.net.dispose();
  return { stats: stats.map(({ seconds, ...s }) => s), params };
}

const results = {};
for (const name of trainerNames.split(',')) results[name] = await train(name);
writeFileSync(`${out}.${rank}.json`, JSON.stringify(results));
