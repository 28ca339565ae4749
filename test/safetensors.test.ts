// The safetensors format: encode and decode round trips against the format's rules and PyTorch's files, and the
// validation that refuses truncated, oversized or inconsistent input.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsFile,
  type SafeTensor,
  SafetensorsError,
  writeSafetensorsFile,
} from '../lib/core/safetensors.js';
import { tempFolder } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const dir = tempFolder('safetensors');

/** Raw safetensors bytes: the 8-byte length, the header exactly as given (no padding) and the data. */
function raw(header: string | object, data: Uint8Array | number = 0, declaredLength?: number | bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredLength ?? json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

/** The header length and parsed header of encoded bytes. */
function headerOf(bytes: Uint8Array): { n: number; text: string; json: Record<string, unknown> } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const text = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
  return { n, text, json: JSON.parse(text) as Record<string, unknown> };
}

/** Asserts that decoding fails with a SafetensorsError whose message names the source and matches `pattern`. */
function expectRejected(bytes: Uint8Array, pattern: RegExp): void {
  let caught: unknown;
  try {
    decodeSafetensors(bytes, 'bad.safetensors');
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  const error = caught as SafetensorsError;
  expect(error.name).toBe('SafetensorsError');
  expect(error.message).toMatch(/^bad\.safetensors: /);
  expect(error.message).toMatch(pattern);
}

/** A tensor's elements as a plain array (numbers, or bigints for I64). */
function values(t: SafeTensor | undefined): (number | bigint)[] {
  expect(t).toBeDefined();
  return Array.from((t as SafeTensor).data as ArrayLike<number | bigint>);
}

function sample(): Record<string, SafeTensor> {
  return {
    'layer.weight': { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1.5, -2, 3.25, 0, -0, 1e-30]) },
    'layer.bias': { dtype: 'F32', shape: [3], data: Float32Array.from([Number.NaN, Infinity, -Infinity]) },
    tokens: { dtype: 'I32', shape: [2, 2], data: Int32Array.from([1, -2, 2147483647, -2147483648]) },
    precise: { dtype: 'F64', shape: [2, 1, 2], data: Float64Array.from([Math.PI, -Math.E, 1e300, 5e-324]) },
    step: { dtype: 'I64', shape: [3], data: BigInt64Array.from([0n, -(2n ** 63n), 2n ** 63n - 1n]) },
    mask: { dtype: 'U8', shape: [5], data: Uint8Array.from([0, 1, 127, 128, 255]) },
    scalar: { dtype: 'F32', shape: [], data: Float32Array.from([42.5]) },
    'scalar.count': { dtype: 'I64', shape: [], data: BigInt64Array.from([7n]) },
    empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    'empty.ids': { dtype: 'I32', shape: [4, 0], data: new Int32Array(0) },
    'empty.bytes': { dtype: 'U8', shape: [0], data: new Uint8Array(0) },
  };
}

