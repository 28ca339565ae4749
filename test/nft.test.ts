// nftLoss against a float64 re-computation of docs/algorithms.md §2.3, finite differences and the official loop in
// PyTorch, its ablation and gradient identity; optimalityProbability as the official code computes it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSafetensorsFile, type SafeTensor, writeSafetensorsFile } from '../lib/core/safetensors.js';
import { nftLoss, optimalityProbability, Tensor } from '../lib/index.js';
import { relativeError } from './helpers.js';

interface Case {
  vTheta: Float64Array;
  vOld: Float64Array;
  vRef: Float64Array;
  x0: Float64Array;
  eps: Float64Array;
  t: Float64Array;
  r: Float64Array;
  B: number;
  D: number;
}

interface RefOptions {
  beta: number;
  adaptive: boolean;
  klCoef: number;
  positiveOnly?: boolean;
}

// Algorithms.md 2.3, written out literally in float64 (the official training loop): x_t, the implicit policies, the
// x0 predictions, the per-sample stop-gradient weights, C·mean(r·L+/β + (1 − r)·L−/β) + kl·mean (v_θ − v_ref)².
// `weights` freezes w± (the stop-gradient) so that finite differences see the same function as autograd.
function referenceLoss(c: Case, vTheta: Float64Array, o: RefOptions, weights?: Float64Array[]): number {
  const C = 5;
  let total = 0;
  for (let b = 0; b < c.B; b++) {
    const t = c.t[b] as number;
    const r = c.r[b] as number;
    const errPos: number[] = [];
    const errNeg: number[] = [];
    let kl = 0;
    for (let d = 0; d < c.D; d++) {
      const i = b * c.D + d;
      const x0 = c.x0[i] as number;
      const xt = (1 - t) * x0 + t * (c.eps[i] as number);
      const v = (c.eps[i] as number) - x0;
      const vPos = o.beta * (vTheta[i] as number) + (1 - o.beta) * (c.vOld[i] as number);
      const vNeg = (1 + o.beta) * (c.vOld[i] as number) - o.beta * (vTheta[i] as number);
      if (o.adaptive) {
        errPos.push(xt - t * vPos - x0);
        errNeg.push(xt - t * vNeg - x0);
      } else {
        errPos.push(vPos - v);
        errNeg.push(vNeg - v);
      }
      kl += ((vTheta[i] as number) - (c.vRef[i] as number)) ** 2;
    }
    const mean = (xs: number[], f: (x: number) => number) => xs.reduce((s, x) => s + f(x), 0) / xs.length;
    let wPos = 1;
    let wNeg = 1;
    if (o.adaptive) {
      wPos = weights ? (weights[0]?.[b] as number) : Math.max(mean(errPos, Math.abs), 1e-5);
      wNeg = weights ? (weights[1]?.[b] as number) : Math.max(mean(errNeg, Math.abs), 1e-5);
    }
    const lPos = mean(errPos, (x) => x * x) / wPos;
    const lNeg = mean(errNeg, (x) => x * x) / wNeg;
    total += C * ((r * lPos) / o.beta + (o.positiveOnly ? 0 : ((1 - r) * lNeg) / o.beta)) + (o.klCoef * kl) / c.D;
  }
  return total / c.B;
}

function referenceWeights(c: Case, o: RefOptions): Float64Array[] {
  const w = [new Float64Array(c.B), new Float64Array(c.B)];
  for (let b = 0; b < c.B; b++) {
    const t = c.t[b] as number;
    let pos = 0;
    let neg = 0;
    for (let d = 0; d < c.D; d++) {
      const i = b * c.D + d;
      const v = (c.eps[i] as number) - (c.x0[i] as number);
      pos += Math.abs(t * (o.beta * (c.vTheta[i] as number) + (1 - o.beta) * (c.vOld[i] as number) - v));
      neg += Math.abs(t * ((1 + o.beta) * (c.vOld[i] as number) - o.beta * (c.vTheta[i] as number) - v));
    }
    (w[0] as Float64Array)[b] = Math.max(pos / c.D, 1e-5);
    (w[1] as Float64Array)[b] = Math.max(neg / c.D, 1e-5);
  }
  return w;
}

