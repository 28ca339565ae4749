// Tensor (shapes, int32 tokens, copies, dispose) and the Philox4x32-10 draws: the Random123 known answers, seeded
// streams, slices drawn on their own, normals and uniforms.
import { describe, expect, it } from 'vitest';
import { DisposedError, liveTensors, philox4x32, Tensor } from '../lib/index.js';

describe('Tensor', () => {
  it('wraps typed arrays with a shape and copies number arrays', () => {
    const data = new Float32Array([1, 2, 3, 4, 5, 6]);
    const t = Tensor.from(data, [2, 3]);
    expect(t.shape).toEqual([2, 3]);
    expect(t.dtype).toBe('float32');
    expect(t.device).toBe('cpu');
    expect(t.size).toBe(6);
    data[0] = 9;
    expect(t.toArray()[0]).toBe(9);
    const copy = Tensor.from([1, 2], [2]);
    expect(copy.storage).toBeInstanceOf(Float32Array);
    expect(() => Object.assign(t.shape, { 0: 5 })).toThrow();
  });

  it('rejects a shape that does not match the data', () => {
    expect(() => Tensor.from(new Float32Array(5), [2, 3])).toThrow(/needs 6/);
    expect(() => Tensor.from(new Float32Array(6), [2, -3])).toThrow(RangeError);
    expect(() => Tensor.from(new Float32Array(6), [2, 1.5])).toThrow(RangeError);
    expect(() => Tensor.from('abc' as unknown as number[])).toThrow(TypeError);
  });

  it('holds int32 condition tokens', () => {
    const t = Tensor.fromInt32([1, 2, 3, 4], [2, 2]);
    expect(t.dtype).toBe('int32');
    expect(t.storage).toBeInstanceOf(Int32Array);
    expect(() => Tensor.fromInt32([1.5])).toThrow(RangeError);
    expect(Tensor.zeros([3], 'int32').dtype).toBe('int32');
  });

  it('reads back copies', async () => {
    const t = Tensor.from([1, 2, 3]);
    const copy = await t.data();
    copy[0] = 100;
    expect(t.toArray()).toEqual([1, 2, 3]);
    expect(t.dataSync()).toEqual(new Float32Array([1, 2, 3]));
    expect(t.clone().toArray()).toEqual([1, 2, 3]);
    expect(t.reshape([3, 1]).shape).toEqual([3, 1]);
  });

  it('is unusable after dispose, which is idempotent and aliased to Symbol.dispose', () => {
    const before = liveTensors();
    const t = Tensor.zeros([4]);
    expect(liveTensors()).toBe(before + 1);
    t[Symbol.dispose]();
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(liveTensors()).toBe(before);
    expect(() => t.toArray()).toThrow(DisposedError);
    expect(() => t.storage).toThrow(/disposed/);
    expect(String(t)).toContain('disposed');
  });
});

describe('Philox4x32-10', () => {
  it('matches the Random123 known-answer vectors', () => {
    const hex = (words: number[]) => words.map((w) => w.toString(16).padStart(8, '0'));
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
    expect(hex(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toEqual([
      '408f276d',
      '41c83b0e',
      'a20bc7c6',
      '6d5451fd',
    ]);
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toEqual([
      'd16cfe09',
      '94fdcceb',
      '5001e420',
      '24126ea1',
    ]);
  });

  it('gives identical tensors for one seed, different ones for other seeds and streams', () => {
    const a = Tensor.randn([1000], { seed: 7 }).toArray();
    expect(Tensor.randn([1000], { seed: 7 }).toArray()).toEqual(a);
    expect(Tensor.randn([1000], { seed: 8 }).toArray()).not.toEqual(a);
    expect(Tensor.randn([1000], { seed: 7, stream: 17 }).toArray()).not.toEqual(a);
    expect(Tensor.randn([1000], { seed: 7n }).toArray()).toEqual(a);
  });

  it('lets any slice of a stream be drawn on its own', () => {
    const whole = Tensor.randn([64], { seed: 3 }).toArray();
    expect(Tensor.randn([13], { seed: 3, offset: 37 }).toArray()).toEqual(whole.slice(37, 50));
  });

  it('draws standard normals and uniforms in (0, 1)', () => {
    const n = Tensor.randn([200_000], { seed: 1 }).storage;
    const u = Tensor.rand([200_000], { seed: 1 }).storage;
    const mean = n.reduce((s, v) => s + v, 0) / n.length;
    const variance = n.reduce((s, v) => s + (v - mean) ** 2, 0) / n.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.01);
    expect(u.every((v) => v > 0 && v < 1)).toBe(true);
    expect(Math.abs(u.reduce((s, v) => s + v, 0) / u.length - 0.5)).toBeLessThan(0.005);
  });
});
