// Hostile and broken checkpoints (docs/reliability.md, "The error of each kind of bad input"): every load failure is a CheckpointError, found
// before anything native is allocated, and a load `into` a network changes nothing unless it succeeds.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, type SafeTensor } from '../lib/core/safetensors.js';
import {
  CheckpointError,
  DiffusionNFT,
  FlowMatchingTrainer,
  loadCheckpoint,
  NumericError,
  saveCheckpoint,
  Tensor,
  VelocityNet,
} from '../lib/index.js';
import { tempFolder } from './helpers.js';

const dir = tempFolder('rel-ckpt');

const SMALL = { width: 16, depth: 1 };

async function trainedCheckpoint(name: string): Promise<{ path: string; net: VelocityNet }> {
  const net = VelocityNet.create(SMALL, { seed: 3 });
  const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
  await trainer.step({ x0: Tensor.randn([8, 2], { seed: 1 }), cond: Tensor.fromInt32(new Int32Array(8), [8, 1]) });
  const path = join(dir, name);
  await saveCheckpoint(path, net);
  return { path, net };
}

/** The file at `path` with its tensors and metadata passed through `edit`. */
function rewrite(
  path: string,
  target: string,
  edit: (tensors: Record<string, SafeTensor>, metadata: Record<string, string>) => void,
): string {
  const { tensors, metadata } = decodeSafetensors(readFileSync(path));
  edit(tensors, metadata);
  const out = join(dir, target);
  writeFileSync(out, encodeSafetensors(tensors, metadata));
  return out;
}

/** The header bytes of a file whose JSON header is `header` and whose data section is `dataBytes` zero bytes. */
function rawFile(name: string, header: string, dataBytes = 0): string {
  const json = Buffer.from(header);
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  const path = join(dir, name);
  writeFileSync(path, out);
  return path;
}

function snapshot(net: VelocityNet) {
  const m = new Float32Array(net.paramCount);
  const v = new Float32Array(net.paramCount);
  if (net.model.hasOptimizerState()) net.model.getOptimizerState(m, v);
  return { theta: Array.from(net.getParameters()), m: Array.from(m), v: Array.from(v), step: net.step };
}

