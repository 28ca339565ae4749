// Run under mpirun (test/distributed.test.ts): epochs of DiffusionNFT, FlowGRPO, AWM or DGPO, stats and θ to `${out}.${rank}.json`.
// mode 'fail': rank 1's reward throws; 'die': rank 1 is killed while scoring; 'hang': rank 1 blocks while scoring, the
// collective timeout 2 s; 'mismatch': rank 1 has another seed; 'resume': continues the checkpoint `${out}.ckpt` of an earlier run;
// 'gpu-nccl', 'gpu-host': the model on the GPU (FP32), its gradient summed with that deviceCollectives.
import { writeFileSync } from 'node:fs';
import { AWM, DGPO, DiffusionNFT, FlowGRPO, VelocityNet } from '../../dist/lib/index.js';

const [out, trainerName, epochs = '3', mode = 'plain', checkpoint = ''] = process.argv.slice(2);
const env = process.env;
const rank = Number(env.OMPI_COMM_WORLD_RANK ?? env.PMI_RANK ?? env.PMIX_RANK ?? 0); // mpirun, mpiexec.mpich, srun
// What a rank throws also goes to `${out}.${rank}.error`: a launcher may stop a rank before its stderr is out.
process.once('uncaughtException', (error) => {
  writeFileSync(`${out}.${rank}.error`, `${error.name}: ${error.message}`);
  console.error(error);
  process.exitCode = 1;
});
const prompts = [0, 1, 2, 3].map((t) => ({ tokens: [t] }));
const reward = (x, p) => {
  if (mode === 'fail' && rank === 1) throw new Error('the scorer is down');
  if (mode === 'die' && rank === 1) process.kill(process.pid, 'SIGKILL');
  if (mode === 'hang' && rank === 1) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000);
  const s = x.storage;
  return p.map((q, i) => -((s[i * 4] - q.tokens[0] / 3) ** 2) - s[i * 4 + 1] ** 2);
};
const options = {
  prompts,
  rewards: { name: 'target', fn: reward },
  groups: 4,
  groupSize: 4,
  steps: 4,
  seed: mode === 'mismatch' && rank === 1 ? 6 : 5,
  lr: 3e-3,
  ...(mode === 'hang' ? { distributed: { timeout: 2 } } : {}),
  ...(mode.startsWith('gpu-') ? { distributed: { deviceCollectives: mode.slice(4) } } : {}),
};
const placement = mode.startsWith('gpu-') ? { device: 'cuda', precision: 'fp32' } : {};
const Trainer = { nft: DiffusionNFT, grpo: FlowGRPO, awm: AWM, dgpo: DGPO }[trainerName];
const extra = {
  nft: { optimizerSteps: 1 },
  grpo: { optimizerSteps: 2, klCoef: 0.04 },
  awm: { optimizerSteps: 2, timesPerSample: 2 },
  dgpo: { optimizerSteps: 2, timesPerEpoch: 2, truncSteps: 2, switchEmaRef: 1 },
}[trainerName];
const trainer =
  mode === 'resume'
    ? await Trainer.resume(checkpoint, { ...options, ...extra })
    : new Trainer(
        VelocityNet.create({ dataDim: 4, width: 16, depth: 2, condSlots: 1, vocabSize: 4 }, { seed: 9, ...placement }),
        {
          ...options,
          ...extra,
        },
      );
const stats = await trainer.run({
  epochs: Number(epochs),
  ...(checkpoint && mode !== 'resume' ? { checkpoint: { path: checkpoint } } : {}),
});
const sets = ['theta', 'old', 'ref', 'ema'].filter((s) => trainer.net.model.hasParams(s));
const read = (set) => {
  const a = new Float32Array(trainer.net.model.paramCount());
  trainer.net.model.getParams(a, set);
  return Array.from(a);
};
const params = Object.fromEntries(sets.map((s) => [s, read(s)]));
writeFileSync(`${out}.${rank}.json`, JSON.stringify({ stats: stats.map(({ seconds, ...s }) => s), params }));
