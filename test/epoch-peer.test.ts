// The PyTorch epoch of row B6 (bench/pytorch/epoch.py) against ours: on the same weights and the same rows (x0, the
// training times and noise of our step, r; or the recorded SDE transitions, advantages and log p_old) one training
// step of each method gives the same loss, gradient norm and θ after AdamW. A tiny DiT keeps it cheap.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TIME_STREAM } from '../lib/core/random.js';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from '../lib/core/safetensors.js';
import { interpolate, sampleSde, saveCheckpoint, Tensor, timeGrid, type VelocityNet } from '../lib/index.js';
import { NFT_LOSS_SCHEMA } from '../lib/options/nft-loss.js';
import { OPTIMIZER_SCHEMA } from '../lib/options/optimizer.js';
import { resolveOptions } from '../lib/options/schema.js';
import { randomizedNet, relativeError, TINY_DIT_RGB, tempFolder } from './helpers.js';

const dir = tempFolder('epoch-peer');

const TINY = TINY_DIT_RGB;
const D = TINY.dataDim;
const L = TINY.condSlots;
const B = 3;
const STEPS = 10;
const LR = 1e-3;

/** A parameter set of `net` near θ: θ + scale·noise. */
function nearTheta(net: VelocityNet, set: 'old' | 'ref', scale: number, seed: number): void {
  const theta = net.getParameters();
  const noise = Tensor.randn([theta.length], { seed, stream: 61 }).storage;
  net.model.copyParams(set, 'theta');
  net.model.setParams(
    Float32Array.from(theta, (v, i) => v + scale * (noise[i] as number)),
    set,
  );
}

const f32 = (data: ArrayLike<number>, shape: number[]): SafeTensor => ({
  dtype: 'F32',
  shape,
  data: Float32Array.from(data),
});
const i32 = (data: ArrayLike<number>, shape: number[]): SafeTensor => ({
  dtype: 'I32',
  shape,
  data: Int32Array.from(data),
});

/** Runs the peer's step on the checkpoint and the rows; its loss, gradient norm, statistics and θ after. */
async function peerStep(
  method: 'nft' | 'flowgrpo',
  net: VelocityNet,
  tensors: Record<string, SafeTensor>,
  meta: object,
) {
  const [input, output] = [join(dir, `${method}-in.safetensors`), join(dir, `${method}-out.safetensors`)];
  const metadata = Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, JSON.stringify(v)]));
  await writeSafetensorsFile(input, tensors, metadata);
  const run = spawnSync(
    '/usr/bin/python3',
    ['bench/pytorch/epoch.py', 'step', method, join(dir, `${method}.safetensors`), input, output],
    { encoding: 'utf8' },
  );
  expect(run.status, run.stderr).toBe(0);
  const file = await readSafetensorsFile(output);
  const theta = new Float32Array(net.paramCount);
  for (const p of net.params) theta.set(file.tensors[`theta.${p.name}`]?.data as Float32Array, p.offset);
  const scalar = (name: string) => Number((file.tensors[name]?.data as Float64Array | undefined)?.[0]);
  const stats = JSON.parse(file.metadata.stats ?? '{}') as Record<string, number>;
  return { loss: scalar('loss'), gradNorm: scalar('gradNorm'), theta, stats };
}

/**
 * θ after the step agrees: the AdamW updates of ours and the peer's, relative to each other. The key biases are left
 * out: they add the same logit to every key of a query, which the softmax cancels, so their gradient is rounding
 * noise that AdamW's first step scales up to ±lr in both implementations alike.
 */
