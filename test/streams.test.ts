// lib/core/random.ts against the native core's stream numbers (native/core/math/philox.h), and the draws that use them.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as random from '../lib/core/random.js';
import { interpolate, Tensor } from '../lib/index.js';

// The stream numbers of lib/core/random.ts (its other export is the generator itself).
const streams = Object.fromEntries(Object.entries(random).filter(([name]) => name.endsWith('_STREAM'))) as Record<
  string,
  number
>;

// kStreamSample ↔ SAMPLE_STREAM, kStreamUser ↔ USER_STREAM, …
function nativeStreams(): Record<string, number> {
  const header = readFileSync('native/core/math/philox.h', 'utf8');
  const found: Record<string, number> = {};
  for (const [, name, value] of header.matchAll(/\bkStream(\w+)\s*=\s*(\d+)/g)) {
    found[`${(name as string).toUpperCase()}_STREAM`] = Number(value);
  }
  return found;
}

describe('Philox streams', () => {
  it('match the numbers of native/core/math/philox.h, one by one', () => {
    const native = nativeStreams();
    expect(Object.keys(native).length).toBeGreaterThanOrEqual(8);
    const ours = streams;
    for (const [name, value] of Object.entries(native)) expect(ours[name], name).toBe(value);
  });

  it('are all distinct, and the tasks draw from user streams', () => {
    const values = Object.values(streams);
    expect(new Set(values).size).toBe(values.length);
    const native = new Set(Object.values(nativeStreams()));
    for (const [name, value] of Object.entries(streams)) {
      if (!native.has(value)) expect(value, name).toBeGreaterThanOrEqual(random.USER_STREAM);
    }
  });

  it('are the ones the draws use: Tensor.randn by default, interpolation noise', () => {
    const byDefault = Tensor.randn([6], { seed: 9 }).storage;
    expect(Array.from(byDefault)).toEqual(
      Array.from(Tensor.randn([6], { seed: 9, stream: random.USER_STREAM }).storage),
    );
    const x0 = Tensor.zeros([2, 3]);
    const { target } = interpolate(x0, Tensor.from([1, 1]), { seed: 4 });
    const eps = Tensor.randn([2, 3], { seed: 4, stream: random.NOISE_STREAM }).storage;
    expect(Array.from(target.storage)).toEqual(Array.from(eps));
  });
});
