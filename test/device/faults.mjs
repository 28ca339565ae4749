// Run by test/device-faults.test.ts in a process of its own, on the GPU with a fault the simulator injects
// (CUDASIM_FAIL) or the capacity it simulates (CUDASIM_MEM): a small model is created, takes up to 3 flow-matching
// steps and then, when `rows` > 0, samples a batch of that many rows; the first failure ends that, and the outcome
// (the error, whether the model kept its parameters, AdamW moments and step count bit for bit and trains on, and a model on the CPU training
// afterwards) goes as JSON to `out`.
import { writeFileSync } from 'node:fs';
import { FlowMatchingTrainer, sample, Tensor, tasks, VelocityNet } from '../../dist/lib/index.js';

const [out, rows = '0'] = process.argv.slice(2);
const errorOf = (e) => ({ name: e.name, code: e.code, message: e.message });
const outcome = { steps: 0 };
const batch = (i) => tasks.toy2d.batch(64, 1, i);

/** Every float the model trains with, bit for bit: θ, then the AdamW moments when it has them. */
function trainingState(net) {
  const parts = [net.getParameters()];
  if (net.model.hasOptimizerState()) {
    const m = new Float32Array(net.paramCount);
    const v = new Float32Array(net.paramCount);
    net.model.getOptimizerState(m, v);
    parts.push(m, v);
  }
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer)));
}

async function attempt(net, what, run) {
  const state = trainingState(net);
  const step = net.step;
  try {
    await run();
    return true;
  } catch (error) {
    outcome.failed = { ...errorOf(error), during: what };
    try {
      outcome.kept = trainingState(net).equals(state) && net.step === step;
      await new FlowMatchingTrainer(net, { seed: 2 }).step(batch(100));
      outcome.trainsOn = true;
    } catch (later) {
      outcome.later = errorOf(later);
    }
    return false;
  }
}

try {
  const net = VelocityNet.create(tasks.toy2d.config, { device: 'cuda', precision: 'fp32', seed: 1 });
  const trainer = new FlowMatchingTrainer(net, { seed: 2 });
  let going = true;
  for (let i = 0; i < 3 && going; i++) {
    going = await attempt(net, `step ${i}`, () => trainer.step(batch(i)));
    if (going) outcome.steps += 1;
  }
  if (going && Number(rows) > 0) {
    const cond = Tensor.fromInt32(new Int32Array(Number(rows)), [Number(rows), 1]);
    await attempt(net, 'sample', () => sample(net, { cond, steps: 2, seed: 3 }));
  }
} catch (error) {
  outcome.failed = { ...errorOf(error), during: 'create' };
}
// The process is alive: a model on the CPU trains.
const cpu = VelocityNet.create(tasks.toy2d.config, { seed: 1 });
outcome.cpuLoss = (await new FlowMatchingTrainer(cpu).step(batch(0))).loss;
writeFileSync(out, JSON.stringify(outcome));
