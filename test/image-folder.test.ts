// Pre-training data from a folder of PNG images (docs/data.md): decoding, resampling against PyTorch, batches,
// training end to end from the API and the CLI, and the errors of bad folders.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import { resizeImage } from '../lib/images/resize.js';
import {
  DatasetError,
  FlowMatchingTrainer,
  imageFolderDataset,
  loadCheckpoint,
  type NetConfig,
  VelocityNet,
} from '../lib/index.js';
import { tempFolder } from './helpers.js';

const root = tempFolder('images');

const PYTHON = '/usr/bin/python3';
// A DiT at a test's size on the 16×16×3 images of config D (vocabSize 32, condSlots 8).
const SMALL = { arch: 'dit', depth: 1, width: 32, heads: 2, mlpRatio: 2 } as const;
const config = (extra: object = {}): NetConfig => VelocityNet.create({ ...SMALL, ...extra }).config;

let folders = 0;
/** A fresh folder under the temporary root. */
function folder(): string {
  const dir = join(root, `f${folders++}`);
  mkdirSync(dir);
  return dir;
}

interface Encoding {
  colorType?: 0 | 2 | 4 | 6;
  bitDepth?: 8 | 16;
}

/** Writes an image given as RGBA samples (0 … 255, or 0 … 65535 at bitDepth 16) as a PNG file. */
function writePng(path: string, width: number, height: number, rgba: ArrayLike<number>, e: Encoding = {}) {
  mkdirSync(join(path, '..'), { recursive: true });
  const png = new PNG({ width, height });
  const bitDepth = e.bitDepth ?? 8;
  png.data = bitDepth === 16 ? Buffer.from(Uint16Array.from(rgba).buffer) : Buffer.from(Uint8Array.from(rgba));
  writeFileSync(path, PNG.sync.write(png, { colorType: e.colorType ?? 2, bitDepth, inputColorType: 6 }));
}

/** RGBA samples of a width × height image from a function of (x, y) giving [r, g, b, a]. */
function pixels(width: number, height: number, f: (x: number, y: number) => number[]): number[] {
  const out: number[] = [];
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out.push(...f(x, y));
  return out;
}

/** A deterministic pseudo-random integer in [0, n) of (a, b, c). */
const hash = (a: number, b: number, c: number, n: number) =>
  Math.floor((Math.abs(Math.sin(a * 12.9898 + b * 78.233 + c * 37.719) * 43758.5453) % 1) * n);

/** A class folder layout for training: a bright square of the class's colour at a per-image place, on black. */
function trainingFolder(classes: Record<string, [number, number, number]>, perClass: number): string {
  const dir = folder();
  for (const [name, colour] of Object.entries(classes)) {
    for (let i = 0; i < perClass; i++) {
      const ox = hash(i, 1, name.length, 9);
      const oy = hash(i, 2, name.length, 9);
      const image = pixels(16, 16, (x, y) =>
        x >= ox && x < ox + 7 && y >= oy && y < oy + 7 ? [...colour, 255] : [0, 0, 0, 255],
      );
      writePng(join(dir, name, `${i}.png`), 16, 16, image);
    }
  }
  return dir;
}

const byte = (v: number) => Math.fround((v / 255) * 2 - 1);

