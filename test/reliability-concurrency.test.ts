// Concurrency (docs/reliability.md, "Concurrency"): many overlapping steps on one model run in call order,
// and two models trained at the same time give what each gives alone. (setThreads during work, worker threads and
// dispose during a step run in child processes: test/reliability-scenarios.test.ts.)
import { describe, expect, it } from 'vitest';
import { FlowMatchingTrainer, Tensor, VelocityNet } from '../lib/index.js';

const cond = Tensor.fromInt32(new Int32Array(32), [32, 1]);
const batch = (i: number) => ({ x0: Tensor.randn([32, 2], { seed: i }), cond });

async function train(seed: number, steps: number, overlap: boolean): Promise<Float32Array> {
  const net = VelocityNet.create({ width: 32, depth: 2 }, { seed });
  const trainer = new FlowMatchingTrainer(net, { lr: 1e-3, seed });
  if (overlap) await Promise.all(Array.from({ length: steps }, (_, i) => trainer.step(batch(seed * 1000 + i))));
  else for (let i = 0; i < steps; i++) await trainer.step(batch(seed * 1000 + i));
  const params = net.getParameters();
  net.dispose();
  return params;
}

describe('reliability: concurrency', () => {
  it('50 overlapping steps on one model equal 50 sequential ones, bit for bit', async () => {
    expect(await train(1, 50, true)).toEqual(await train(1, 50, false));
  });

  it('two models trained at once equal each trained alone', async () => {
    const [a, b] = await Promise.all([train(2, 20, true), train(3, 20, true)]);
    expect(a).toEqual(await train(2, 20, false));
    expect(b).toEqual(await train(3, 20, false));
  });
});