describe('safetensors encode/decode', () => {
  it('round-trips every dtype, rank-0 and zero-size tensors, and metadata', () => {
    const tensors = sample();
    const metadata = { format: 'pt', config: '{"width":24}', unicode: 'héllo ✓ 𝄞', empty: '' };
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata));
    expect(decoded.metadata).toEqual(metadata);
    expect(Object.keys(decoded.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const got = decoded.tensors[name] as SafeTensor;
      expect(got.dtype, name).toBe(t.dtype);
      expect(got.shape, name).toEqual(t.shape);
      expect(got.data.constructor, name).toBe(t.data.constructor);
      expect(got.data, name).toEqual(t.data);
    }
    // -0 and NaN survive bit-exactly.
    expect(Object.is((decoded.tensors['layer.weight'] as SafeTensor).data[4], -0)).toBe(true);
    expect(Number.isNaN((decoded.tensors['layer.bias'] as SafeTensor).data[0])).toBe(true);
  });

  it('round-trips without metadata and with no tensors at all', () => {
    expect(decodeSafetensors(encodeSafetensors({}))).toEqual({ tensors: {}, metadata: {} });
    const bytes = encodeSafetensors({ x: { dtype: 'U8', shape: [1], data: Uint8Array.of(9) } });
    expect(headerOf(bytes).json).not.toHaveProperty('__metadata__');
    expect(decodeSafetensors(bytes).metadata).toEqual({});
  });

  it('pads the header with spaces to a multiple of 8 and lays out tensors by alignment, then name', () => {
    for (let extra = 0; extra < 10; extra++) {
      const bytes = encodeSafetensors({
        ['t'.repeat(extra + 1)]: { dtype: 'U8', shape: [3], data: Uint8Array.of(1, 2, 3) },
      });
      const { n, text } = headerOf(bytes);
      expect(n % 8).toBe(0);
      expect(bytes.length).toBe(8 + n + 3);
      expect(text.trimEnd().endsWith('}')).toBe(true);
      expect(text.slice(text.trimEnd().length)).toMatch(/^ {0,7}$/);
      expect(Array.from(bytes.subarray(8 + n))).toEqual([1, 2, 3]);
    }
    const bytes = encodeSafetensors(sample(), { a: 'b' });
    const { n, json } = headerOf(bytes);
    expect(n % 8).toBe(0);
    const entries = Object.entries(json)
      .filter(([name]) => name !== '__metadata__')
      .map(([name, v]) => ({ name, ...(v as { dtype: string; data_offsets: [number, number] }) }))
      .sort((a, b) => a.data_offsets[0] - b.data_offsets[0] || a.data_offsets[1] - b.data_offsets[1]);
    const size = { F64: 8, I64: 8, F32: 4, I32: 4, U8: 1 } as Record<string, number>;
    const order = [...entries].sort(
      (a, b) => (size[b.dtype] as number) - (size[a.dtype] as number) || (a.name < b.name ? -1 : 1),
    );
    // Zero-size tensors share offsets with a neighbour, so compare the dtype/name order of the nonempty ones.
    const nonEmpty = (list: typeof entries) =>
      list.filter((e) => e.data_offsets[1] > e.data_offsets[0]).map((e) => e.name);
    expect(nonEmpty(entries)).toEqual(nonEmpty(order));
    let expected = 0;
    for (const e of order) {
      expect(e.data_offsets[0], e.name).toBe(expected);
      expect((8 + n + e.data_offsets[0]) % (size[e.dtype] as number), e.name).toBe(0);
      expected = e.data_offsets[1];
    }
    expect(bytes.length).toBe(8 + n + expected);
  });

  it('decodes the golden example from the safetensors documentation (unpadded 60-byte header)', () => {
    const header = '{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}';
    expect(header.length).toBe(60);
    const bytes = new Uint8Array([0x3c, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from(header, 'utf8'), ...new Uint8Array(16)]);
    expect(decodeSafetensors(bytes)).toEqual({
      tensors: { test: { dtype: 'I32', shape: [2, 2], data: new Int32Array(4) } },
      metadata: {},
    });
    const ints = new Uint8Array(Int32Array.from([1, -2, 3, 400000]).buffer);
    const withValues = raw(header, ints);
    expect(values(decodeSafetensors(withValues).tensors.test)).toEqual([1, -2, 3, 400000]);
  });

  it('accepts any JSON whitespace in the header and tensors in any key order', () => {
    const data = new Uint8Array(Float32Array.from([1, 2, 3]).buffer);
    const header =
      '\n { "b" : {"dtype":"F32","shape":[1],"data_offsets":[8,12]},\t"__metadata__":{"k":"v"},' +
      '"a":{"data_offsets":[0,8],"shape":[2],"dtype":"F32"} }\n\n   ';
    const { tensors, metadata } = decodeSafetensors(raw(header, data));
    expect(metadata).toEqual({ k: 'v' });
    expect(values(tensors.a)).toEqual([1, 2]);
    expect(values(tensors.b)).toEqual([3]);
  });

  it('decodes from an unaligned view of a pooled buffer and returns copies that do not alias it', () => {
    const encoded = encodeSafetensors(sample());
    for (const shift of [1, 2, 3, 5]) {
      const backing = new Uint8Array(encoded.length + 16);
      backing.set(encoded, shift);
      const view = backing.subarray(shift, shift + encoded.length);
      const buffer = Buffer.from(backing.buffer, shift, encoded.length);
      for (const input of [view, buffer]) {
        backing.set(encoded, shift);
        const { tensors } = decodeSafetensors(input);
        expect(tensors).toEqual(decodeSafetensors(encoded).tensors);
        backing.fill(0xff);
        expect(values(tensors['layer.weight']).slice(0, 3)).toEqual([1.5, -2, 3.25]);
        expect((tensors.step as SafeTensor).data[2]).toBe(2n ** 63n - 1n);
        expect((tensors.mask as SafeTensor).data[0]).toBe(0);
      }
    }
    // Node's small Buffers come from a shared pool at arbitrary offsets.
    const pooled = Buffer.from(encodeSafetensors({ x: { dtype: 'F64', shape: [2], data: Float64Array.of(1.25, -8) } }));
    expect(values(decodeSafetensors(pooled).tensors.x)).toEqual([1.25, -8]);
  });

  it('encodes only the bytes of a subarray view and never aliases the input', () => {
    const backing = Float32Array.from([9, 1, 2, 3, 9]);
    const view = backing.subarray(1, 4);
    const bytes = encodeSafetensors({ v: { dtype: 'F32', shape: [3], data: view } });
    backing.fill(0);
    expect(values(decodeSafetensors(bytes).tensors.v)).toEqual([1, 2, 3]);
  });

  it('reads F16 and BF16 tensors widened to F32', () => {
    // F16: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal), -inf; BF16: 1, -3, 0.15625
    const half = Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0xfc00]);
    const bf16 = Uint16Array.from([0x3f80, 0xc040, 0x3e20]);
    const data = new Uint8Array(18);
    data.set(new Uint8Array(half.buffer), 0);
    data.set(new Uint8Array(bf16.buffer), 12);
    const bytes = raw(
      {
        h: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] },
        b: { dtype: 'BF16', shape: [3], data_offsets: [12, 18] },
      },
      data,
    );
    const { tensors } = decodeSafetensors(bytes);
    expect(tensors.h?.dtype).toBe('F32');
    expect(tensors.h?.shape).toEqual([2, 3]);
    expect(tensors.h?.data).toBeInstanceOf(Float32Array);
    expect(Array.from(tensors.h?.data as Float32Array)).toEqual([1, -2, 0.5, 65504, 2 ** -24, -Infinity]);
    expect(Array.from(tensors.b?.data as Float32Array)).toEqual([1, -3, 0.15625]);
  });

  it('keeps a tensor named __proto__ as an ordinary entry', () => {
    const bytes = raw('{"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', Uint8Array.of(7));
    const { tensors } = decodeSafetensors(bytes);
    expect(Object.getPrototypeOf(tensors)).toBe(Object.prototype);
    expect(Object.keys(tensors)).toEqual(['__proto__']);
    expect(Array.from(Object.getOwnPropertyDescriptor(tensors, '__proto__')?.value.data)).toEqual([7]);
  });
});

