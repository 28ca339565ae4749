// The PyTorch oracle: the same network in PyTorch (reference/velocity_net.py, reference/dit.py), loaded from
// the same safetensors weights, must give the same output and the same gradients for every parameter and the input.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from '../lib/core/safetensors.js';
import { Tensor } from '../lib/index.js';
import { randomBatch, randomizedNet, relativeError, tempFolder } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const dir = tempFolder('oracle');

const CONFIGS = [
  { name: 'small', config: { width: 24, depth: 2, mlpRatio: 3, timeFeatures: 10, vocabSize: 9, condSlots: 3 } },
  { name: 'image-like', config: { dataDim: 48, width: 40, depth: 3, timeFeatures: 16, vocabSize: 12, condSlots: 4 } },
  // 9 tokens, 3 heads of size 4
  {
    name: 'dit-odd',
    config: {
      arch: 'dit' as const,
      dataDim: 108,
      width: 12,
      depth: 2,
      mlpRatio: 3,
      timeFeatures: 8,
      vocabSize: 7,
      condSlots: 2,
      imageSize: 6,
      channels: 3,
      patch: 2,
      heads: 3,
    },
  },
  // 16 tokens of 4·4·2 values, 2 heads of size 10
  {
    name: 'dit-patch4',
    config: {
      arch: 'dit' as const,
      dataDim: 512,
      width: 20,
      depth: 2,
      mlpRatio: 2,
      timeFeatures: 6,
      vocabSize: 5,
      condSlots: 3,
      imageSize: 16,
      channels: 2,
      patch: 4,
      heads: 2,
    },
  },
];
const errors: Record<string, number> = {};
afterAll(() => {
  if (process.env.DNFT_ORACLE_REPORT) console.log(JSON.stringify(errors));
});

describe('PyTorch oracle', () => {
  it('has Debian python3-torch (installed by scripts/dev.sh test)', () => expect(hasTorch).toBe(true));
  for (const { name, config } of CONFIGS) {
    for (const batch of [1, 7, 33]) {
      it(`matches outputs and all gradients (${name}, batch ${batch})`, async () => {
        const net = randomizedNet(config, batch);
        const { x, t, cond } = randomBatch(net, batch, batch + 100);
        const dout = Tensor.randn([batch, net.config.dataDim], { seed: batch, stream: 60 });
        const ours = await net.forwardBackward(x, t, cond, dout);

        const flat = net.getParameters();
        const tensors: Record<string, SafeTensor> = {
          'input.x': { dtype: 'F32', shape: [...x.shape], data: x.storage },
          'input.t': { dtype: 'F32', shape: [...t.shape], data: t.storage },
          'input.cond': { dtype: 'I32', shape: [...cond.shape], data: cond.storage },
          'input.dout': { dtype: 'F32', shape: [...dout.shape], data: dout.storage },
        };
        for (const p of net.params) {
          tensors[p.name] = { dtype: 'F32', shape: [...p.shape], data: flat.slice(p.offset, p.offset + p.size) };
        }
        const input = join(dir, `${name}-${batch}-in.safetensors`);
        const output = join(dir, `${name}-${batch}-out.safetensors`);
        await writeSafetensorsFile(input, tensors, { config: JSON.stringify(net.config) });
        const run = spawnSync(PYTHON, ['reference/oracle.py', input, output], {
          encoding: 'utf8',
          env: { ...process.env, OMP_NUM_THREADS: '1' },
        });
        expect(run.status, run.stderr).toBe(0);
        const ref = (await readSafetensorsFile(output)).tensors;

        const refOut = ref.output?.data as Float32Array;
        const outErr = relativeError(ours.out.storage, refOut);
        const dxErr = relativeError(ours.dx.storage, ref['grad.x']?.data as Float32Array);
        expect(outErr).toBeLessThan(1e-5);
        expect(dxErr).toBeLessThan(1e-4);
        let gradErr = 0;
        for (const p of net.params) {
          const refGrad = ref[`grad.${p.name}`]?.data as Float32Array;
          expect(refGrad, p.name).toBeDefined();
          const err = relativeError(ours.grads.subarray(p.offset, p.offset + p.size), refGrad);
          expect(err, `${p.name}: relative error ${err}`).toBeLessThan(1e-4);
          gradErr = Math.max(gradErr, err);
        }
        errors[`${name}/${batch}`] = Math.max(outErr, dxErr, gradErr);
      });
    }
  }
});