// Central differences of the float64 reference with the weights frozen.
function referenceGrad(c: Case, o: RefOptions): Float64Array {
  const weights = referenceWeights(c, o);
  const grad = new Float64Array(c.vTheta.length);
  const h = 1e-6;
  for (let i = 0; i < grad.length; i++) {
    const plus = Float64Array.from(c.vTheta);
    const minus = Float64Array.from(c.vTheta);
    plus[i] = (plus[i] as number) + h;
    minus[i] = (minus[i] as number) - h;
    grad[i] = (referenceLoss(c, plus, o, weights) - referenceLoss(c, minus, o, weights)) / (2 * h);
  }
  return grad;
}

// Random float32-representable inputs (so that both sides see the same numbers).
function randomCase(B: number, D: number, seed: number, rValues?: number[]): Case {
  const draw = (n: number, stream: number, scale = 1) =>
    Float64Array.from(Tensor.randn([n], { seed, stream }).storage, (v) => Math.fround(v * scale));
  const u = Tensor.rand([2 * B], { seed, stream: 30 }).storage;
  const t = Float64Array.from({ length: B }, (_, b) => Math.fround(0.02 + 0.98 * (u[b] as number)));
  const r = Float64Array.from({ length: B }, (_, b) =>
    Math.fround(rValues?.[b % rValues.length] ?? (u[B + b] as number)),
  );
  const vOld = draw(B * D, 21);
  // v_θ near v_old, as during training.
  const vTheta = Float64Array.from(draw(B * D, 22, 0.3), (v, i) => Math.fround(v + (vOld[i] as number)));
  return { vTheta, vOld, vRef: draw(B * D, 23), x0: draw(B * D, 24), eps: draw(B * D, 25), t, r, B, D };
}

function ourLoss(c: Case, o: RefOptions) {
  const f32 = (a: Float64Array, shape: number[]) => Tensor.from(Float32Array.from(a), shape);
  const shape = [c.B, c.D];
  return nftLoss(
    {
      vTheta: f32(c.vTheta, shape),
      vOld: f32(c.vOld, shape),
      ...(o.klCoef > 0 ? { vRef: f32(c.vRef, shape) } : {}),
      x0: f32(c.x0, shape),
      eps: f32(c.eps, shape),
      t: f32(c.t, [c.B]),
      r: f32(c.r, [c.B]),
    },
    { beta: o.beta, adaptive: o.adaptive, klCoef: o.klCoef, positiveOnly: o.positiveOnly ?? false },
  );
}