describe('safetensors validation', () => {
  const entry = (dtype: string, shape: unknown[], offsets: unknown) => ({ dtype, shape, data_offsets: offsets });

  it('rejects truncated input', () => {
    expectRejected(new Uint8Array(0), /truncated: 0 bytes/);
    expectRejected(new Uint8Array(7), /truncated: 7 bytes/);
    const good = raw({ x: entry('F32', [2], [0, 8]) }, 8);
    expectRejected(good.subarray(0, 20), /truncated: the header length says \d+ bytes but only 12 follow/);
    expectRejected(good.subarray(0, good.length - 1), /truncated: tensor 'x' ends at data byte 8 .* only 7/);
    expectRejected(raw({ x: entry('F32', [2], [0, 8]) }, 0), /truncated: tensor 'x'.*only 0/);
  });

  it('rejects a header length above 100 MB', () => {
    expectRejected(raw('{}', 0, 100_000_001), /header length 100000001 exceeds the limit of 100000000/);
    expectRejected(raw('{}', 0, 2n ** 64n - 1n), /header length 18446744073709551615 exceeds/);
  });

  it('rejects trailing bytes after the data', () => {
    expectRejected(raw({ x: entry('U8', [2], [0, 2]) }, 3), /1 trailing bytes after the last tensor/);
    expectRejected(raw({}, 4), /4 trailing bytes/);
  });

  it('rejects a header that is not valid UTF-8 JSON', () => {
    expectRejected(raw('{"x": '), /not valid JSON/);
    expectRejected(raw(''), /not valid JSON/);
    expectRejected(raw("{'x': 1}"), /not valid JSON/);
    const bad = raw('{"xx":{}}');
    bad[10] = 0xff;
    expectRejected(bad, /not valid UTF-8/);
  });

  it('rejects a header that is not a JSON object', () => {
    expectRejected(raw('[]'), /not a JSON object \(got an array\)/);
    expectRejected(raw('null'), /not a JSON object \(got null\)/);
    expectRejected(raw('42'), /not a JSON object \(got number\)/);
    expectRejected(raw('"text"'), /not a JSON object \(got string\)/);
  });

  it('rejects duplicate keys', () => {
    const x = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}';
    expectRejected(raw(`{"x":${x},"x":${x}}`, 1), /duplicate key 'x' in the header/);
    expectRejected(raw(`{"__metadata__":{},"__metadata__":{}}`), /duplicate key '__metadata__' in the header/);
    expectRejected(raw(`{"__metadata__":{"a":"1","a":"2"}}`), /duplicate key 'a' in '__metadata__'/);
    expectRejected(
      raw('{"x":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}}', 1),
      /duplicate key 'dtype' in 'x'/,
    );
    // Escapes spelling the same key are still the same key; keys inside strings and arrays are not keys.
    expectRejected(raw(`{"x":${x},"\\u0078":${x}}`, 1), /duplicate key 'x'/);
    const fine = raw(`{"__metadata__":{"a":"{\\"a\\":1, \\"a\\":2}","b":"[\\"a\\"]"},"a":${x}}`, 1);
    expect(decodeSafetensors(fine).metadata).toEqual({ a: '{"a":1, "a":2}', b: '["a"]' });
  });

  it('rejects bad metadata', () => {
    expectRejected(raw({ __metadata__: { a: 1 } }), /'__metadata__' entry 'a' is not a string \(got 1\)/);
    expectRejected(raw({ __metadata__: { a: null } }), /'__metadata__' entry 'a' is not a string/);
    expectRejected(raw({ __metadata__: { a: { b: 'c' } } }), /entry 'a' is not a string/);
    expectRejected(raw({ __metadata__: ['a'] }), /'__metadata__' is not an object/);
    expectRejected(raw({ __metadata__: 'a' }), /'__metadata__' is not an object/);
  });

  it('rejects unknown dtypes', () => {
    expectRejected(raw({ x: entry('F8', [1], [0, 1]) }, 1), /tensor 'x': unsupported dtype "F8"/);
    expectRejected(raw({ x: entry('f32', [1], [0, 4]) }, 4), /tensor 'x': unsupported dtype "f32"/);
    expectRejected(raw({ x: entry('toString', [1], [0, 4]) }, 4), /tensor 'x': unsupported dtype "toString"/);
    expectRejected(raw({ x: { shape: [1], data_offsets: [0, 4] } }, 4), /tensor 'x': unsupported dtype undefined/);
  });

  it('rejects malformed tensor entries', () => {
    expectRejected(raw({ x: 5 }), /tensor 'x': entry is not an object/);
    expectRejected(raw({ x: [1] }), /tensor 'x': entry is not an object/);
    expectRejected(raw({ x: { dtype: 'U8', data_offsets: [0, 1] } }, 1), /tensor 'x': shape is not an array/);
    expectRejected(raw({ x: entry('U8', [1], undefined) }, 1), /tensor 'x': data_offsets undefined is not two/);
    expectRejected(raw({ x: entry('U8', [1], [0, 1, 2]) }, 1), /tensor 'x': data_offsets \[0,1,2\] is not two/);
    expectRejected(raw({ x: entry('U8', [1], [-1, 0]) }, 1), /tensor 'x': data_offsets \[-1,0\] is not two non-neg/);
    expectRejected(raw({ x: entry('U8', [1], [0, 1.5]) }, 1), /tensor 'x': data_offsets \[0,1.5\]/);
  });

  it('rejects negative, fractional and non-numeric shape entries', () => {
    expectRejected(
      raw({ x: entry('U8', [-1], [0, 0]) }),
      /tensor 'x': shape \[-1\] has -1, not a non-negative integer/,
    );
    expectRejected(raw({ x: entry('U8', [2, 0.5], [0, 1]) }, 1), /tensor 'x': shape \[2, 0\.5\] has 0\.5/);
    expectRejected(raw({ x: entry('U8', ['2'], [0, 2]) }, 2), /tensor 'x': shape \["2"\] has "2"/);
    expectRejected(raw({ x: entry('U8', [null], [0, 1]) }, 1), /tensor 'x': shape \[null\] has null/);
  });

  it('rejects offsets whose size does not match the shape', () => {
    expectRejected(
      raw({ x: entry('F32', [2, 2], [0, 12]) }, 12),
      /tensor 'x': data_offsets \[0, 12\] span 12 bytes but shape \[2, 2\] of F32 needs 16/,
    );
    expectRejected(raw({ x: entry('I64', [], [0, 4]) }, 4), /tensor 'x'.*shape \[\] of I64 needs 8/);
    expectRejected(raw({ x: entry('U8', [0], [0, 1]) }, 1), /tensor 'x'.*needs 0/);
    expectRejected(raw({ x: entry('U8', [2 ** 30, 2 ** 30, 2 ** 30], [0, 1]) }, 1), /tensor 'x'.*needs too many/);
  });

  it('rejects offsets that are reversed, overlap, leave gaps or do not start at 0', () => {
    expectRejected(raw({ x: entry('U8', [0], [4, 0]) }, 4), /tensor 'x': data_offsets \[4, 0\] end before they begin/);
    expectRejected(
      raw({ a: entry('F32', [2], [0, 8]), b: entry('F32', [1], [4, 8]) }, 8),
      /tensor 'b': data_offsets \[4, 8\] overlap the previous tensor, which ends at 8/,
    );
    expectRejected(
      raw({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [0, 8]) }, 16),
      /tensor '[ab]': data_offsets \[0, 8\] overlap/,
    );
    expectRejected(
      raw({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }, 12),
      /tensor 'b': data_offsets \[8, 12\] leave a gap after byte 4/,
    );
    expectRejected(
      raw({ a: entry('F32', [1], [4, 8]) }, 8),
      /tensor 'a': data_offsets \[4, 8\] leave a gap after byte 0/,
    );
    // Out-of-order keys are fine as long as the ranges tile the data section.
    const ok = raw({ b: entry('U8', [1], [2, 3]), a: entry('U8', [2], [0, 2]) }, Uint8Array.of(1, 2, 3));
    expect(Array.from(decodeSafetensors(ok).tensors.b?.data as Uint8Array)).toEqual([3]);
  });

  it('names a generic source when none is given', () => {
    expect(() => decodeSafetensors(new Uint8Array(3))).toThrow(/^safetensors: truncated/);
  });

  it('refuses to encode inconsistent tensors', () => {
    const bad = (t: Record<string, unknown>, meta?: Record<string, unknown>) => () =>
      encodeSafetensors(t as Record<string, SafeTensor>, meta as Record<string, string>);
    expect(bad({ x: { dtype: 'F32', shape: [2], data: new Float64Array(2) } })).toThrow(
      /tensor 'x': data must be a Float32Array for dtype F32/,
    );
    expect(bad({ x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } })).toThrow(
      /tensor 'x': shape \[3\] does not hold the data's 2 elements/,
    );
    expect(bad({ x: { dtype: 'F32', shape: [-2], data: new Float32Array(2) } })).toThrow(SafetensorsError);
    expect(bad({ x: { dtype: 'F16', shape: [1], data: new Float32Array(1) } })).toThrow(/unsupported dtype "F16"/);
    expect(bad({ x: { dtype: 'toString', shape: [1], data: new Float32Array(1) } })).toThrow(/unsupported dtype/);
    expect(bad({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } })).toThrow(/cannot be a tensor/);
    expect(bad({}, { a: 1 })).toThrow(/metadata 'a' must be a string, got number/);
    expect(bad({}, { a: 1 })).toThrow(SafetensorsError);
  });
});

