// interpolate, the forward process of the trainers' draws: x_t and the velocity target with ε from Philox stream 2,
// and its argument checks.
import { describe, expect, it } from 'vitest';
import { interpolate, Tensor } from '../lib/index.js';

describe('interpolate', () => {
  it('computes x_t = (1 - t) x0 + t eps and v = eps - x0 with eps from Philox stream 2', () => {
    const B = 5;
    const D = 3;
    const x0 = Tensor.randn([B, D], { seed: 1 });
    const t = Tensor.from([0, 0.25, 0.5, 0.9, 1]);
    const { xt, target } = interpolate(x0, t, { seed: 42, offset: 8 });
    const eps = Tensor.randn([B, D], { seed: 42, stream: 2, offset: 8 }).storage;
    for (let b = 0; b < B; b++) {
      const tb = t.storage[b] as number;
      for (let d = 0; d < D; d++) {
        const i = b * D + d;
        const x = x0.storage[i] as number;
        const e = eps[i] as number;
        expect(xt.storage[i]).toBeCloseTo((1 - tb) * x + tb * e, 5);
        expect(target.storage[i]).toBeCloseTo(e - x, 5);
      }
    }
  });

  it('rejects mismatched shapes and t outside [0, 1]', () => {
    const x0 = Tensor.zeros([2, 3]);
    expect(() => interpolate(x0, Tensor.from([0.5]), { seed: 1 })).toThrow(RangeError);
    expect(() => interpolate(x0, Tensor.from([0.5, 1.5]), { seed: 1 })).toThrow(/\[0, 1\]/);
  });
});
