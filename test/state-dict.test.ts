// Weights from and to PyTorch: a plain state_dict() of a reference/ network loads with loadStateDict and gives
// PyTorch's outputs; our checkpoints load into the reference networks with load_state_dict(strict=True); a state
// dict that does not fit names every tensor at fault and changes nothing.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from '../lib/core/safetensors.js';
import {
  CheckpointError,
  CONFIG_D,
  FlowMatchingTrainer,
  loadStateDict,
  StateDictError,
  saveCheckpoint,
  Tensor,
  VelocityNet,
} from '../lib/index.js';
import {
  onCpu,
  onDevices,
  randomizedNet,
  relativeError,
  runReference,
  TINY_DIT,
  TINY_MLP,
  tempFolder,
  tolerance,
  velocityOnInputs,
} from './helpers.js';

const dir = tempFolder('state-dict');

const SMALL = TINY_MLP;

/** The parameters of `net` as plain state-dict entries. */
function entries(net: VelocityNet): Record<string, SafeTensor> {
  const tensors: Record<string, SafeTensor> = {};
  for (const [name, t] of Object.entries(net.parameters())) {
    tensors[name] = { dtype: 'F32', shape: [...t.shape], data: t.storage as Float32Array };
  }
  return tensors;
}

describe('PyTorch state dicts', () => {
  // Config D is too large for the simulated GPU in CI (docs/gpu.md): the device runs take a DiT of the same layout.
  for (const [name, config, devices] of [
    ['config D', CONFIG_D, false],
    ['a small DiT', TINY_DIT, true],
    ['an MLP', { arch: 'mlp', dataDim: 12, ...SMALL }, true],
  ] as const) {
    it(`loads a plain state_dict() of the reference network (${name}) and reproduces its outputs`, async () => {
      const weights = join(dir, `${name}-weights.safetensors`);
      const io = join(dir, `${name}-io.safetensors`);
      runReference('state_dict.py', 'export', JSON.stringify(config), '1234', weights, io);
      expect((await readSafetensorsFile(weights)).metadata).toEqual({});
      const reference = (await readSafetensorsFile(io)).tensors;
      await (devices ? onDevices : onCpu)(async (at) => {
        const net = await loadStateDict(weights, config, at);
        expect(net.device).toBe(at.device);
        expect(net.config).toEqual(config);
        const err = relativeError(await velocityOnInputs(net, reference), reference.output?.data as Float32Array);
        expect(err).toBeLessThan(tolerance(at, 1e-5));

        // The other way: a checkpoint with optimiser state loads into the reference network with strict=True.
        const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
        const x0 = Tensor.randn([4, net.config.dataDim], { seed: 3 });
        await trainer.step({
          x0,
          cond: Tensor.fromInt32(new Int32Array(4 * net.config.condSlots).fill(1), [4, net.config.condSlots]),
        });
        const checkpoint = join(dir, `${name}-${at.device}-${at.precision}-checkpoint.safetensors`);
        await saveCheckpoint(checkpoint, net);
        const names = Object.keys((await readSafetensorsFile(checkpoint)).tensors);
        expect(names.some((n) => n.startsWith('optimizer.m.'))).toBe(true);
        const out = join(dir, `${name}-${at.device}-${at.precision}-out.safetensors`);
        runReference('state_dict.py', 'import', checkpoint, io, out);
        const torchOut = (await readSafetensorsFile(out)).tensors.output?.data as Float32Array;
        const trained = await velocityOnInputs(net, reference);
        expect(relativeError(trained, torchOut)).toBeLessThan(tolerance(at, 1e-5));
        const parameters = net.getParameters();
        net.dispose();
        return { velocity: trained, parameters };
      });
    }, 120_000);
  }

  it('names every missing, unexpected, mis-shaped, mistyped and non-finite tensor and changes nothing', async () => {
    const source = randomizedNet(SMALL, 5);
    const good = entries(source);
    const into = VelocityNet.create(SMALL, { seed: 9 });
    const before = into.getParameters();
    const write = async (label: string, tensors: Record<string, SafeTensor>, metadata?: Record<string, string>) => {
      const path = join(dir, `${label}.safetensors`);
      await writeSafetensorsFile(path, tensors, metadata);
      return path;
    };
    const problemsOf = async (path: string) => {
      const error = await loadStateDict(path, SMALL, { into }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StateDictError);
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as StateDictError).code).toBe('DNFT_CHECKPOINT');
      expect(into.getParameters()).toEqual(before);
      return error as StateDictError;
    };

    const { 'blocks.1.fc2.bias': _dropped, ...missing } = good;
    const e1 = await problemsOf(await write('missing', missing));
    expect(e1.problems).toEqual([{ name: 'blocks.1.fc2.bias', kind: 'missing', detail: expect.any(String) }]);
    expect(e1.message).toMatch(/'blocks\.1\.fc2\.bias' \[16\] is missing/);

    const stray: SafeTensor = { dtype: 'F32', shape: [2], data: new Float32Array(2) };
    const extra = { ...good, 'blocks.2.fc1.weight': stray };
    const e2 = await problemsOf(await write('unexpected', extra));
    expect(e2.problems.map((p) => [p.name, p.kind])).toEqual([['blocks.2.fc1.weight', 'unexpected']]);
    expect(e2.message).toMatch(/'blocks\.2\.fc1\.weight' F32 \[2\] is not a parameter of this network/);

    const fc1 = good['blocks.0.fc1.weight'] as SafeTensor;
    const reshaped = { ...good, 'blocks.0.fc1.weight': { ...fc1, shape: [16, 32] } };
    const e3 = await problemsOf(await write('shape', reshaped));
    expect(e3.problems.map((p) => [p.name, p.kind])).toEqual([['blocks.0.fc1.weight', 'shape']]);
    expect(e3.message).toMatch(/'blocks\.0\.fc1\.weight' has shape \[16, 32\], expected \[32, 16\]/);

    const bias = good['output_proj.bias'] as SafeTensor;
    const wide: SafeTensor = { dtype: 'F64', shape: bias.shape, data: Float64Array.from(bias.data as Float32Array) };
    const doubled = { ...good, 'output_proj.bias': wide };
    const e4 = await problemsOf(await write('dtype', doubled));
    expect(e4.problems.map((p) => [p.name, p.kind])).toEqual([['output_proj.bias', 'dtype']]);
    expect(e4.message).toMatch(/'output_proj\.bias' has dtype F64, expected F32/);

    const nan = Float32Array.from(bias.data as Float32Array);
    nan[1] = Number.NaN;
    const e5 = await problemsOf(await write('value', { ...good, 'output_proj.bias': { ...bias, data: nan } }));
    expect(e5.problems.map((p) => [p.name, p.kind])).toEqual([['output_proj.bias', 'value']]);
    expect(e5.message).toMatch(/'output_proj\.bias' holds NaN at index 1/);

    // All at once: one error listing each of them.
    const all: Record<string, SafeTensor> = {
      ...extra,
      ...reshaped,
      ...doubled,
      'blocks.0.fc1.weight': reshaped['blocks.0.fc1.weight'],
    };
    delete all['blocks.1.fc2.bias'];
    const e6 = await problemsOf(await write('all', all));
    expect(e6.problems.map((p) => p.kind).sort()).toEqual(['dtype', 'missing', 'shape', 'unexpected']);
    expect(e6.message).toMatch(/\(4 problems\)/);

    // A file of ours is for loadCheckpoint; a config the network does not have is refused before reading.
    await expect(loadStateDict(await write('ours', good, { 'dnft.format': 'diffusion-nft/1' }), SMALL)).rejects.toThrow(
      /is a diffusion-nft file .*load it with loadCheckpoint/,
    );
    await expect(loadStateDict(await write('good', good), { ...SMALL, width: 32 }, { into })).rejects.toThrow(
      RangeError,
    );
    await expect(loadStateDict(join(dir, 'absent.safetensors'), SMALL)).rejects.toThrow(CheckpointError);
    expect(into.getParameters()).toEqual(before);

    // And the good file loads into the network.
    await loadStateDict(join(dir, 'good.safetensors'), SMALL, { into });
    expect(into.getParameters()).toEqual(source.getParameters());
    source.dispose();
    into.dispose();
  });
});
