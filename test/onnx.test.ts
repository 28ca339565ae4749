// ONNX export (lib/model/onnx.ts, docs/onnx.md), checked by runtimes written elsewhere: the ONNX checker of Debian's
// python3-onnx (full_check) accepts the file, and onnxruntime-node computes our network's velocity within 1e-5
// relative on random inputs, odd batch sizes and the null condition, for both networks, with LoRA folded in.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { exportOnnx, saveCheckpoint, Tensor, VelocityNet } from '../lib/index.js';
import {
  cli,
  PYTHON,
  randomBatch,
  randomizedNet,
  relativeError,
  TINY_DIT,
  TINY_DIT_RGB,
  TINY_MLP,
  tempFolder,
} from './helpers.js';

const dir = tempFolder('onnx');

// name, config, size of the random perturbation of every parameter. Config D's is milder: at 0.2 its randomized
// outputs reach 50 and any two float32 implementations differ by 3e-5 (docs/onnx.md); a trained network is far
// better conditioned.
const NETWORKS = [
  ['mlp', TINY_MLP, 0.2],
  ['dit', TINY_DIT, 0.2],
  ['dit-rgb', TINY_DIT_RGB, 0.2],
  ['mlp (config M)', { preset: 'M' }, 0.05],
  ['dit (config D)', { preset: 'D' }, 0.05],
] as const;

// A network at its initialisation plus `scale`·N(0, 1) on every parameter (randomizedNet's recipe).
function perturbedNet(config: Parameters<typeof VelocityNet.create>[0], scale: number, seed: number): VelocityNet {
  const net = VelocityNet.create(config, { seed });
  const noise = Tensor.randn([net.paramCount], { seed: seed + 1000, stream: 40 }).storage;
  net.setParameters(net.getParameters().map((v, i) => v + scale * (noise[i] as number)));
  return net;
}

// The velocity of `net` through onnxruntime-node for a batch.
async function ortVelocity(session: ort.InferenceSession, x: Tensor, t: Tensor, cond: Tensor<'int32'>) {
  const [batch = 0, dim = 0] = x.shape;
  const out = await session.run({
    x: new ort.Tensor('float32', x.storage, [batch, dim]),
    t: new ort.Tensor('float32', t.storage, [batch]),
    cond: new ort.Tensor('int32', cond.storage, [...cond.shape]),
  });
  const v = out.v;
  if (v === undefined) throw new Error('no output v');
  expect(v.dims).toEqual([batch, dim]);
  return v.data as Float32Array;
}

// Our velocity and ORT's on batches of 1, 3 and 7 rows with random t and tokens, and on null-condition rows.
async function expectParity(net: VelocityNet, file: string): Promise<number> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1 });
  let worst = 0;
  for (const [batch, seed] of [
    [1, 11],
    [3, 12],
    [7, 13],
  ] as const) {
    const { x, t, cond } = randomBatch(net, batch, seed);
    // Row 0 of every batch takes the null condition, as CFG's second half does.
    cond.storage.fill(0, 0, net.config.condSlots);
    const ours = (await net.velocity(x, t, cond)).storage;
    const theirs = await ortVelocity(session, x, t, cond);
    const error = relativeError(theirs, ours);
    expect(error).toBeLessThan(1e-5);
    worst = Math.max(worst, error);
  }
  await session.release();
  return worst;
}

function checkWithOnnx(file: string): { status: number | null; err: string } {
  const script = 'import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)';
  const run = spawnSync(PYTHON, ['-c', script, file], { encoding: 'utf8' });
  return { status: run.status, err: run.stderr };
}

