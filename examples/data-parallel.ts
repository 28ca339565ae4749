// Data-parallel training under MPI: every rank runs this same program, e.g. `mpirun -np 2 node data-parallel.js`.
// The trainers see the launch and split each epoch's prompt groups over the ranks; the gradients are summed over
// MPI so that all ranks hold the same weights (docs/distributed.md; libdnft_mpi.so from `npm run build:mpi`).
//   EPOCHS, PRETRAIN_STEPS: the run's size (defaults 20 and 600; the tests run it tiny).
import { DiffusionNFT, FlowMatchingTrainer, sample, Tensor, tasks, VelocityNet } from 'diffusion-nft';

const EPOCHS = Number(process.env.EPOCHS ?? 20);
const PRETRAIN_STEPS = Number(process.env.PRETRAIN_STEPS ?? 600);
// The rank as Open MPI's mpirun or MPICH's mpiexec sets it: only rank 0 prints.
const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? process.env.PMI_RANK ?? 0);
const log = (line: string) => rank === 0 && console.log(line);

const { toy2d } = tasks;
const net = VelocityNet.create(toy2d.config, { seed: 1 });
// Pre-training runs data-parallel too: each rank trains on its part of every batch.
const pretrain = new FlowMatchingTrainer(net, { lr: 2e-3, schedule: 'cosine', totalSteps: PRETRAIN_STEPS, condDropout: 0.2 });
for (let i = 0; i < PRETRAIN_STEPS; i++) await pretrain.step(toy2d.batch(256, 1, i));

const nft = new DiffusionNFT(net, {
  prompts: toy2d.prompts.slice(0, 1),
  rewards: { name: 'red', fn: toy2d.rewards.red },
  groups: 8, // prompt groups per epoch: a multiple of the number of ranks
  groupSize: 16,
  lr: 1e-3,
});
await nft.run({ epochs: EPOCHS, onProgress: (s) => log(`epoch ${s.epoch}: reward ${s.reward.toFixed(3)}`) });

const { x } = await sample(net, { cond: Tensor.fromInt32(new Int32Array(512), [512, 1]), steps: 10 });
const red = toy2d.rewards.red(x).filter((r) => r === 1).length / 512;
log(`rank 0 of ${process.env.OMPI_COMM_WORLD_SIZE ?? process.env.PMI_SIZE ?? 1}: ${red.toFixed(2)} of the samples on a red mode`);
net.dispose();