function expectSameUpdate(net: VelocityNet, before: Float32Array, ours: Float32Array, peer: Float32Array): void {
  const W = net.config.width;
  const noise = new Set<number>();
  for (const p of net.params.filter((p) => p.name.endsWith('attn.qkv.bias'))) {
    for (let i = W; i < 2 * W; i++) noise.add(p.offset + i);
  }
  const kept = Array.from(before.keys()).filter((i) => !noise.has(i));
  const ourUpdate = kept.map((i) => (ours[i] as number) - (before[i] as number));
  const peerUpdate = kept.map((i) => (peer[i] as number) - (before[i] as number));
  // A step moves every weight by about lr (m̂/√v̂ = ±1 at step 1): the updates are not zero.
  expect(Math.max(...peerUpdate.map(Math.abs))).toBeGreaterThan(0.5 * LR);
  // 1e-5 typically; an element whose gradient is near AdamW's eps turns float32 differences of it into ~1% of lr.
  expect(relativeError(ourUpdate, peerUpdate)).toBeLessThan(3e-4);
}

/**
 * The K distinct grid times of each sample the native DiffusionNFT step draws (native/core/model_nft.cpp): the first
 * K entries of a Fisher–Yates shuffle of the N candidates, driven by TIME_STREAM from element step·2^32 + b·N.
 */
function nftTimes(seed: number, step: number, candidates: ArrayLike<number>, K: number): Float32Array {
  const N = candidates.length;
  const u = Tensor.rand([B * N], { seed, stream: TIME_STREAM, offset: step * 2 ** 32 }).storage;
  const t = new Float32Array(B * K);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: N }, (_, i) => i);
    for (let j = 0; j < K; j++) {
      const pick = Math.min(N - 1, j + Math.floor(Math.fround((u[b * N + j] as number) * (N - j))));
      [order[j], order[pick]] = [order[pick] as number, order[j] as number];
      t[b * K + j] = candidates[order[j] as number] as number;
    }
  }
  return t;
}

const TOKENS = Int32Array.from({ length: B * L }, (_, i) => (i * 3 + 1) % TINY.vocabSize);

