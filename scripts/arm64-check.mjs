// A few deterministic steps through the built package (dist/lib), printed as JSON: run once by the host's Node and
// once by an arm64 Node under qemu (scripts/ci-arm64.sh), which compares the two.
import { FlowMatchingTrainer, sample, Tensor, tasks, VelocityNet } from '../dist/lib/index.js';

const mlp = VelocityNet.create(tasks.toy2d.config, { seed: 3 });
const trainer = new FlowMatchingTrainer(mlp, { lr: 1e-3 });
const losses = [];
for (let i = 0; i < 3; i++) {
  const { x0, cond } = tasks.toy2d.batch(64, 1, i);
  losses.push((await trainer.step({ x0, cond })).loss);
}
const modes = Tensor.fromInt32(
  Int32Array.from({ length: 16 }, (_, i) => 1 + (i % 8)),
  [16, 1],
);
const samples = (await sample(mlp, { cond: modes, solver: 'dpm2', steps: 8, seed: 5 })).x;

// A small DiT exercises the attention, patchify and adaLN kernels the MLP does not.
const dit = VelocityNet.create(
  { arch: 'dit', dataDim: 48, imageSize: 4, channels: 3, patch: 2, width: 32, heads: 2, depth: 1, condSlots: 2 },
  { seed: 4 },
);
const x = Tensor.randn([2, 48], { seed: 9, stream: 16 });
const tokens = Tensor.fromInt32(Int32Array.from([1, 2, 3, 0]), [2, 2]);
const velocity = await dit.velocity(x, 0.5, tokens);

console.log(
  JSON.stringify({
    arch: process.arch,
    losses,
    samples: Array.from(samples.storage),
    ditVelocity: Array.from(velocity.storage),
  }),
);
