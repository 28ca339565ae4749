// Run under mpirun (test/distributed.test.ts): the choice of a GPU model's gradient sums (lib/training/distributed.ts) in a
// world of one, over a stand-in for the native model that records what it is asked; writes the outcome to $OUT.
import { writeFileSync } from 'node:fs';
import { distributeModel, openWorld } from '../../dist/lib/training/distributed.js';

const [out, deviceCollectives] = process.argv.slice(2);
const warnings = [];
process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
const calls = [];
const model = { setDistributed: (on, nccl) => calls.push([on, nccl]) };
const world = openWorld('options.distributed', { deviceCollectives });
let error;
try {
  // Twice, as two trainers of one process would: a fallback warning is said once.
  for (let i = 0; i < 2; i++) distributeModel('Trainer', model, 'cuda', world);
} catch (e) {
  error = { name: e.name, message: e.message };
}
await new Promise((resolve) => setTimeout(resolve, 10)); // warnings are emitted on the next tick
writeFileSync(`${out}.json`, JSON.stringify({ calls, error, warnings }));
