// Run under mpirun (test/distributed.test.ts): one DGPO step whose groups span the ranks. Each of the R ranks holds
// its share of every group's members (one process holds them all), so each group weight σ(S_g) needs the sums of
// every rank; writes the step's statistics and θ to `${out}.${rank}.json`.
import { writeFileSync } from 'node:fs';
import { Tensor, VelocityNet } from '../../dist/lib/index.js';
import { distributeModel, openWorld } from '../../dist/lib/training/distributed.js';

const [out] = process.argv.slice(2);
const world = openWorld('distributed', undefined);
const rank = world?.rank ?? 0;
const size = world?.size ?? 1;
const net = VelocityNet.create({ dataDim: 4, width: 16, depth: 2, condSlots: 1, vocabSize: 4 }, { seed: 9 });
const model = net.model;
if (world !== undefined) distributeModel('dgpo-groups', model, 'cpu', world);
model.copyParams('old', 'theta');
model.copyParams('ref', 'theta');
// Move θ off the reference first, so that S_g is not 0.
const theta = net.getParameters();
const noise = Tensor.randn([theta.length], { seed: 3, stream: 40 }).storage;
net.setParameters(theta.map((v, i) => v + 0.05 * noise[i]));
const groups = 4;
const G = 4;
const x0 = Tensor.randn([groups * G, 4], { seed: 4, stream: 41 }).storage;
const advantages = Tensor.randn([groups * G], { seed: 5, stream: 42 }).storage;
// This rank's members: [rank·G/size, (rank + 1)·G/size) of every group.
const mine = [];
for (let g = 0; g < groups; g++) {
  for (let k = (rank * G) / size; k < ((rank + 1) * G) / size; k++) mine.push(g * G + k);
}
const pickRows = (a, width) =>
  Float32Array.from(mine.flatMap((i) => Array.from(a.subarray(i * width, (i + 1) * width))));
const options = {
  lr: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 1e-4,
  maxGradNorm: 1,
  warmupSteps: 0,
  schedule: 'constant',
  totalSteps: 0,
  minLr: 0,
  betaDpo: 100,
  clipRange: 0.01,
  klCoef: 0.02,
  emaRef: false,
  groupSize: G,
  seed: 7,
  times: Float64Array.from([1, 0.8, 0.6]),
  groups,
  microBatch: 0,
};
const stats = await model.dgpoStep(
  pickRows(x0, 4),
  new Int32Array(mine.length),
  pickRows(advantages, 1),
  Int32Array.from(mine, (i) => Math.floor(i / G)),
  mine.length,
  options,
);
writeFileSync(`${out}.${rank}.json`, JSON.stringify({ stats, theta: Array.from(net.getParameters()) }));
