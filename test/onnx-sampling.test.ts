// Our solvers over an ONNX Runtime session (lib/sampling/onnx-model.ts): Euler, Heun and DPM-Solver++(2M), with
// classifier-free guidance and a guidance interval, over onnxruntime-node running the exported network, give the
// native sampler's samples from the same noise.
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { exportOnnx, onnxModel, sample, Tensor } from '../lib/index.js';
import { randomBatch, randomizedNet, relativeError, TINY_DIT_RGB, TINY_MLP, tempFolder } from './helpers.js';

const dir = tempFolder('onnx-sampling');

describe('sample() over ONNX Runtime', () => {
  for (const [name, config] of [
    ['mlp', TINY_MLP],
    ['dit', TINY_DIT_RGB],
  ] as const) {
    it(`gives the native sampler's samples for every solver, with guidance (${name})`, async () => {
      const net = randomizedNet(config, 8);
      const file = join(dir, `${name}.onnx`);
      await exportOnnx(net, file);
      const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
      const model = onnxModel(session, ort);
      const { cond } = randomBatch(net, 5, 9);
      cond.storage.fill(0, 0, net.config.condSlots);
      const noise = Tensor.randn([5, net.config.dataDim], { seed: 9, stream: 60 });
      let worst = 0;
      for (const solver of ['euler', 'heun', 'dpm2'] as const) {
        for (const guidance of [{}, { cfgScale: 3 }, { cfgScale: 2.5, cfgInterval: [0.2, 0.7] as [number, number] }]) {
          const options = { cond, noise, solver, steps: 6, ...guidance };
          const native = (await sample(net, options)).x.storage;
          const viaOrt = (await sample(model, options)).x.storage;
          const error = relativeError(viaOrt, native);
          expect(error, `${solver} ${JSON.stringify(guidance)}`).toBeLessThan(1e-5);
          worst = Math.max(worst, error);
        }
      }
      console.log(`ONNX sampling parity ${name}: worst relative error ${worst.toExponential(2)}`);
      await session.release();
      net.dispose();
    });
  }

  it('names a session that is not an exported model', async () => {
    const fake = { run: async () => ({ y: { data: new Float32Array(2), dims: [1, 2] } }) };
    const model = onnxModel(fake, ort);
    const cond = Tensor.fromInt32(new Int32Array(1), [1, 1]);
    await expect(sample(model, { cond, dataDim: 2, steps: 2 })).rejects.toThrow(/no float32 output v/);
    const wrong = onnxModel({ run: async () => ({ v: { data: new Float32Array(3), dims: [1, 3] } }) }, ort);
    await expect(sample(wrong, { cond, dataDim: 2, steps: 2 })).rejects.toThrow(/dims \[1, 3\], expected \[1, 2\]/);
    expect(() => onnxModel({} as never, ort)).toThrow(TypeError);
  });
});