describe('nftLoss', () => {
  it('matches a float64 re-computation of docs/algorithms.md §2.3 and its finite-difference gradient', () => {
    const shapes = [
      [1, 2],
      [7, 5],
      [33, 3],
    ] as const;
    let seed = 1;
    for (const [B, D] of shapes) {
      for (const adaptive of [true, false]) {
        for (const beta of [1, 0.1, 2.5]) {
          for (const klCoef of [0, 0.3]) {
            const c = randomCase(B, D, seed++, [0, 0.5, 1, 0.8]);
            const o = { beta, adaptive, klCoef };
            const { loss, grad } = ourLoss(c, o);
            const what = `B ${B} D ${D} adaptive ${adaptive} β ${beta} kl ${klCoef}`;
            expect(
              Math.abs(loss - referenceLoss(c, c.vTheta, o)) / Math.abs(referenceLoss(c, c.vTheta, o)),
              what,
            ).toBeLessThan(1e-5);
            expect(relativeError(grad.storage, referenceGrad(c, o)), what).toBeLessThan(1e-5);
          }
        }
      }
    }
  });

  it('matches the official training loop written in PyTorch (float64 autograd)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dnft-nft-oracle-'));
    const cases: { name: string; c: Case; o: RefOptions }[] = [];
    let seed = 100;
    for (const [B, D] of [
      [1, 2],
      [7, 5],
      [33, 768],
    ] as const) {
      for (const adaptive of [true, false]) {
        for (const [beta, klCoef, positiveOnly] of [
          [1, 0, false],
          [0.1, 1e-4, false],
          [0.1, 1e-4, true],
        ] as const) {
          cases.push({
            name: `c${cases.length}`,
            c: randomCase(B, D, seed++, [0, 0.5, 1, 0.3]),
            o: { beta, adaptive, klCoef, positiveOnly },
          });
        }
      }
    }
    const tensors: Record<string, SafeTensor> = {};
    const f32 = (a: ArrayLike<number>, shape: number[]): SafeTensor => ({
      dtype: 'F32',
      shape,
      data: Float32Array.from(a),
    });
    for (const { name, c } of cases) {
      // x_t in float32 from x0 and ε, as the trainer's interpolation forms it.
      const xt = Float32Array.from(c.x0, (x0, i) => {
        const t = c.t[Math.floor(i / c.D)] as number;
        return (1 - t) * x0 + t * (c.eps[i] as number);
      });
      Object.assign(tensors, {
        [`${name}.vTheta`]: f32(c.vTheta, [c.B, c.D]),
        [`${name}.vOld`]: f32(c.vOld, [c.B, c.D]),
        [`${name}.vRef`]: f32(c.vRef, [c.B, c.D]),
        [`${name}.xt`]: f32(xt, [c.B, c.D]),
        [`${name}.x0`]: f32(c.x0, [c.B, c.D]),
        [`${name}.t`]: f32(c.t, [c.B]),
        [`${name}.r`]: f32(c.r, [c.B]),
      });
    }
    const meta = cases.map(({ name, o }) => ({
      name,
      beta: o.beta,
      advClipMax: 5,
      adaptive: o.adaptive,
      klCoef: o.klCoef,
      positiveOnly: o.positiveOnly ?? false,
    }));
    await writeSafetensorsFile(join(dir, 'in.safetensors'), tensors, { cases: JSON.stringify(meta) });
    const run = spawnSync(
      '/usr/bin/python3',
      ['reference/nft_loss.py', join(dir, 'in.safetensors'), join(dir, 'out.safetensors')],
      {
        encoding: 'utf8',
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const out = (await readSafetensorsFile(join(dir, 'out.safetensors'))).tensors;
    rmSync(dir, { recursive: true, force: true });
    for (const { name, c, o } of cases) {
      const ours = ourLoss(c, o);
      const loss = Number((out[`${name}.loss`]?.data as Float64Array | undefined)?.[0]);
      // x_t − x0 and ε − x0 differ by float32 rounding over t: a few 1e-6 relative at the smallest t.
      expect(Math.abs(ours.loss - loss) / Math.abs(loss), `${name} ${JSON.stringify(o)}`).toBeLessThan(2e-5);
      expect(relativeError(ours.grad.storage, out[`${name}.grad`]?.data as Float64Array), name).toBeLessThan(1e-4);
    }
  });

  it('keeps only r·L+ in the positive-only ablation', () => {
    const c = randomCase(9, 4, 40);
    for (const adaptive of [true, false]) {
      const o = { beta: 1, adaptive, klCoef: 0, positiveOnly: true };
      const { loss, grad } = ourLoss(c, o);
      expect(Math.abs(loss - referenceLoss(c, c.vTheta, o)) / referenceLoss(c, c.vTheta, o)).toBeLessThan(1e-5);
      expect(relativeError(grad.storage, referenceGrad(c, o))).toBeLessThan(1e-5);
    }
  });

  it('at v_θ = v_old has the velocity-space gradient 2·clip(A)·(v_old − v)/D of docs/algorithms.md §2.5', () => {
    const c = randomCase(12, 6, 41);
    c.vTheta = Float64Array.from(c.vOld);
    const advantages = Array.from({ length: 12 }, (_, b) => -7 + 1.3 * b);
    c.r = Float64Array.from(advantages, (a) => Math.fround(0.5 + Math.max(-5, Math.min(5, a)) / 10));
    for (const beta of [1, 0.1]) {
      const { grad } = ourLoss(c, { beta, adaptive: false, klCoef: 0 });
      const expected = new Float64Array(c.vOld.length);
      for (let b = 0; b < c.B; b++) {
        // r was rounded to float32: recover clip(A) from it, then the batch mean's 1/B.
        const clipped = 10 * ((c.r[b] as number) - 0.5);
        for (let d = 0; d < c.D; d++) {
          const i = b * c.D + d;
          const v = (c.eps[i] as number) - (c.x0[i] as number);
          expected[i] = (2 * clipped * ((c.vOld[i] as number) - v)) / c.D / c.B;
        }
      }
      expect(relativeError(grad.storage, expected)).toBeLessThan(1e-5);
    }
  });

  it('rejects bad inputs with errors that name them', () => {
    const c = randomCase(3, 2, 42);
    const base = {
      vTheta: Tensor.from(Float32Array.from(c.vTheta), [3, 2]),
      vOld: Tensor.from(Float32Array.from(c.vOld), [3, 2]),
      x0: Tensor.from(Float32Array.from(c.x0), [3, 2]),
      eps: Tensor.from(Float32Array.from(c.eps), [3, 2]),
      t: Tensor.from([0.5, 0.2, 1], [3]),
      r: Tensor.from([0, 0.5, 1], [3]),
    };
    expect(() => nftLoss({ ...base, vOld: Tensor.zeros([3, 3]) })).toThrow(/vOld must have shape \[3, 2\]/);
    expect(() => nftLoss({ ...base, t: Tensor.from([0.5, 0, 1], [3]) })).toThrow(/t must be in \(0, 1\]/);
    expect(() => nftLoss({ ...base, r: Tensor.from([0.5, 1.5, 1], [3]) })).toThrow(/r must be in \[0, 1\]/);
    expect(() => nftLoss({ ...base, x0: Tensor.from([0, Number.NaN, 0, 0, 0, 0], [3, 2]) })).toThrow(
      /x0 contains a non-finite/,
    );
    expect(() => nftLoss(base, { beta: 0 })).toThrow(RangeError);
    expect(() => nftLoss(base, { klCoef: 1 })).toThrow(/vRef is required/);
    expect(() => nftLoss(base, { betta: 1 } as object)).toThrow(/unknown option 'betta'/);
    expect(() => nftLoss(base, { adaptive: 'yes' as unknown as boolean })).toThrow(TypeError);
  });
});