describe('ONNX export', () => {
  for (const [name, config, scale] of NETWORKS) {
    it(`passes the ONNX checker and matches onnxruntime within 1e-5 (${name})`, async () => {
      const net = perturbedNet(config, scale, 3);
      const file = join(dir, `${name.replace(/\W+/g, '-')}.onnx`);
      await exportOnnx(net, file);
      const check = checkWithOnnx(file);
      expect(check.status, check.err).toBe(0);
      const worst = await expectParity(net, file);
      console.log(`ONNX parity ${name}: worst relative error ${worst.toExponential(2)}`);
      net.dispose();
    });
  }

  for (const [name, config, targets] of [
    ['mlp', TINY_MLP, ['fc1', 'fc2', 'ada']],
    ['dit', TINY_DIT, ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2', 'ada']],
  ] as const) {
    it(`folds a LoRA adapter into the weights without changing the network (${name})`, async () => {
      const net = randomizedNet(config, 4);
      net.enableLora({ rank: 3, alpha: 6, targets: [...targets], seed: 4 });
      const info = net.lora;
      if (info === null) throw new Error('no adapters');
      net.model.setAdapter(Tensor.randn([info.paramCount], { seed: 4, stream: 70 }).storage.map((v) => 0.3 * v));
      const before = net.getParameters();
      const file = join(dir, `lora-${name}.onnx`);
      await exportOnnx(net, file);
      expect(net.getParameters()).toEqual(before);
      expect(net.lora).not.toBeNull();
      expect(checkWithOnnx(file).status).toBe(0);
      await expectParity(net, file);
      const model = onnxProto.onnx.ModelProto.decode(readFileSync(file));
      const meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
      expect(JSON.parse(meta['dnft.lora'] ?? 'null')).toMatchObject({ rank: 3, alpha: 6, folded: true });
      net.dispose();
    });
  }

  it('declares opset 17, the symbolic batch axis, and the config as metadata', async () => {
    const net = randomizedNet(TINY_MLP, 5);
    const file = join(dir, 'meta.onnx');
    await exportOnnx(net, file, { metadata: { run: 'test' } });
    const model = onnxProto.onnx.ModelProto.decode(readFileSync(file));
    expect(model.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 17]]);
    const graph = model.graph;
    if (!graph) throw new Error('no graph');
    const dims = (v: onnxProto.onnx.IValueInfoProto) =>
      v.type?.tensorType?.shape?.dim?.map((d) => d.dimParam || Number(d.dimValue)) ?? [];
    expect((graph.input ?? []).map((v) => [v.name, dims(v)])).toEqual([
      ['x', ['batch', 2]],
      ['t', ['batch']],
      ['cond', ['batch', 2]],
    ]);
    expect((graph.output ?? []).map((v) => [v.name, dims(v)])).toEqual([['v', ['batch', 2]]]);
    const meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
    expect(JSON.parse(meta['dnft.config'] ?? 'null')).toEqual(net.config);
    expect(meta).toMatchObject({ 'dnft.arch': 'mlp', 'dnft.step': '0', 'dnft.params': 'theta', run: 'test' });
    expect(meta['dnft.lora']).toBeUndefined();
    net.dispose();
  });

  it('rejects reserved metadata keys, unknown options and a missing parameter set, writing nothing', async () => {
    const net = randomizedNet(TINY_MLP, 6);
    const file = join(dir, 'never.onnx');
    await expect(exportOnnx(net, file, { metadata: { 'dnft.step': '3' } })).rejects.toThrow(/reserved/);
    await expect(exportOnnx(net, file, { opset: 18 } as never)).rejects.toThrow(/opset/);
    await expect(exportOnnx(net, file, { params: 'ema' })).rejects.toThrow(/no 'ema' parameters/);
    expect(() => readFileSync(file)).toThrow();
    net.dispose();
  });

  it('`diffusion-nft export` writes a LoRA checkpoint with its adapter folded in, and names a bad set', async () => {
    const net = randomizedNet(TINY_DIT, 7);
    net.enableLora({ rank: 2, alpha: 4, seed: 7 });
    const info = net.lora;
    if (info === null) throw new Error('no adapters');
    net.model.setAdapter(Tensor.randn([info.paramCount], { seed: 7, stream: 70 }).storage.map((v) => 0.3 * v));
    const checkpoint = join(dir, 'lora-run.safetensors');
    await saveCheckpoint(checkpoint, net);
    const file = join(dir, 'cli.onnx');
    const run = cli('export', '--checkpoint', checkpoint, '--out', file);
    expect(run.status, run.err).toBe(0);
    expect(run.out).toMatch(/rank-2 adapter folded in/);
    await expectParity(net, file);
    const bad = cli('export', '--checkpoint', checkpoint, '--params', 'best', '--out', join(dir, 'bad.onnx'));
    expect(bad.status).toBe(1);
    expect(bad.err).toMatch(/--params.*must be one of theta, old, ref, ema/);
    net.dispose();
  });
});
