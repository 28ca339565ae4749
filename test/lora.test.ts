// LoRA adapters from the API (lib/model/lora.ts, docs/lora.md): a fresh adapter changes nothing, outputs and adapter
// gradients match a PyTorch LoRA of the same network (reference/lora_oracle.py), adapter files round-trip and
// resume training bit for bit, merging matches the unmerged adapter, and bad input changes nothing.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from '../lib/core/safetensors.js';
import {
  CheckpointError,
  FlowMatchingTrainer,
  loadAdapter,
  loadCheckpoint,
  saveAdapter,
  saveCheckpoint,
  Tensor,
  VelocityNet,
} from '../lib/index.js';
import {
  CPU,
  onDevices,
  type Placement,
  PYTHON,
  randomBatch,
  randomizedNet,
  relativeError,
  TINY_DIT,
  TINY_MLP,
  tempFolder,
  tolerance,
} from './helpers.js';

const dir = tempFolder('lora');

const MLP = TINY_MLP;
const DIT = TINY_DIT;
const ALL_TARGETS = { mlp: ['fc1', 'fc2', 'ada'], dit: ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2', 'ada'] };

// A randomized base with an adapter whose A and B are both random (a trained adapter's situation).
function adaptedNet(config: typeof MLP | typeof DIT, seed: number, at: Placement = CPU): VelocityNet {
  const net = randomizedNet(config, seed, at);
  net.enableLora({ rank: 3, alpha: 6, targets: ALL_TARGETS[net.config.arch], seed });
  const info = net.lora;
  if (info === null) throw new Error('no adapters');
  const adapter = Tensor.randn([info.paramCount], { seed, stream: 70 }).storage.map((v) => 0.3 * v);
  net.model.setAdapter(adapter);
  return net;
}

describe('LoRA adapters', () => {
  for (const [name, config] of [
    ['mlp', MLP],
    ['dit', DIT],
  ] as const) {
    it(`a fresh adapter leaves the output bit-identical (${name})`, async () => {
      await onDevices(async (at) => {
        const net = randomizedNet(config, 3, at);
        const { x, t, cond } = randomBatch(net, 4, 5);
        const before = await net.velocity(x, t, cond);
        net.enableLora({ targets: ALL_TARGETS[net.config.arch] });
        expect(net.lora?.rank).toBe(32);
        expect(net.lora?.alpha).toBe(64);
        const after = await net.velocity(x, t, cond);
        expect(Buffer.from(after.storage.buffer).equals(Buffer.from(before.storage.buffer))).toBe(true);
        net.dispose();
        return { velocity: after.storage };
      });
    });

    it(`matches a PyTorch LoRA: outputs, dx and adapter gradients (${name})`, async () => {
      await onDevices(async (at) => {
        const net = adaptedNet(config, 7, at);
        const info = net.lora;
        if (info === null) throw new Error('no adapters');
        const batch = 5;
        const { x, t, cond } = randomBatch(net, batch, 9);
        const dout = Tensor.randn([batch, net.config.dataDim], { seed: 11, stream: 60 });
        const ours = await net.forwardBackward(x, t, cond, dout);
        expect(ours.grads.length).toBe(info.paramCount);

        const tensors: Record<string, SafeTensor> = {
          'input.x': { dtype: 'F32', shape: [...x.shape], data: x.storage },
          'input.t': { dtype: 'F32', shape: [...t.shape], data: t.storage },
          'input.cond': { dtype: 'I32', shape: [...cond.shape], data: cond.storage },
          'input.dout': { dtype: 'F32', shape: [...dout.shape], data: dout.storage },
        };
        const flat = net.getParameters();
        for (const p of net.params)
          tensors[p.name] = { dtype: 'F32', shape: [...p.shape], data: flat.slice(p.offset, p.offset + p.size) };
        const adapter = new Float32Array(info.paramCount);
        net.model.getAdapter(adapter);
        for (const p of info.params)
          tensors[p.name] = { dtype: 'F32', shape: [...p.shape], data: adapter.slice(p.offset, p.offset + p.size) };
        const input = join(dir, `${name}-in.safetensors`);
        const output = join(dir, `${name}-out.safetensors`);
        await writeSafetensorsFile(input, tensors, {
          config: JSON.stringify(net.config),
          lora: JSON.stringify({ rank: info.rank, alpha: info.alpha, targets: info.targets }),
        });
        const run = spawnSync(PYTHON, ['reference/lora_oracle.py', input, output], { encoding: 'utf8' });
        expect(run.status, run.stderr).toBe(0);
        const ref = (await readSafetensorsFile(output)).tensors;
        expect(relativeError(ours.out.storage, ref.output?.data as Float32Array)).toBeLessThan(tolerance(at, 1e-5));
        expect(relativeError(ours.dx.storage, ref['grad.x']?.data as Float32Array)).toBeLessThan(tolerance(at, 1e-4));
        for (const p of info.params) {
          const refGrad = ref[`grad.${p.name}`]?.data as Float32Array;
          expect(refGrad, p.name).toBeDefined();
          const err = relativeError(ours.grads.subarray(p.offset, p.offset + p.size), refGrad);
          expect(err, `${p.name}: relative error ${err}`).toBeLessThan(tolerance(at, 1e-4));
        }
        net.dispose();
        return { out: ours.out.storage, dx: ours.dx.storage, grads: ours.grads };
      });
    });

    it(`merging matches the unmerged adapter (${name})`, async () => {
      await onDevices(async (at) => {
        const net = adaptedNet(config, 13, at);
        const { x, t, cond } = randomBatch(net, 4, 15);
        const adapted = await net.velocity(x, t, cond);
        net.mergeLora();
        expect(net.lora).toBeNull();
        const merged = await net.velocity(x, t, cond);
        expect(relativeError(merged.storage, adapted.storage)).toBeLessThan(tolerance(at, 1e-5));
        net.dispose();
        return { merged: merged.storage };
      });
    });
  }

  it('saves adapters alone and resumes training bit for bit', async () => {
    await onDevices(async (at) => {
      const base = randomizedNet(MLP, 21).getParameters();
      const data = randomBatch(randomizedNet(MLP, 21), 8, 23);
      const batch = { x0: data.x, cond: data.cond };
      const make = () => {
        const net = VelocityNet.create(MLP, at);
        net.setParameters(base);
        return net;
      };
      const options = { lr: 1e-2, seed: 3, lora: { rank: 4, alpha: 8, seed: 5 } };
      const straight = make();
      const trainer = new FlowMatchingTrainer(straight, options);
      for (let s = 0; s < 2; s++) await trainer.step(batch);
      const file = join(dir, `adapter-${at.device}-${at.precision}.safetensors`);
      await saveAdapter(file, straight);
      for (let s = 0; s < 2; s++) await trainer.step(batch);

      const stored = await readSafetensorsFile(file);
      const names = Object.keys(stored.tensors);
      expect(names).toContain('blocks.0.fc1.lora_A.weight');
      expect(names).toContain('optimizer.m.blocks.1.fc2.lora_B.weight');
      expect(names.some((n) => n.startsWith('input_proj'))).toBe(false);

      const resumed = make();
      resumed.enableLora({ rank: 2 }); // replaced by the file's adapter
      await loadAdapter(file, resumed);
      expect(() => new FlowMatchingTrainer(resumed, { ...options, lora: { rank: 2 } })).toThrow(/differs/);
      expect(resumed.step).toBe(2);
      expect(resumed.lora?.rank).toBe(4);
      const again = new FlowMatchingTrainer(resumed, options);
      for (let s = 0; s < 2; s++) await again.step(batch);
      const a = new Float32Array(straight.lora?.paramCount ?? 0);
      const b = new Float32Array(a.length);
      straight.model.getAdapter(a);
      resumed.model.getAdapter(b);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
      expect(resumed.getParameters()).toEqual(base);
      straight.dispose();
      resumed.dispose();
      return { adapter: a };
    });
  });

  it('rejects bad options and files and changes nothing', async () => {
    const net = randomizedNet(DIT, 31);
    expect(() => net.enableLora({ targets: ['fc1'] })).toThrow(RangeError);
    expect(() => net.enableLora({ rank: 0 })).toThrow(/lora\.rank/);
    expect(() => net.enableLora({ init: 'uniform' as 'gaussian' })).toThrow(RangeError);
    expect(() => net.enableLora({ rnak: 4 } as object)).toThrow(TypeError);
    expect(() => VelocityNet.create(MLP, { lora: { alpha: -1 } })).toThrow(/lora\.alpha/);
    expect(net.lora).toBeNull();
    expect(() => net.mergeLora()).toThrow(RangeError);

    const other = VelocityNet.create(MLP, { lora: {} });
    const file = join(dir, 'mlp-adapter.safetensors');
    await saveAdapter(file, other);
    await expect(loadAdapter(file, net)).rejects.toThrow(CheckpointError);
    expect(net.lora).toBeNull();
    const plain = join(dir, 'plain.safetensors');
    await saveCheckpoint(plain, VelocityNet.create(MLP));
    await expect(loadCheckpoint(plain, { into: other })).rejects.toThrow(/no LoRA adapters/);
    expect(other.lora?.rank).toBe(32);
    other.dispose();
    net.dispose();
  });
});
