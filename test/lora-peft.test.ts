// PEFT adapters (docs/lora.md, "PEFT adapters"): a PEFT-style adapter written by PyTorch code (reference/peft_lora.py,
// the reference networks with PEFT's LoRA layers and file names) loads into our network and reproduces its outputs;
// ours, written with savePeftAdapter, loads into that PyTorch code and gives our outputs; bad files name every tensor
// at fault and change nothing.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from '../lib/core/safetensors.js';
import {
  CheckpointError,
  loadAdapter,
  loadStateDict,
  loraModules,
  StateDictError,
  savePeftAdapter,
} from '../lib/index.js';
import { resolveNetConfig } from '../lib/options/net-config.js';
import { relativeError, runReference, TINY_DIT, TINY_MLP, tempFolder, velocityOnInputs } from './helpers.js';

const MLP = resolveNetConfig(TINY_MLP);
const DIT = resolveNetConfig(TINY_DIT);

const dir = tempFolder('lora-peft');

/** PyTorch's PEFT-style adapter of `targets` (PEFT's target_modules) on a seeded reference network, in a folder. */
function torchAdapter(label: string, config: object, targets: string | readonly string[]): string {
  const out = join(dir, label);
  runReference('peft_lora.py', 'make', JSON.stringify(config), '4321', '3', '6', JSON.stringify(targets), out);
  return out;
}