describe('safetensors files', () => {
  it('writes atomically, leaves no temporary file and replaces an existing file whole', async () => {
    const folder = join(dir, 'atomic');
    mkdirSync(folder);
    const path = join(folder, 'model.safetensors');
    const big = { w: { dtype: 'F32' as const, shape: [1000], data: new Float32Array(1000).fill(3) } };
    await writeSafetensorsFile(path, big, { version: '1' });
    expect(readdirSync(folder)).toEqual(['model.safetensors']);
    const small = { b: { dtype: 'I32' as const, shape: [2], data: Int32Array.of(5, 6) } };
    await writeSafetensorsFile(path, small, { version: '2' });
    expect(readdirSync(folder)).toEqual(['model.safetensors']);
    expect(statSync(path).size).toBe(encodeSafetensors(small, { version: '2' }).length);
    expect(new Uint8Array(readFileSync(path))).toEqual(encodeSafetensors(small, { version: '2' }));
    expect(await readSafetensorsFile(path)).toEqual({ tensors: small, metadata: { version: '2' } });
  });

  it('concurrent writers to one path each produce a complete file', async () => {
    const folder = join(dir, 'concurrent');
    mkdirSync(folder);
    const path = join(folder, 'c.safetensors');
    const versions = Array.from({ length: 8 }, (_, i) => ({
      x: { dtype: 'F64' as const, shape: [i + 1], data: new Float64Array(i + 1).fill(i) },
    }));
    await Promise.all(versions.map((v) => writeSafetensorsFile(path, v)));
    expect(readdirSync(folder)).toEqual(['c.safetensors']);
    const { tensors } = await readSafetensorsFile(path);
    const n = (tensors.x as SafeTensor).shape[0] as number;
    expect(tensors).toEqual(versions[n - 1]);
  });

  it('removes the temporary file when the rename fails, and writes nothing for invalid tensors', async () => {
    const folder = join(dir, 'failing');
    mkdirSync(join(folder, 'target.safetensors'), { recursive: true });
    const t = { x: { dtype: 'U8' as const, shape: [1], data: Uint8Array.of(1) } };
    await expect(writeSafetensorsFile(join(folder, 'target.safetensors'), t)).rejects.toThrow();
    expect(readdirSync(folder)).toEqual(['target.safetensors']);
    const bad = { x: { dtype: 'U8' as const, shape: [2], data: Uint8Array.of(1) } };
    await expect(writeSafetensorsFile(join(folder, 'bad.safetensors'), bad)).rejects.toThrow(SafetensorsError);
    expect(readdirSync(folder)).toEqual(['target.safetensors']);
    await expect(writeSafetensorsFile(join(folder, 'no', 'such', 'dir.safetensors'), t)).rejects.toThrow(/ENOENT/);
    expect(readdirSync(folder)).toEqual(['target.safetensors']);
  });

  it('rejects a missing or corrupt file with an error naming the path', async () => {
    const missing = join(dir, 'missing.safetensors');
    await expect(readSafetensorsFile(missing)).rejects.toThrow(SafetensorsError);
    await expect(readSafetensorsFile(missing)).rejects.toThrow(`${missing}: cannot read the file (ENOENT)`);
    const corrupt = join(dir, 'corrupt.safetensors');
    const bytes = encodeSafetensors({ x: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    writeFileSync(corrupt, bytes.subarray(0, bytes.length - 2));
    await expect(readSafetensorsFile(corrupt)).rejects.toThrow(`${corrupt}: truncated: tensor 'x'`);
  });
});

// An independent implementation: Python's json/struct and torch.frombuffer, nothing else.
const PY_READ = `
import json, struct, sys, torch
path = sys.argv[1]
raw = open(path, 'rb').read()
(n,) = struct.unpack('<Q', raw[:8])
assert (8 + n) % 8 == 0, 'header not padded to 8'
header_text = raw[8:8 + n].decode('utf-8')
assert header_text.rstrip(' ').endswith('}'), 'header padded with something other than spaces'
header = json.loads(header_text)
data = raw[8 + n:]
types = {'F32': torch.float32, 'I32': torch.int32, 'F64': torch.float64, 'I64': torch.int64, 'U8': torch.uint8}
sizes = {'F32': 4, 'I32': 4, 'F64': 8, 'I64': 8, 'U8': 1}
out = {'metadata': header.pop('__metadata__', {}), 'tensors': {}}
end_max = 0
for name, info in header.items():
    b, e = info['data_offsets']
    numel = 1
    for d in info['shape']:
        numel *= d
    assert e - b == numel * sizes[info['dtype']], name
    assert (8 + n + b) % sizes[info['dtype']] == 0, name + ' misaligned'
    end_max = max(end_max, e)
    dtype = types[info['dtype']]
    t = torch.frombuffer(bytearray(data[b:e]), dtype=dtype) if e > b else torch.empty(0, dtype=dtype)
    t = t.reshape(info['shape'])
    values = t.flatten().tolist()
    if info['dtype'] in ('F32', 'F64'):
        values = [repr(float(v)) for v in values]
    else:
        values = [str(int(v)) for v in values]
    out['tensors'][name] = {'dtype': info['dtype'], 'shape': list(t.shape), 'values': values}
assert end_max == len(data), 'trailing or missing data'
print(json.dumps(out))
`;

const PY_WRITE = String.raw`
import json, struct, sys
path = sys.argv[1]
tensors = [
    ('z.f32', 'F32', [2, 2], struct.pack('<4f', 0.5, -1.25, 3e38, -0.0)),
    ('a.i64', 'I64', [3], struct.pack('<3q', -9223372036854775808, 9223372036854775807, 12345678901234)),
    ('m.u8', 'U8', [2, 1, 2], bytes([0, 255, 17, 128])),
    ('b.f64', 'F64', [], struct.pack('<d', 2.0 ** -1074)),
    ('c.i32', 'I32', [0, 5], b''),
    ('h.f16', 'F16', [3], struct.pack('<3e', 1.5, -0.25, 1024.0)),
    # BF16 is the top half of an F32 (little-endian: its last two bytes).
    ('q.bf16', 'BF16', [2], b''.join(struct.pack('<f', v)[2:] for v in (2.5, -96.0))),
    ('x.i32', 'I32', [2], struct.pack('<2i', -7, 2147483647)),
]
# Lay the data out in an order unrelated to the header's key order, without padding the header.
header, data = {'__metadata__': {'producer': 'python', 'note': 'caf\u00e9'}}, b''
for name, dtype, shape, blob in reversed(tensors):
    header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(blob)]}
    data += blob
text = json.dumps(dict(sorted(header.items())), separators=(',', ':'), ensure_ascii=False).encode('utf-8')
with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(text)) + text + data)
`;

describe.skipIf(!hasTorch)('safetensors against Python (json + struct + torch.frombuffer)', () => {
  it('python parses a file written by writeSafetensorsFile to the same values', async () => {
    const path = join(dir, 'to-python.safetensors');
    const tensors = sample();
    const metadata = { producer: 'diffusion-nft', unicode: 'ünïcødé ✓' };
    await writeSafetensorsFile(path, tensors, metadata);
    const run = spawnSync(PYTHON, ['-c', PY_READ, path], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    expect(run.status, run.stderr).toBe(0);
    const parsed = JSON.parse(run.stdout) as {
      metadata: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; values: string[] }>;
    };
    expect(parsed.metadata).toEqual(metadata);
    expect(Object.keys(parsed.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const py = parsed.tensors[name] as { dtype: string; shape: number[]; values: string[] };
      expect(py.dtype, name).toBe(t.dtype);
      expect(py.shape, name).toEqual(t.shape);
      const ours = Array.from(t.data as ArrayLike<number | bigint>, (v) =>
        typeof v === 'bigint' || t.dtype === 'I32' || t.dtype === 'U8' ? String(v) : v,
      );
      const theirs = py.values.map((v) =>
        t.dtype === 'F32' || t.dtype === 'F64'
          ? v === 'nan'
            ? Number.NaN
            : v === 'inf'
              ? Infinity
              : v === '-inf'
                ? -Infinity
                : Number(v)
          : v,
      );
      expect(theirs, name).toEqual(ours);
    }
  });

  it('decodes a file that python wrote by hand', async () => {
    const path = join(dir, 'from-python.safetensors');
    const run = spawnSync(PYTHON, ['-c', PY_WRITE, path], {
      encoding: 'utf8',
      env: { ...process.env, OMP_NUM_THREADS: '1' },
    });
    expect(run.status, run.stderr).toBe(0);
    const { tensors, metadata } = await readSafetensorsFile(path);
    expect(metadata).toEqual({ producer: 'python', note: 'café' });
    expect(tensors['z.f32']).toEqual({ dtype: 'F32', shape: [2, 2], data: Float32Array.of(0.5, -1.25, 3e38, -0) });
    expect(tensors['a.i64']).toEqual({
      dtype: 'I64',
      shape: [3],
      data: BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n, 12345678901234n),
    });
    expect(tensors['m.u8']).toEqual({ dtype: 'U8', shape: [2, 1, 2], data: Uint8Array.of(0, 255, 17, 128) });
    expect(tensors['b.f64']).toEqual({ dtype: 'F64', shape: [], data: Float64Array.of(5e-324) });
    expect(tensors['c.i32']).toEqual({ dtype: 'I32', shape: [0, 5], data: new Int32Array(0) });
    expect(tensors['h.f16']).toEqual({ dtype: 'F32', shape: [3], data: Float32Array.of(1.5, -0.25, 1024) });
    expect(tensors['q.bf16']).toEqual({ dtype: 'F32', shape: [2], data: Float32Array.of(2.5, -96) });
    expect(tensors['x.i32']).toEqual({ dtype: 'I32', shape: [2], data: Int32Array.of(-7, 2147483647) });
  });
});
