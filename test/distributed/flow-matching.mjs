// Run under mpirun (test/distributed.test.ts): flow-matching steps on one global batch, θ and the stats to $OUT.
import { writeFileSync } from 'node:fs';
import { FlowMatchingTrainer, Tensor, VelocityNet } from '../../dist/lib/index.js';

const [out, steps = '4', batch = '8', deviceCollectives] = process.argv.slice(2);
const net = VelocityNet.create({ dataDim: 4, width: 16, depth: 2, condSlots: 1, vocabSize: 3 }, { seed: 7 });
// 'mixed': rank 0 asks for the host path, the others for 'auto' (a mismatch every rank must report).
const mixed = process.env.OMPI_COMM_WORLD_RANK === '0' ? 'host' : 'auto';
const collectives = deviceCollectives === 'mixed' ? mixed : deviceCollectives;
const distributed = collectives === undefined ? undefined : { deviceCollectives: collectives };
const trainer = new FlowMatchingTrainer(net, { seed: 3, lr: 1e-2, condDropout: 0.2, distributed });
const B = Number(batch);
const x0 = Tensor.from(
  Float32Array.from({ length: B * 4 }, (_, i) => Math.sin(i)),
  [B, 4],
);
const cond = Tensor.fromInt32(
  Int32Array.from({ length: B }, (_, i) => i % 3),
  [B, 1],
);
const stats = [];
for (let s = 0; s < Number(steps); s++) stats.push(await trainer.step({ x0, cond }));
const { rank, size } = trainer.world;
writeFileSync(`${out}.${rank}.json`, JSON.stringify({ rank, size, stats, theta: Array.from(net.getParameters()) }));
