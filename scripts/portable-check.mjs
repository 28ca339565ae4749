// A few deterministic steps through the built package (dist/lib), printed as JSON with the CPU kernel path that ran
// them: run by this machine's Node and by a Node under qemu-user, an arm64 one or an x64 one on an emulated CPU without
// AVX-512 or AVX (scripts/ci-prebuilds.sh). `node scripts/portable-check.mjs compare A B` compares two such outputs:
// the exit status says whether they agree within float32 tolerance.
if (process.argv[2] === 'compare') {
  const [a, b] = process.argv.slice(3, 5).map((s) => JSON.parse(s));
  let worst = 0;
  for (const key of ['losses', 'samples', 'ditVelocity']) {
    if (a[key].length !== b[key].length || a[key].length === 0) process.exit(1);
    a[key].forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - b[key][i]) / Math.max(1, Math.abs(b[key][i])));
    });
  }
  console.log(`largest difference: ${worst.toExponential(2)}`);
  process.exit(Number.isFinite(worst) && worst < 1e-4 ? 0 : 1);
}

// Loaded after the comparison, which needs no addon.
const { backendInfo, FlowMatchingTrainer, sample, Tensor, tasks, VelocityNet } = await import('../dist/lib/index.js');

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
    cpuKernels: backendInfo().cpuKernels,
    losses,
    samples: Array.from(samples.storage),
    ditVelocity: Array.from(velocity.storage),
  }),
);