describe('reliability: checkpoints', () => {
  it('a tiny file claiming a huge network is refused before the network is built (item 3)', async () => {
    const config = JSON.stringify({ arch: 'mlp', dataDim: 2, width: 4096, depth: 8 });
    const path = rawFile(
      'huge.safetensors',
      JSON.stringify({ __metadata__: { 'dnft.format': 'diffusion-nft/1', 'dnft.config': config } }),
    );
    const started = performance.now();
    const rss = process.memoryUsage().rss;
    await expect(loadCheckpoint(path)).rejects.toThrow(CheckpointError);
    await expect(loadCheckpoint(path)).rejects.toThrow(/tensor 'time_mlp.fc1.weight' is missing/);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(100 * 2 ** 20);
  });

  it('negative AdamW second moments are refused, and setOptimizerState refuses them too (item 4)', async () => {
    const { path, net } = await trainedCheckpoint('good.safetensors');
    const bad = rewrite(path, 'negative-v.safetensors', (tensors) => {
      (tensors['optimizer.v.input_proj.weight']?.data as Float32Array)[0] = -1;
    });
    await expect(loadCheckpoint(bad)).rejects.toThrow(/negative second moment/);
    await expect(loadCheckpoint(bad)).rejects.toThrow(CheckpointError);
    const m = new Float32Array(net.paramCount);
    const v = new Float32Array(net.paramCount).fill(-1);
    expect(() => net.model.setOptimizerState(m, v, 1)).toThrow(RangeError);
  });

  it('a step whose update could overflow fails with NumericError and leaves the model unchanged (item 4)', async () => {
    const net = VelocityNet.create(SMALL, { seed: 3 });
    const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
    const batch = { x0: Tensor.randn([8, 2], { seed: 1 }), cond: Tensor.fromInt32(new Int32Array(8), [8, 1]) };
    await trainer.step(batch);
    const m = new Float32Array(net.paramCount).fill(3e38);
    const v = new Float32Array(net.paramCount);
    net.model.setOptimizerState(m, v, 1);
    const before = snapshot(net);
    await expect(trainer.step(batch)).rejects.toThrow(NumericError);
    expect(snapshot(net)).toEqual(before);
  });

  // The check reads the squared sums of θ, m and v that the previous update left (core/optimizer.cpp): each other
  // writer of θ must drop them, or the check would judge the old θ and let this step through.
  it('after a step, θ written by setParameters, copyParams or blendParams is what the overflow check judges', async () => {
    const writers: [string, (net: VelocityNet, theta: Float32Array) => void][] = [
      ['setParameters', (net, theta) => net.setParameters(theta)],
      [
        'copyParams',
        (net, theta) => {
          net.model.setParams(theta, 'old');
          net.model.copyParams('theta', 'old');
        },
      ],
      [
        'blendParams',
        (net, theta) => {
          net.model.setParams(theta, 'old');
          net.model.blendParams('theta', 0, 'old');
        },
      ],
    ];
    for (const [name, write] of writers) {
      const net = VelocityNet.create(SMALL, { seed: 3 });
      const trainer = new FlowMatchingTrainer(net, { lr: 1e-3 });
      const batch = { x0: Tensor.randn([8, 2], { seed: 1 }), cond: Tensor.fromInt32(new Int32Array(8), [8, 1]) };
      await trainer.step(batch);
      // The output bias (the last dataDim floats) near the float range: the forward pass stays finite.
      const theta = net.getParameters();
      theta.fill(3e37, theta.length - 2);
      write(net, theta);
      const before = snapshot(net);
      await expect(trainer.step(batch), name).rejects.toThrow(/could overflow/);
      expect(snapshot(net), name).toEqual(before);
      net.dispose();
    }
  });

  it('dnft.step is decimal digits up to 2^40, and a load into a net is all-or-nothing (items 5, 10)', async () => {
    const { path, net } = await trainedCheckpoint('steps.safetensors');
    const target = VelocityNet.create(SMALL, { seed: 9 });
    const before = snapshot(target);
    for (const step of [String(2 ** 40 + 1), '', '0x10', '1e3', '-1', ' 1', '01']) {
      const bad = rewrite(path, 'step.safetensors', (_, metadata) => {
        metadata['dnft.step'] = step;
      });
      await expect(loadCheckpoint(bad, { into: target }), `step ${JSON.stringify(step)}`).rejects.toThrow(
        CheckpointError,
      );
      expect(snapshot(target)).toEqual(before);
    }
    const fine = rewrite(path, 'step-ok.safetensors', (_, metadata) => {
      metadata['dnft.step'] = String(2 ** 40);
    });
    expect((await loadCheckpoint(fine, { into: target })).step).toBe(2 ** 40);
    net.dispose();
  });

  it('stale temporary files of killed writers are removed on the next save (item 8)', async () => {
    const { path, net } = await trainedCheckpoint('stale.safetensors');
    const dead = execFileSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).trim();
    writeFileSync(`${path}.tmp-${dead}-0123456789ab`, 'partial');
    writeFileSync(`${path}.tmp-${process.pid}-0123456789ab`, 'this process: kept');
    writeFileSync(`${path}.tmp-${dead}-notours`, 'another pattern: kept');
    await saveCheckpoint(path, net);
    const left = readdirSync(dir).filter((name) => name.startsWith('stale.safetensors.tmp-'));
    expect(left.sort()).toEqual(
      [`stale.safetensors.tmp-${dead}-notours`, `stale.safetensors.tmp-${process.pid}-0123456789ab`].sort(),
    );
  });

  it('only regular files are read, the header first and bounded (item 9)', async () => {
    await expect(loadCheckpoint('/dev/zero')).rejects.toThrow(/not a regular file/);
    await expect(loadCheckpoint(dir)).rejects.toThrow(/not a regular file/);
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await expect(loadCheckpoint(fifo)).rejects.toThrow(/not a regular file/);
    const long = Buffer.alloc(16);
    long.writeBigUInt64LE(200_000_000n, 0);
    writeFileSync(join(dir, 'long-header'), long);
    await expect(loadCheckpoint(join(dir, 'long-header'))).rejects.toThrow(/exceeds the limit/);
    const short = rawFile(
      'short.safetensors',
      JSON.stringify({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }),
      8,
    );
    await expect(loadCheckpoint(short)).rejects.toThrow(/truncated/);
    const deep = rawFile('deep.safetensors', `${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    await expect(loadCheckpoint(deep)).rejects.toThrow(/nested deeper/);
    await expect(loadCheckpoint(deep)).rejects.toThrow(CheckpointError);
  });

  it('a deeply nested dnft.config, a corrupt dnft.trainer, a bad arch are CheckpointErrors (item 10)', async () => {
    const { path } = await trainedCheckpoint('meta.safetensors');
    const deep = rewrite(path, 'deep-config.safetensors', (_, metadata) => {
      metadata['dnft.config'] = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    });
    await expect(loadCheckpoint(deep)).rejects.toThrow(CheckpointError);
    const arch = rewrite(path, 'arch.safetensors', (_, metadata) => {
      metadata['dnft.arch'] = 'dit';
    });
    await expect(loadCheckpoint(arch)).rejects.toThrow(CheckpointError);
    const options = { prompts: [{ tokens: [1] }], rewards: () => [0, 0], groups: 1, groupSize: 2 };
    const trainerNet = VelocityNet.create(SMALL);
    const nft = new DiffusionNFT(trainerNet, options);
    const saved = join(dir, 'trainer.safetensors');
    await nft.save(saved);
    const corrupt = rewrite(saved, 'trainer-corrupt.safetensors', (_, metadata) => {
      metadata['dnft.trainer'] = '{"format": "DiffusionNFT", "epo';
    });
    await expect(DiffusionNFT.resume(corrupt, options)).rejects.toThrow(CheckpointError);
    const negative = rewrite(saved, 'trainer-negative.safetensors', (_, metadata) => {
      metadata['dnft.trainer'] = JSON.stringify({ ...JSON.parse(metadata['dnft.trainer'] as string), epoch: -3 });
    });
    await expect(DiffusionNFT.resume(negative, options)).rejects.toThrow(CheckpointError);
    trainerNet.dispose();
  });

  it('save failures are CheckpointErrors and leave the previous file intact (item 10)', async () => {
    const { path, net } = await trainedCheckpoint('intact.safetensors');
    const previous = readFileSync(path);
    await expect(saveCheckpoint(join(dir, 'missing-folder', 'x.safetensors'), net)).rejects.toThrow(CheckpointError);
    await expect(saveCheckpoint(dir, net)).rejects.toThrow(CheckpointError);
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked');
      mkdirSync(locked);
      chmodSync(locked, 0o500);
      await expect(saveCheckpoint(join(locked, 'x.safetensors'), net)).rejects.toThrow(/EACCES/);
      chmodSync(locked, 0o700);
    }
    expect(readFileSync(path).equals(previous)).toBe(true);
  });
});