describe('imageFolderDataset', () => {
  it('reads the classes in sorted order as tokens 1, 2, … and each colour type at full precision', async () => {
    const dir = folder();
    const rgb = pixels(16, 16, (x, y) => [x * 16, y * 16, (x + y) * 7, 255]);
    writePng(join(dir, 'zebra', 'a.png'), 16, 16, rgb);
    // Grey at 16 bits: replicated into R, G and B without losing the low byte.
    const grey16 = pixels(16, 16, (x, y) => {
      const v = x * 4099 + y * 13;
      return [v, v, v, 65535];
    });
    writePng(join(dir, 'apple', 'deep', 'g.png'), 16, 16, grey16, { colorType: 0, bitDepth: 16 });
    // An opaque RGBA image is read as RGB.
    writePng(join(dir, 'apple', 'rgba.png'), 16, 16, rgb, { colorType: 6 });
    mkdirSync(join(dir, '.hidden'));
    writeFileSync(join(dir, 'notes.txt'), 'files at the top are not classes');

    const data = await imageFolderDataset(dir, config());
    expect(data.classes).toEqual(['apple', 'zebra']);
    expect(data.token('zebra')).toBe(2);
    expect(data.files).toEqual([join('apple', 'deep', 'g.png'), join('apple', 'rgba.png'), join('zebra', 'a.png')]);
    expect(Array.from(data.labels)).toEqual([0, 0, 1]);
    expect(data.length).toBe(3);
    expect(data.resized).toBe(0);
    const image = (i: number) => Array.from(data.images.subarray(i * 768, (i + 1) * 768));
    const expectedGrey = grey16.flatMap((v, i) => (i % 4 === 3 ? [] : [Math.fround((v / 65535) * 2 - 1)]));
    expect(image(0)).toEqual(expectedGrey);
    const expectedRgb = rgb.flatMap((v, i) => (i % 4 === 3 ? [] : [byte(v)]));
    expect(image(1)).toEqual(expectedRgb);
    expect(image(2)).toEqual(expectedRgb);
    const cond = data.conditions([1, 0]);
    expect(cond.shape).toEqual([2, 8]);
    expect(Array.from(cond.storage)).toEqual([2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    expect(() => data.token('pear')).toThrow(/no class 'pear'; the classes are apple, zebra/);
  });

  it('reads grey images for a one-channel network and RGBA with its alpha for a four-channel one', async () => {
    const dir = folder();
    const grey = pixels(8, 8, (x) => [x * 30, x * 30, x * 30, 255]);
    writePng(join(dir, 'g', 'a.png'), 8, 8, grey, { colorType: 0 });
    const one = await imageFolderDataset(dir, config({ imageSize: 8, channels: 1, dataDim: 64, patch: 2 }));
    expect(Array.from(one.images)).toEqual(grey.filter((_, i) => i % 4 === 0).map(byte));

    const translucent = folder();
    const rgba = pixels(8, 8, (x, y) => [200, 100, 0, x * 32 + y]);
    writePng(join(translucent, 'c', 'a.png'), 8, 8, rgba, { colorType: 6 });
    const four = await imageFolderDataset(translucent, config({ imageSize: 8, channels: 4, dataDim: 256, patch: 2 }));
    expect(Array.from(four.images)).toEqual(rgba.map(byte));
  });

  it('resamples other sizes as PyTorch’s antialiased bilinear interpolate in float64', async () => {
    const cases = [
      { width: 40, height: 24, channels: 3, size: 16 },
      { width: 7, height: 5, channels: 3, size: 16 },
      { width: 33, height: 16, channels: 1, size: 16 },
      { width: 100, height: 100, channels: 2, size: 9 },
      { width: 16, height: 16, channels: 3, size: 16 },
    ].map((c, k) => ({
      ...c,
      values: Array.from({ length: c.width * c.height * c.channels }, (_, i) => hash(i, k, 3, 1e6) / 1e6),
    }));
    const inPath = join(root, 'resize-in.json');
    const outPath = join(root, 'resize-out.json');
    writeFileSync(inPath, JSON.stringify(cases));
    const run = spawnSync(PYTHON, ['reference/resize.py', inPath, outPath], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const expected = JSON.parse(readFileSync(outPath, 'utf8')) as number[][];
    for (const [k, c] of cases.entries()) {
      const ours = resizeImage(c.values, c.width, c.height, c.channels, c.size);
      const want = expected[k] as number[];
      expect(ours.length).toBe(want.length);
      let worst = 0;
      for (let i = 0; i < want.length; i++)
        worst = Math.max(worst, Math.abs((ours[i] as number) - (want[i] as number)));
      expect(worst, `case ${k}`).toBeLessThan(1e-12);
    }
    expect(Array.from(resizeImage(cases[4]?.values ?? [], 16, 16, 3, 16))).toEqual(cases[4]?.values);

    // A folder's odd-sized image goes through the same resampling.
    const dir = folder();
    const big = pixels(40, 24, (x, y) => [x * 6, y * 10, 128, 255]);
    writePng(join(dir, 'c', 'big.png'), 40, 24, big);
    const data = await imageFolderDataset(dir, config());
    expect(data.resized).toBe(1);
    const decoded = big.flatMap((v, i) => (i % 4 === 3 ? [] : [byte(v)]));
    const want = resizeImage(decoded, 40, 24, 3, 16);
    let worst = 0;
    for (let i = 0; i < 768; i++) worst = Math.max(worst, Math.abs((data.images[i] as number) - (want[i] as number)));
    expect(worst).toBeLessThan(1e-6);
  });

  it('draws each image once per epoch, in an order of (seed, epoch)', async () => {
    const data = await imageFolderDataset(trainingFolder({ a: [255, 0, 0], b: [0, 0, 255] }, 5), config());
    const epoch = (seed: number, e: number) =>
      [0, 1, 2, 3, 4].flatMap((i) => {
        const b = data.batch(2, seed, e * 5 + i);
        return Array.from({ length: 2 }, (_, j) => Array.from(b.x0.storage.subarray(j * 768, (j + 1) * 768)).join());
      });
    const all = Array.from({ length: 10 }, (_, i) => Array.from(data.images.subarray(i * 768, (i + 1) * 768)).join());
    expect([...epoch(1, 0)].sort()).toEqual([...all].sort());
    expect([...epoch(1, 1)].sort()).toEqual([...all].sort());
    expect(epoch(1, 0)).not.toEqual(epoch(1, 1));
    expect(epoch(1, 0)).not.toEqual(epoch(2, 0));
    expect(data.batch(3, 7, 4).x0.storage).toEqual(data.batch(3, 7, 4).x0.storage);
    const b = data.batch(4, 1, 0);
    expect(Array.from(b.cond.storage.filter((_, i) => i % 8 === 0))).toEqual(Array.from(b.labels, (k) => k + 1));
    expect(() => data.batch(0, 1, 0)).toThrow(RangeError);
  });

  it('pre-trains a network on the folder and lowers the loss', async () => {
    const dir = trainingFolder({ red: [255, 40, 40], blue: [40, 40, 255], green: [40, 255, 40] }, 8);
    const net = VelocityNet.create(SMALL, { seed: 1 });
    const data = await imageFolderDataset(dir, net.config);
    const trainer = new FlowMatchingTrainer(net, { lr: 2e-3, warmupSteps: 10, seed: 3, condDropout: 0.1 });
    const losses: number[] = [];
    // 150 steps of 12 images: 75 epochs of the 24 images.
    for (let step = 0; step < 150; step++) losses.push((await trainer.step(data.batch(12, 5, step))).loss);
    const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
    expect(mean(losses.slice(-20))).toBeLessThan(0.6 * mean(losses.slice(0, 10)));
  });

  it('refuses bad folders and files with a DatasetError naming them', async () => {
    const rejects = async (dir: string, pattern: RegExp, path = dir, cfg = config(), options = {}) => {
      const error = await imageFolderDataset(dir, cfg, options).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DatasetError);
      expect((error as DatasetError).code).toBe('DNFT_DATASET');
      expect((error as DatasetError).path).toBe(path);
      expect((error as Error).message).toMatch(pattern);
    };
    const opaque = pixels(16, 16, () => [10, 20, 30, 255]);

    await rejects(join(root, 'missing'), /cannot read the folder/);
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    await rejects(file, /is not a folder/);
    await rejects(folder(), /folder is empty; expected DIR\/<class>\/\*\.png/);

    const flat = folder();
    writePng(join(flat, 'a.png'), 16, 16, opaque);
    await rejects(flat, /no class folders/);

    const emptyClass = folder();
    writePng(join(emptyClass, 'a', 'x.png'), 16, 16, opaque);
    mkdirSync(join(emptyClass, 'b'));
    await rejects(emptyClass, /holds no PNG image/, join(emptyClass, 'b'));

    const jpeg = folder();
    writePng(join(jpeg, 'a', 'x.png'), 16, 16, opaque);
    writeFileSync(join(jpeg, 'a', 'y.jpg'), 'not read');
    await rejects(jpeg, /is not a PNG image/, join(jpeg, 'a', 'y.jpg'));

    const corrupt = folder();
    writePng(join(corrupt, 'a', 'x.png'), 16, 16, opaque);
    writeFileSync(join(corrupt, 'a', 'y.png'), Buffer.from('\x89PNG\r\n\x1a\n garbage'));
    await rejects(corrupt, /is not a readable PNG image/, join(corrupt, 'a', 'y.png'));

    const odd = folder();
    writePng(
      join(odd, 'a', 'x.png'),
      20,
      12,
      pixels(20, 12, () => [0, 0, 0, 255]),
    );
    await rejects(odd, /image is 20×12 but the network's images are 16×16/, join(odd, 'a', 'x.png'), config(), {
      resize: 'reject',
    });

    const many = folder();
    for (let k = 0; k < 4; k++) mkdirSync(join(many, `c${k}`));
    await rejects(many, /4 classes need 5 condition tokens .* vocabSize is 4/, many, config({ vocabSize: 4 }));

    const colour = folder();
    writePng(
      join(colour, 'a', 'x.png'),
      8,
      8,
      pixels(8, 8, () => [10, 20, 30, 255]),
    );
    await rejects(colour, /is a colour image but the network's images have 1 channel/, join(colour, 'a', 'x.png'), {
      ...config({ imageSize: 8, channels: 1, dataDim: 64, patch: 2 }),
    });

    const transparent = folder();
    writePng(
      join(transparent, 'a', 'x.png'),
      16,
      16,
      pixels(16, 16, (x) => [10, 20, 30, x === 3 ? 0 : 255]),
      {
        colorType: 6,
      },
    );
    await rejects(transparent, /has transparent pixels \(alpha 0\/255 at x 3, y 0\)/, join(transparent, 'a', 'x.png'));

    await expect(
      imageFolderDataset(flat, config({ imageSize: 8, channels: 2, dataDim: 128, patch: 2 })),
    ).rejects.toThrow(/PNG images have 1, 3 or 4 channels; the network's images have 2/);
    await expect(imageFolderDataset(flat, config(), { resize: 'area' } as never)).rejects.toThrow(/resize/);
    await expect(imageFolderDataset(flat, VelocityNet.create({ dataDim: 10 }).config)).rejects.toThrow(
      /dataDim 10 is not side² · 3/,
    );
  });
});

describe('pretrain --images', () => {
  it('pre-trains from the CLI and writes the class tokens into the checkpoint', async () => {
    const dir = trainingFolder({ dots: [255, 255, 0], blocks: [0, 255, 255] }, 3);
    const out = join(root, 'cli', 'base.safetensors');
    const run = spawnSync(
      process.execPath,
      ['dist/lib/cli.js', 'pretrain', '--images', dir, '--steps', '4', '--batch', '4', '--out', out],
      { encoding: 'utf8', timeout: 240_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/images: 6 in 2 classes \(0 resized\); tokens \{"blocks":1,"dots":2\}/);
    expect(run.stdout).toMatch(/wrote .*base\.safetensors: 4 steps/);
    expect(run.stderr).toMatch(/pretrain \[/);
    const { net, metadata, step } = await loadCheckpoint(out);
    expect(step).toBe(4);
    expect(net.config.arch).toBe('dit');
    expect(JSON.parse(metadata['images.classes'] as string)).toEqual({ blocks: 1, dots: 2 });

    const bad = spawnSync(
      process.execPath,
      ['dist/lib/cli.js', 'pretrain', '--images', join(dir, 'nope'), '--steps', '1'],
      {
        encoding: 'utf8',
      },
    );
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/error: .*nope: cannot read the folder/);
  });
});
