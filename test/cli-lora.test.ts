// The CLI's LoRA commands end to end on tiny settings (the compiled dist/, which `npm test` builds first): train
// --lora-rank/--lora-alpha/--lora-targets writes an adapter of those targets, merge folds it into a checkpoint that
// samples as sample --adapter does, a wrong target is refused naming the network's modules, and --resume continues.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { readSafetensorsFile } from '../lib/core/safetensors.js';
import { CONFIG_M, loadAdapter, loadCheckpoint, sample, saveCheckpoint, Tensor, VelocityNet } from '../lib/index.js';
import { parseRecords } from '../lib/metrics/records.js';
import { cli, randomizedNet, relativeError, tempFolder } from './helpers.js';

const dir = tempFolder('cli-lora');

/** Four Euler-step samples of a few conditions, as floats. */
async function samples(net: VelocityNet): Promise<Float32Array> {
  const { condSlots, vocabSize } = net.config;
  const tokens = Int32Array.from({ length: 4 * condSlots }, (_, i) => (i * 7) % vocabSize);
  const { x } = await sample(net, { cond: Tensor.fromInt32(tokens, [4, condSlots]), steps: 4, seed: 5 });
  return x.storage;
}

describe('the CLI with LoRA', () => {
  it('trains adapters on chosen targets, resumes, merges them, and samples with --adapter', async () => {
    const base = join(dir, 'base.safetensors');
    // Random weights everywhere (a new network's zero output layer would hide the adapter).
    const net = randomizedNet(CONFIG_M, 3);
    await saveCheckpoint(base, net, { optimizer: false });
    const config = join(dir, 'tiny.json');
    writeFileSync(config, JSON.stringify({ trainer: { groups: 2, groupSize: 2 } }));
    const run = join(dir, 'run');
    const lora = ['--lora-rank', '4', '--lora-alpha', '8', '--lora-targets', 'fc1,ada'];
    const common = ['--config', config, '--eval-every', '1', ...lora];
    const train = cli('train', '--base', base, '--epochs', '1', '--out', run, ...common);
    expect(train.status, train.err).toBe(0);

    const adapter = await readSafetensorsFile(join(run, 'adapter.safetensors'));
    expect(JSON.parse(adapter.metadata['dnft.lora'] as string)).toEqual({
      rank: 4,
      alpha: 8,
      targets: ['fc1', 'ada'],
      init: 'gaussian',
    });
    const expected = Array.from({ length: net.config.depth }, (_, i) =>
      ['ada', 'fc1'].flatMap((m) => [`blocks.${i}.${m}.lora_A.weight`, `blocks.${i}.${m}.lora_B.weight`]),
    ).flat();
    // θ's adapter, and the θ_old / EMA adapter sets of the same tensors.
    const names = Object.keys(adapter.tensors);
    expect(names.filter((n) => n.startsWith('blocks.')).sort()).toEqual(expected.sort());
    for (const n of names) expect(expected).toContain(n.replace(/^(old|ref|ema)\./, ''));

    // --resume continues the LoRA run (same flags); without them the run's options differ and it is refused.
    const checkpoint = join(run, 'checkpoint.safetensors');
    const refused = cli('train', '--base', checkpoint, '--resume', '--epochs', '2', '--config', config, '--out', run);
    expect(refused.status).toBe(1);
    expect(refused.err).toMatch(/error: .*lora/);
    const resumed = cli('train', '--base', checkpoint, '--resume', '--epochs', '2', '--out', run, ...common);
    expect(resumed.status, resumed.err).toBe(0);
    const records = parseRecords(readFileSync(join(run, 'metrics.jsonl'), 'utf8'));
    expect(records.filter((r) => r.kind === 'evaluation').map((r) => r.epoch)).toEqual([0, 1, 2]);
    const again = (await loadCheckpoint(checkpoint)).net;
    expect(again.lora).toMatchObject({ rank: 4, alpha: 8, targets: ['fc1', 'ada'] });
    expect(again.step).toBe(2);
    expect(again.getParameters()).toEqual(net.getParameters());

    // A random base's samples earn no reward, so RL leaves B at zero: merging is checked on a run that starts from
    // an adapter with random A and B (the same flags, so the run takes it).
    const before = await samples(net);
    net.enableLora({ rank: 4, alpha: 8, targets: ['fc1', 'ada'] });
    net.model.setAdapter(
      Tensor.randn([net.lora?.paramCount ?? 0], { seed: 9, stream: 70 }).storage.map((v) => 0.1 * v),
    );
    const start = join(dir, 'adapted-start.safetensors');
    await saveCheckpoint(start, net, { optimizer: false });
    const adaptedRun = join(dir, 'adapted-run');
    const trained = cli('train', '--base', start, '--epochs', '1', '--out', adaptedRun, ...common);
    expect(trained.status, trained.err).toBe(0);
    const merged = join(dir, 'merged.safetensors');
    const merge = cli('merge', '--base', join(adaptedRun, 'checkpoint.safetensors'), '--out', merged);
    expect(merge.status, merge.err).toBe(0);
    expect(merge.out).toMatch(/rank-4 adapter on fc1, ada merged/);
    const adapterFile = join(adaptedRun, 'adapter.safetensors');
    const plain = (await loadCheckpoint(base)).net;
    await loadAdapter(adapterFile, plain);
    const adapted = await samples(plain);
    const folded = (await loadCheckpoint(merged)).net;
    expect(folded.lora).toBeNull();
    expect(relativeError(adapted, before)).toBeGreaterThan(1e-2);
    expect(relativeError(await samples(folded), adapted)).toBeLessThan(1e-5);

    // The same through `sample`: the merged checkpoint's grid and the base's with --adapter, pixel for pixel (±1).
    const grid = (file: string, ...args: string[]) => {
      const out = join(dir, file);
      const sampled = cli('sample', ...args, '--prompt', 'a red circle', '--n', '2', '--steps', '4', '--out', out);
      expect(sampled.status, sampled.err).toBe(0);
      return PNG.sync.read(readFileSync(out)).data;
    };
    const viaAdapter = grid('adapter.png', '--checkpoint', base, '--adapter', adapterFile);
    const viaMerge = grid('merged.png', '--checkpoint', merged);
    const viaBase = grid('base.png', '--checkpoint', base);
    expect(viaMerge.length).toBe(viaAdapter.length);
    expect(viaMerge.every((v, i) => Math.abs(v - (viaAdapter[i] as number)) <= 1)).toBe(true);
    expect(viaBase.some((v, i) => Math.abs(v - (viaAdapter[i] as number)) > 8)).toBe(true);
  }, 600_000);

  it('refuses a wrong --lora-targets, naming the modules the network has', async () => {
    const base = join(dir, 'small-base.safetensors');
    await saveCheckpoint(base, VelocityNet.create({ preset: 'M' }), { optimizer: false });
    const out = join(dir, 'bad');
    const wrong = cli('train', '--base', base, '--epochs', '1', '--lora-targets', 'fc1,attn.qkv', '--out', out);
    expect(wrong.status).toBe(1);
    expect(wrong.err).toMatch(/unknown module 'attn\.qkv'; this network has 'ada', 'fc1', 'fc2'/);
    const empty = cli('train', '--base', base, '--epochs', '1', '--lora-targets', 'fc1,', '--out', out);
    expect(empty.status).not.toBe(0);
    expect(empty.err).toMatch(/'--lora-targets <list>' argument 'fc1,' is invalid. expected module names/);
  });
});