describe('optimalityProbability', () => {
  it('maps rewards to r as the official code does (global std, clip at ±5)', () => {
    // Groups a: [1, 2, 3], b: [5, 5], c: [0] (one sample); global population std of all six rewards.
    const rewards = [1, 2, 3, 5, 5, 0];
    const mean = rewards.reduce((s, x) => s + x, 0) / 6;
    const std = Math.sqrt(rewards.reduce((s, x) => s + (x - mean) ** 2, 0) / 6);
    const { r, advantages } = optimalityProbability(rewards, ['a', 'a', 'a', 'b', 'b', 'c']);
    const expectedA = [-1 / (std + 1e-4), 0, 1 / (std + 1e-4), 0, 0, 0];
    for (let i = 0; i < 6; i++) {
      expect(advantages[i]).toBeCloseTo(expectedA[i] as number, 12);
      expect(r[i]).toBeCloseTo(0.5 + (expectedA[i] as number) / 10, 6);
    }
    // Equal rewards and a one-sample group give r = 1/2.
    expect([r[3], r[4], r[5]]).toEqual([0.5, 0.5, 0.5]);
  });

  it('clips large advantages and supports per-group std', () => {
    const rewards = [0, 0, 0, 0, 0, 0, 0, 0, 0, 100];
    const { r } = optimalityProbability(rewards, new Array(10).fill(0));
    // A = (100 − 10)/30 = 3 → r = 0.8 for the outlier; the others (−1/3) → 0.4667.
    expect(r[9]).toBeCloseTo(0.5 + 3 / (1 + 1e-4 / 30) / 10, 5);
    const clipped = optimalityProbability([0, 10], [0, 0], { advClipMax: 0.5 });
    expect(Array.from(clipped.r)).toEqual([0, 1]);
    const perGroup = optimalityProbability([1, 3, 10, 30], [0, 0, 1, 1], { std: 'group' });
    expect(perGroup.advantages[0]).toBeCloseTo(-1 / (1 + 1e-4), 10);
    expect(perGroup.advantages[2]).toBeCloseTo(-10 / (10 + 1e-4), 10);
  });

  it('rejects NaN rewards, mismatched ids and unknown options', () => {
    expect(() => optimalityProbability([1, Number.NaN], [0, 0])).toThrow(/rewards\[1\] is not a finite number/);
    expect(() => optimalityProbability([1, 2], [0])).toThrow(/groupIds has 1 entries for 2 rewards/);
    expect(() => optimalityProbability([], [])).toThrow(TypeError);
    expect(() => optimalityProbability([1], [0], { std: 'local' as 'global' })).toThrow(RangeError);
    expect(() => optimalityProbability([1], [0], { clip: 2 } as object)).toThrow(/unknown option 'clip'/);
  });
});