describe('PEFT adapters', () => {
  // target_modules as a regular expression (the MLP's time embedding has an fc1 too), and as a list of suffixes.
  for (const [name, config, targets, ours] of [
    ['mlp', MLP, 'blocks\\.\\d+\\.(fc1|ada)', ['ada', 'fc1']],
    ['dit', DIT, ['qkv', 'proj', 'mlp.fc2'], ['attn.qkv', 'attn.proj', 'mlp.fc2']],
  ] as const) {
    it(`loads a PyTorch PEFT-style adapter and writes one PyTorch loads, same outputs (${name})`, async () => {
      const made = torchAdapter(name, config, targets);
      const io = (await readSafetensorsFile(join(made, 'io.safetensors'))).tensors;
      const file = join(made, 'adapter', 'adapter_model.safetensors');
      const keys = Object.keys((await readSafetensorsFile(file)).tensors);
      expect(keys).toContain(`base_model.model.blocks.1.${ours[0]}.lora_B.weight`);

      const net = await loadStateDict(join(made, 'base.safetensors'), config);
      await loadAdapter(join(made, 'adapter'), net);
      expect(net.lora).toMatchObject({ rank: 3, alpha: 6, targets: ours, init: 'gaussian' });
      expect(net.lora?.params.length).toBe(keys.length);
      const adapted = await velocityOnInputs(net, io);
      expect(relativeError(adapted, io.output?.data as Float32Array)).toBeLessThan(1e-5);

      // The safetensors file alone, with alpha from the caller, is the same adapter.
      const alone = await loadStateDict(join(made, 'base.safetensors'), config);
      await loadAdapter(file, alone, { alpha: 6 });
      expect(alone.lora?.targets).toEqual(ours);
      expect(Buffer.from((await velocityOnInputs(alone, io)).buffer).equals(Buffer.from(adapted.buffer))).toBe(true);
      alone.dispose();

      // Ours the PEFT way: PyTorch adapts what adapter_config.json names and loads every tensor strictly.
      const written = join(dir, `${name}-ours`);
      await savePeftAdapter(written, net);
      const peftConfig = JSON.parse(readFileSync(join(written, 'adapter_config.json'), 'utf8'));
      expect(peftConfig).toMatchObject({ peft_type: 'LORA', r: 3, lora_alpha: 6, bias: 'none' });
      const out = join(dir, `${name}-torch-out.safetensors`);
      runReference(
        'peft_lora.py',
        'apply',
        JSON.stringify(config),
        join(made, 'base.safetensors'),
        written,
        join(made, 'io.safetensors'),
        out,
      );
      const torchOut = (await readSafetensorsFile(out)).tensors.output?.data as Float32Array;
      expect(relativeError(adapted, torchOut)).toBeLessThan(1e-5);
      net.dispose();
    }, 120_000);
  }

  it('names every missing, unexpected and mis-shaped tensor, refuses what is not plain LoRA, and changes nothing', async () => {
    // PEFT's list rule also adapts the DiT's final.ada for 'ada': a module outside the blocks, not ours to adapt.
    const made = torchAdapter('dit-ada', DIT, ['ada']);
    const net = await loadStateDict(join(made, 'base.safetensors'), DIT);
    const error = await loadAdapter(join(made, 'adapter'), net).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StateDictError);
    expect((error as StateDictError).problems).toEqual([
      expect.objectContaining({ name: 'base_model.model.final.ada.lora_A.weight', kind: 'unexpected' }),
      expect.objectContaining({ name: 'base_model.model.final.ada.lora_B.weight', kind: 'unexpected' }),
    ]);
    expect(net.lora).toBeNull();

    const source = (await readSafetensorsFile(join(made, 'adapter', 'adapter_model.safetensors'))).tensors;
    const bad: Record<string, SafeTensor> = { ...source };
    delete bad['base_model.model.blocks.1.ada.lora_A.weight'];
    const b0 = source['base_model.model.blocks.0.ada.lora_B.weight'] as SafeTensor;
    bad['base_model.model.blocks.0.ada.lora_B.weight'] = { ...b0, shape: [3, b0.shape[0] as number] };
    const folder = join(dir, 'bad');
    mkdirSync(folder);
    writeFileSync(join(folder, 'adapter_config.json'), readFileSync(join(made, 'adapter', 'adapter_config.json')));
    await writeSafetensorsFile(join(folder, 'adapter_model.safetensors'), bad);
    const problems = ((await loadAdapter(folder, net).catch((e: unknown) => e)) as StateDictError).problems;
    expect(problems.map((p) => `${p.kind} ${p.name}`).sort()).toEqual([
      'missing base_model.model.blocks.1.ada.lora_A.weight',
      'shape base_model.model.blocks.0.ada.lora_B.weight',
      'unexpected base_model.model.final.ada.lora_A.weight',
      'unexpected base_model.model.final.ada.lora_B.weight',
    ]);
    expect(problems.find((p) => p.kind === 'shape')?.detail).toMatch(/has shape \[3, 48\], expected \[48, 3\]/);

    const config = JSON.parse(readFileSync(join(made, 'adapter', 'adapter_config.json'), 'utf8'));
    const withConfig = async (fields: Record<string, unknown>) => {
      writeFileSync(join(folder, 'adapter_config.json'), JSON.stringify({ ...config, ...fields }));
      return loadAdapter(folder, net);
    };
    await expect(withConfig({ use_dora: true })).rejects.toThrow(/use_dora = true is not supported/);
    await expect(withConfig({ bias: 'all' })).rejects.toThrow(/bias = "all" is not supported/);
    await expect(withConfig({ target_modules: 'blocks\\.0\\.ada' })).rejects.toThrow(/'ada' in only some blocks/);
    await expect(withConfig({ target_modules: ['to_q'] })).rejects.toThrow(/matches no block module .*'attn\.qkv'/);
    await expect(withConfig({ r: 0 })).rejects.toThrow(/rank must be an integer/);
    await expect(loadAdapter(join(made, 'adapter', 'adapter_model.safetensors'), net)).rejects.toThrow(
      /needs lora_alpha: pass its folder .* or options.alpha/,
    );
    await expect(loadAdapter(join(made, 'adapter'), net, { alpha: 2 })).rejects.toThrow(RangeError);
    await expect(loadAdapter(join(made, 'adapter'), net, { alpha: -1 })).rejects.toThrow(/options\.alpha must be/);
    await expect(loadAdapter(join(dir, 'nowhere'), net)).rejects.toThrow(CheckpointError);
    expect(net.lora).toBeNull();
    expect(loraModules(DIT)).toEqual(['ada', 'attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2']);

    // rsLoRA scales by lora_alpha/√r: the same scale as alpha = lora_alpha·√r over r.
    const blocksOnly = Object.fromEntries(Object.entries(source).filter(([k]) => !k.includes('final.')));
    await writeSafetensorsFile(join(folder, 'adapter_model.safetensors'), blocksOnly);
    await withConfig({ use_rslora: true });
    expect(net.lora?.alpha).toBeCloseTo(6 * Math.sqrt(3), 12);
    net.dispose();
  }, 120_000);
});