describe('the PyTorch epoch of row B6', () => {
  for (const loss of [{}, { beta: 0.1, klCoef: 0.5 }]) {
    it(`takes our DiffusionNFT step: loss, gradient norm and θ after AdamW (${JSON.stringify(loss)})`, async () => {
      const net = randomizedNet(TINY, 3);
      nearTheta(net, 'old', 0.05, 4);
      nearTheta(net, 'ref', 0.05, 5);
      await saveCheckpoint(join(dir, 'nft.safetensors'), net);
      const grid = timeGrid(STEPS);
      const K = 9;
      const seed = 7;
      const options = {
        ...resolveOptions('test', { lr: LR }, OPTIMIZER_SCHEMA),
        ...resolveOptions('test', loss, NFT_LOSS_SCHEMA),
        seed,
        timesPerSample: K,
        microBatch: 0,
        firstSample: 0,
      };
      const x0 = Tensor.randn([B, D], { seed: 8, stream: 60 }).storage;
      const r = Float32Array.from([0, 0.35, 1]);
      const before = net.getParameters();
      const times = grid.subarray(0, STEPS);
      const ours = await net.enqueue(() => net.model.nftStep(x0, TOKENS, r, B, { ...options, times }));

      // The rows of our step: sample b at K times, each with its noise (first step: element offset 2^32).
      const rows = Array.from({ length: B * K }, (_, i) => Math.floor(i / K));
      const x0Rows = Float32Array.from(
        { length: B * K * D },
        (_, i) => x0[(rows[Math.floor(i / D)] as number) * D + (i % D)] as number,
      );
      const t = nftTimes(seed, 1, times, K);
      const { xt } = interpolate(Tensor.from(x0Rows, [B * K, D]), Tensor.from(t), { seed, offset: 2 ** 32 });
      const peer = await peerStep(
        'nft',
        net,
        {
          x0: f32(x0Rows, [B * K, D]),
          xt: f32(xt.storage, [B * K, D]),
          t: f32(t, [B * K]),
          r: f32(
            rows.map((b) => r[b] as number),
            [B * K],
          ),
          tokens: i32(
            rows.flatMap((b) => Array.from(TOKENS.subarray(b * L, (b + 1) * L))),
            [B * K, L],
          ),
        },
        { options },
      );
      expect(Math.abs(ours.loss - peer.loss) / Math.abs(peer.loss)).toBeLessThan(1e-5);
      expect(Math.abs(ours.gradNorm - peer.gradNorm) / peer.gradNorm).toBeLessThan(1e-4);
      expectSameUpdate(net, before, net.getParameters(), peer.theta);
      net.dispose();
    });
  }

  it('takes our FlowGRPO step on recorded SDE transitions: loss, statistics and θ after AdamW', async () => {
    const net = randomizedNet(TINY, 11);
    nearTheta(net, 'ref', 0.3, 12);
    await saveCheckpoint(join(dir, 'flowgrpo.safetensors'), net);
    const grid = timeGrid(STEPS);
    const T = 9;
    // Rolled out by θ_ref, so that θ's ratios are not 1 and the clip acts on some rows.
    const { trajectory, logp } = await sampleSde(net, {
      cond: Tensor.fromInt32(TOKENS, [B, L]),
      grid,
      seed: 13,
      params: 'ref',
    });
    const advantages = Float32Array.from([1.5, -0.6, 0.2]);
    const options = {
      ...resolveOptions('test', { lr: LR }, OPTIMIZER_SCHEMA),
      clipRange: 0.02,
      klCoef: 0.04,
      logpSum: false,
      sde: 'flow-grpo' as const,
      grid,
      trainSteps: T,
      firstStep: new Int32Array(0),
      guard: false,
      sdeA: 0.7,
      cfgScale: 1,
      cfgTMin: 0,
      cfgTMax: 1,
      microBatch: 0,
    };
    const before = net.getParameters();
    const ours = await net.enqueue(() =>
      net.model.grpoStep(trajectory.storage, TOKENS, advantages, logp.storage, B, options),
    );

    // The rows of our step: (sample b, transition n) for n < T, sample-major.
    const b = Array.from({ length: B * T }, (_, i) => Math.floor(i / T));
    const n = Array.from({ length: B * T }, (_, i) => i % T);
    const state = (k: number, sample: number) =>
      trajectory.storage.subarray((k * B + sample) * D, (k * B + sample + 1) * D);
    const peer = await peerStep(
      'flowgrpo',
      net,
      {
        x: f32(
          b.flatMap((s, i) => Array.from(state(n[i] as number, s))),
          [B * T, D],
        ),
        xNext: f32(
          b.flatMap((s, i) => Array.from(state((n[i] as number) + 1, s))),
          [B * T, D],
        ),
        t: f32(
          n.map((k) => grid[k] as number),
          [B * T],
        ),
        transition: i32(n, [B * T]),
        advantages: f32(
          b.map((s) => advantages[s] as number),
          [B * T],
        ),
        logpOld: f32(
          b.map((s, i) => logp.storage[(n[i] as number) * B + s] as number),
          [B * T],
        ),
        tokens: i32(
          b.flatMap((s) => Array.from(TOKENS.subarray(s * L, (s + 1) * L))),
          [B * T, L],
        ),
      },
      { options: { ...options, grid: undefined }, grid: Array.from(grid) },
    );
    expect(ours.clipFraction).toBeGreaterThan(0);
    expect(ours.clipFraction).toBeLessThan(1);
    expect(peer.stats.clipFraction).toBeCloseTo(ours.clipFraction, 12);
    expect(Math.abs(ours.ratioMean - (peer.stats.ratioMean as number))).toBeLessThan(1e-5);
    expect(Math.abs(ours.loss - peer.loss) / Math.abs(peer.loss)).toBeLessThan(1e-5);
    expect(Math.abs(ours.gradNorm - peer.gradNorm) / peer.gradNorm).toBeLessThan(1e-4);
    expectSameUpdate(net, before, net.getParameters(), peer.theta);
    net.dispose();
  });
});
